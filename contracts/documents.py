"""A prescription's original document: scanned into a draft the patient confirms, kept sealed, shown
only to its patient and to pharmacists.

Scanning is slow (seconds a page): ScanDocument names its own queue (Command.QUEUE), served by
prescription_service's scan worker, never by its RPC queue or its events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import Command, Frozen

# The most a scanned document may hold (the gateway refuses more with 413, before any is sent).
DOCUMENT_MAX_BYTES = 10 * 1024 * 1024

DocumentType = Literal["image/png", "image/jpeg", "application/pdf"]


class ScanDocument(Command):
    """Read a document into a draft and keep it; answered with the draft (ScanDraftView)."""

    TYPE = "ScanDocument"
    QUEUE = "scans"
    QUEUE_SECONDS = 90.0
    patient_id: str
    # Standard base64 of the file as sent; its type is decided from its bytes, not from a name.
    content_base64: str = Field(max_length=(DOCUMENT_MAX_BYTES + 2) // 3 * 4)


class DraftLineView(Frozen):
    text: str
    medication_id: str | None
    name: str | None
    strength: str | None
    form: str | None
    quantity: int | None
    confidence: float = Field(ge=0, le=1)
    # Why a pharmacist must look closely: LOW_CONFIDENCE, CLOSE_RUNNER_UP, LOOK_ALIKE, ...
    flags: tuple[str, ...]


class ScanDraftView(Frozen):
    document_id: str
    content_type: DocumentType
    text: str
    lines: tuple[DraftLineView, ...]
    pages: int
    seconds: float


class GetDocument(Command):
    TYPE = "GetDocument"
    owner_id: str | None
    document_id: str


class DocumentView(Frozen):
    document_id: str
    patient_id: str
    content_type: DocumentType
    content_base64: str
    size: int
    sha256: str
    created_at: datetime
    draft: ScanDraftView | None = None
