"""The scan worker: a patient's photo or PDF read into a draft, and the document kept sealed.

Scanning takes seconds a page, so it has a queue and a worker of its own (ScanDocument.QUEUE), and
runs in a thread: the service's event loop, its events and its quick reads never wait for it. The
lines are matched against the catalogue, which inventory_service owns: asked over RPC for every scan
(a page of 200 medications is milliseconds beside seconds of reading), so a medication added a moment
ago is matched.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
import uuid

from contracts.base import ErrorCode
from contracts.commands import ListMedications, MedicationView
from contracts.documents import DocumentType, DocumentView, GetDocument, ScanDocument, ScanDraftView
from prescription_service import scan
from prescription_service.documents import Documents, StoredDocument
from prescription_service.scan.intake import document_type
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, ServiceUnavailable
from service_runtime.messaging import AmqpRequester, RpcClient
from service_runtime.service import Service

log = logging.getLogger(__name__)

CONTENT_TYPES: dict[str, DocumentType] = {"png": "image/png", "jpeg": "image/jpeg", "pdf": "application/pdf"}
REFUSALS: dict[int, ErrorCode] = {413: "too_large", 415: "unsupported_media_type", 422: "invalid"}
CATALOGUE_PAGE = 200


class Catalogue:
    """What a draft's lines are matched against: every medication on sale, as inventory_service has it."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._rpc: RpcClient | None = None
        self._requester: AmqpRequester | None = None
        self._connecting = asyncio.Lock()

    async def entries(self) -> tuple[scan.CatalogueEntry, ...]:
        async with self._connecting:  # one connection, however many scans start at once
            if self._rpc is None:
                settings = self.service.settings
                self._requester = AmqpRequester(settings.rabbitmq_url, settings.broker_namespace)
                await self._requester.start()
                self._rpc = RpcClient(self._requester, settings)
        found: list[MedicationView] = await self._rpc.ask_every_page(
            lambda page: ListMedications(page=page), MedicationView, page_size=CATALOGUE_PAGE
        )
        return tuple(
            scan.CatalogueEntry(
                medication_id=m.id,
                name=m.name,
                strength=m.strength,
                form=m.form,
                prescription_only=m.prescription_only,
            )
            for m in found
        )

    async def stop(self) -> None:
        if self._requester is not None:
            await self._requester.stop()


def register(service: Service, documents: Documents, *, concurrency: int) -> None:
    catalogue = Catalogue(service)
    worker = service.worker(ScanDocument, concurrency=concurrency)

    @worker.on(ScanDocument)
    async def scan_document(command: ScanDocument) -> ScanDraftView:
        try:
            content = base64.b64decode(command.content_base64, validate=True)
        except binascii.Error as exc:
            raise CommandRefused("invalid", "the document is not valid base64", "content_base64") from exc
        try:
            entries = await catalogue.entries()
        except (ServiceUnavailable, CommandRefused) as exc:
            raise CommandRefused("unavailable", "the catalogue cannot be read now; try again") from exc
        started = time.perf_counter()
        try:
            # In a thread: tesseract and the clean-up take seconds, the loop serves everything else.
            draft = await asyncio.to_thread(scan.scan, content, entries)
        except scan.DocumentRefused as exc:
            raise CommandRefused(REFUSALS.get(exc.status, "invalid"), exc.detail, "document") from exc
        except scan.RecognitionFailed as exc:
            log.warning("scan failed: %s", exc)
            raise CommandRefused("invalid", "the document could not be read", "document") from exc
        document_id = f"doc-{uuid.uuid4().hex}"
        kind = document_type(content)
        assert kind is not None  # read_document refused anything else
        view = draft_view(document_id, CONTENT_TYPES[kind], draft)
        await documents.put(
            StoredDocument(
                document_id=document_id,
                patient_id=command.patient_id,
                content_type=CONTENT_TYPES[kind],
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                created_at=utc_now(),
                draft=view,
                content=content,
            )
        )
        log.info("scanned %s: %d pages, %d lines, %.1f s", document_id, draft.pages, len(draft.lines),
                 time.perf_counter() - started)  # fmt: skip
        return view

    @service.commands.on(GetDocument)
    async def get_document(command: GetDocument) -> DocumentView:
        stored = await documents.get(command.document_id)
        if stored is None or (command.owner_id is not None and stored.patient_id != command.owner_id):
            raise CommandRefused("not_found", f"document {command.document_id} not found")
        return DocumentView(
            document_id=stored.document_id,
            patient_id=stored.patient_id,
            content_type=stored.content_type,
            content_base64=base64.b64encode(stored.content).decode(),
            size=stored.size,
            sha256=stored.sha256,
            created_at=stored.created_at,
            draft=stored.draft,
        )

    service.on_start(documents.ensure_indexes)
    service.on_stop(catalogue.stop)


def draft_view(document_id: str, content_type: DocumentType, draft: scan.ScanDraft) -> ScanDraftView:
    return ScanDraftView.model_validate(
        {
            "document_id": document_id,
            "content_type": content_type,
            **draft.model_dump(mode="json"),
            "lines": [
                {**line.model_dump(mode="json"), "flags": [str(flag) for flag in line.flags]}
                for line in draft.lines
            ],
        }
    )
