"""Prescriptions' original documents in prescription_service's own database, sealed.

A document is kept as a head (who sent it, its type, size, hash, the draft read from it) and its bytes
in chunks of CHUNK_BYTES, each sealed like any other patient's field: a 10 MiB file sealed whole would
not fit a 16 MiB document, and key rotation re-seals chunks as it does every sealed value. The chunks
are written before the head, so a document is visible only once every byte of it is stored.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from contracts.documents import DocumentType, ScanDraftView
from service_runtime.crypto import FieldCipher, place

CHUNK_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class StoredDocument:
    document_id: str
    patient_id: str
    content_type: DocumentType
    size: int
    sha256: str
    created_at: datetime
    draft: ScanDraftView | None
    content: bytes
    # The one prescription uploaded with it: a document backs one prescription, never two.
    prescription_id: str | None = None


class Documents:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], cipher: FieldCipher) -> None:
        self.heads = db["documents"]
        self.chunks = db["document_chunks"]
        self.cipher = cipher

    async def ensure_indexes(self) -> None:
        await self.chunks.create_index([("document_id", ASCENDING), ("n", ASCENDING)])

    async def put(self, document: StoredDocument) -> None:
        """Store a new document: its chunks, then its head."""
        content = document.content
        pieces = [content[i : i + CHUNK_BYTES] for i in range(0, len(content), CHUNK_BYTES)]
        for n, piece in enumerate(pieces):
            chunk_id = f"{document.document_id}:{n}"
            sealed = self.cipher.seal(
                base64.b64encode(piece).decode(), at=place(self.chunks.name, chunk_id, "data")
            )
            await self.chunks.replace_one(
                {"_id": chunk_id},
                {"_id": chunk_id, "document_id": document.document_id, "n": n, "data": sealed},
                upsert=True,
            )
        draft = None if document.draft is None else document.draft.model_dump(mode="json")
        await self.heads.insert_one(
            {
                "_id": document.document_id,
                "patient_id": document.patient_id,
                "content_type": document.content_type,
                "size": document.size,
                # Sealed too: a hash of a document confirms a guess of it.
                "sha256": self.cipher.seal(
                    document.sha256, at=place(self.heads.name, document.document_id, "sha256")
                ),
                "chunks": len(pieces),
                "created_at": document.created_at,
                "draft": self.cipher.seal(draft, at=place(self.heads.name, document.document_id, "draft")),
            }
        )

    async def head(self, document_id: str) -> StoredDocument | None:
        """The document without its bytes (`content` empty): whose it is, and its draft."""
        head = await self.heads.find_one({"_id": document_id})
        return None if head is None else self._stored(head, b"")

    async def get(self, document_id: str) -> StoredDocument | None:
        head = await self.heads.find_one({"_id": document_id})
        if head is None:
            return None
        content = b""
        for n in range(head["chunks"]):
            chunk_id = f"{document_id}:{n}"
            chunk = await self.chunks.find_one({"_id": chunk_id})
            if chunk is None:
                raise LookupError(f"document {document_id} lost its chunk {n}")
            data = self.cipher.open(chunk["data"], at=place(self.chunks.name, chunk_id, "data"))
            content += base64.b64decode(data)
        return self._stored(head, content)

    async def claim(self, document_id: str, prescription_id: str) -> bool:
        """Make the document the one of this prescription; False when another prescription has it.
        Claiming it again for the same prescription (a retried upload) is no change."""
        claimed = await self.heads.find_one_and_update(
            {"_id": document_id, "prescription_id": {"$in": [None, prescription_id]}},
            {"$set": {"prescription_id": prescription_id}},
        )
        return claimed is not None

    async def release(self, document_id: str, prescription_id: str) -> None:
        """Free a document this prescription claimed but was not stored with."""
        await self.heads.update_one(
            {"_id": document_id, "prescription_id": prescription_id}, {"$unset": {"prescription_id": ""}}
        )

    def _stored(self, head: dict[str, Any], content: bytes) -> StoredDocument:
        document_id = head["_id"]
        draft = self.cipher.open(head["draft"], at=place(self.heads.name, document_id, "draft"))
        return StoredDocument(
            document_id=document_id,
            patient_id=head["patient_id"],
            content_type=head["content_type"],
            size=head["size"],
            sha256=self.cipher.open(head["sha256"], at=place(self.heads.name, document_id, "sha256")),
            created_at=head["created_at"],
            draft=None if draft is None else ScanDraftView.model_validate(draft),
            content=content,
            prescription_id=head.get("prescription_id"),
        )
