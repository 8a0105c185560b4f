"""Prescription documents: a photo or PDF scanned into a draft, and the original shown again.

The scan itself runs in prescription_service's scan worker (contracts/documents.py); the gateway
only bounds the upload, forwards it, and answers with the draft the patient confirms.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile

from contracts.documents import DOCUMENT_MAX_BYTES, DocumentView, GetDocument, ScanDocument, ScanDraftView
from service_runtime.errors import CommandRefused
from user_service.audit import Audit, audited
from user_service.deps import CurrentUser, Patient, ResourceId, Rpc
from user_service.domain import owner_scope
from user_service.problems import RESPONSES, problem
from user_service.schemas import ScanDraftOut

router = APIRouter(tags=["prescriptions"])

# What a multipart body may add around the file itself (boundaries, part headers).
MULTIPART_OVERHEAD_BYTES = 64 * 1024
SCAN_PATH = "/prescriptions/scan"


@router.post(
    SCAN_PATH,
    response_model=ScanDraftOut,
    dependencies=[audited("prescription.scan", subject="document_id")],
    responses={
        413: {**RESPONSES[422], "description": "the document is over 10 MiB, or a page too large to read"},
        415: {**RESPONSES[422], "description": "not a PNG, JPEG or PDF (decided by its bytes)"},
        422: {**RESPONSES[422], "description": "an empty, corrupt or unreadable document, or too many pages"},
    },
)
async def scan_prescription(
    patient: Patient, rpc: Rpc, audit: Audit, document: Annotated[UploadFile, File()]
) -> ScanDraftOut | Response:
    """Read a printed prescription (PNG, JPEG or PDF, at most 10 MiB) into a draft to confirm.

    Each line of the draft has what was read, the catalogue medication it matched (or null), and
    `flags` saying why a pharmacist must look closely. Upload it with the draft's `document_id`.
    """
    content = await document.read(DOCUMENT_MAX_BYTES + 1)
    if len(content) > DOCUMENT_MAX_BYTES:
        return problem(413, f"the document may hold at most {DOCUMENT_MAX_BYTES} bytes")
    command = ScanDocument(patient_id=patient.id, content_base64=base64.b64encode(content).decode())
    draft = await rpc.ask(command, ScanDraftView)
    audit.subject_id = draft.document_id
    return ScanDraftOut.of(draft)


@router.get(
    "/documents/{document_id}",
    response_class=Response,
    dependencies=[audited("document.read", subject="document_id")],
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "application/pdf": {}}}},
)
async def get_document(document_id: ResourceId, user: CurrentUser, rpc: Rpc) -> Response:
    """The original document, as sent: only to its patient and to pharmacists (and admins)."""
    found = await rpc.ask(
        GetDocument(owner_id=owner_scope(user, None), document_id=document_id), DocumentView
    )
    return Response(
        base64.b64decode(found.content_base64),
        media_type=found.content_type,
        # Its Content-Security-Policy (a sandbox) is the edge's, for every document path.
        headers={"Content-Disposition": f'inline; filename="{found.document_id}"'},
    )


@router.get(
    "/documents/{document_id}/draft",
    response_model=ScanDraftOut,
    dependencies=[audited("document.draft_read", subject="document_id")],
)
async def get_document_draft(document_id: ResourceId, user: CurrentUser, rpc: Rpc) -> ScanDraftOut:
    """What the scan read from the document, as its POST answered: to its patient and to pharmacists
    (and admins); 404 for a document that was never scanned into a draft."""
    found = await rpc.ask(
        GetDocument(owner_id=owner_scope(user, None), document_id=document_id), DocumentView
    )
    if found.draft is None:
        raise CommandRefused("not_found", f"document {document_id} has no draft")
    return ScanDraftOut.of(found.draft)
