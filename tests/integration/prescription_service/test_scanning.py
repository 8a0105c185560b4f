"""prescription_service's scan worker on the real broker and store: a printed prescription read into a
draft matched to inventory's catalogue, kept sealed, shown again, and never in the way of quick reads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import Namespace, printed, rpc_client, stored_scans

from contracts.commands import CreateMedication, GetPrescription, MedicationView, UploadPrescription
from contracts.documents import DocumentView, GetDocument, ScanDocument, ScanDraftView
from contracts.events import Location, PrescribedLine
from inventory_service.app import build as build_inventory
from inventory_service.handlers import InventorySettings
from prescription_service.app import Settings
from prescription_service.app import build as build_prescriptions
from service_runtime.crypto import is_sealed
from service_runtime.errors import CommandRefused
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]
LINES = (
    "Dr Amelia Hart MBChB",
    "Patient: John Carter",
    "Rx",
    "1. Amoxicillin 500 mg capsules  Qty: 21",
    "2. Hydroxyzine 25 mg tablets  x 28",
)


def printed_png() -> bytes:
    return printed(LINES, (1600, 900))


async def catalogue(inventory: Service) -> dict[str, str]:
    ids = {}
    for name, strength, form, rx in (
        ("Amoxicillin", "500 mg", "capsule", True),
        ("Hydroxyzine", "25 mg", "tablet", True),
        ("Hydralazine", "25 mg", "tablet", True),
    ):
        command = CreateMedication(
            name=name, strength=strength, form=form, price_cents=500, prescription_only=rx, request_id=name
        )
        reply = await inventory.commands.dispatch(command.TYPE, command.model_dump_json().encode())
        assert reply.error is None, reply.error
        ids[name] = MedicationView.model_validate(reply.data).id
    return ids


async def test_a_scanned_prescription_is_matched_to_the_catalogue_and_kept_sealed(
    namespace: Namespace, running: Start
) -> None:
    inventory = await running(build_inventory(namespace.settings(InventorySettings)))
    ids = await catalogue(inventory)
    settings = namespace.settings(Settings)
    prescriptions = await running(build_prescriptions(settings))
    content = printed_png()

    async with rpc_client(settings) as rpc:
        command = ScanDocument(patient_id="patient-1", content_base64=base64.b64encode(content).decode())
        draft: ScanDraftView = await rpc.ask(command, ScanDraftView)
        shown: DocumentView = await rpc.ask(
            GetDocument(owner_id="patient-1", document_id=draft.document_id), DocumentView
        )
        with pytest.raises(CommandRefused) as other_patient:
            await rpc.ask(GetDocument(owner_id="patient-2", document_id=draft.document_id), DocumentView)

    assert [(line.medication_id, line.quantity) for line in draft.lines] == [
        (ids["Amoxicillin"], 21),
        (ids["Hydroxyzine"], 28),
    ]
    assert "LOOK_ALIKE" in draft.lines[1].flags  # hydroxyzine beside hydralazine
    assert (draft.content_type, draft.pages) == ("image/png", 1)
    assert base64.b64decode(shown.content_base64) == content
    assert shown.sha256 == hashlib.sha256(content).hexdigest()
    assert shown.draft == draft
    assert other_patient.value.code == "not_found"
    # What the patient sent, and what was read from it, are stored sealed.
    head = await prescriptions.db["documents"].find_one({"_id": draft.document_id})
    assert head is not None
    assert is_sealed(head["draft"])
    chunks = [
        doc async for doc in prescriptions.db["document_chunks"].find({"document_id": draft.document_id})
    ]
    assert len(chunks) == 1
    assert is_sealed(chunks[0]["data"])


async def test_a_document_that_is_not_an_image_or_pdf_is_refused_by_its_bytes(
    namespace: Namespace, running: Start
) -> None:
    await running(build_inventory(namespace.settings(InventorySettings)))
    settings = namespace.settings(Settings)
    prescriptions = await running(build_prescriptions(settings))

    async with rpc_client(settings) as rpc:
        command = ScanDocument(patient_id="p", content_base64=base64.b64encode(b"GIF89a not ours").decode())
        with pytest.raises(CommandRefused) as refused:
            await rpc.ask(command, ScanDraftView)

    assert refused.value.code == "unsupported_media_type"
    assert refused.value.field == "document"
    assert await prescriptions.db["documents"].count_documents({}) == 0


async def test_quick_reads_are_answered_while_a_scan_is_being_read(
    namespace: Namespace, running: Start
) -> None:
    await running(build_inventory(namespace.settings(InventorySettings)))
    settings = namespace.settings(Settings)
    await running(build_prescriptions(settings))
    content = base64.b64encode(printed_png()).decode()

    async with rpc_client(settings) as rpc:
        scanning = asyncio.create_task(rpc.ask(ScanDocument(patient_id="p", content_base64=content), Any))
        await asyncio.sleep(0.2)  # the scan is taken by its worker
        answered = []
        for _ in range(5):
            with pytest.raises(CommandRefused) as unknown:
                await rpc.ask(GetPrescription(owner_id=None, prescription_id="none"), Any)
            answered.append(unknown.value.code)
            # Each quick read was answered before the scan was done: neither queue nor loop waited.
            assert not scanning.done()
        await scanning

    assert answered == ["not_found"] * 5


async def test_a_scan_refused_with_its_upload_is_free_for_the_next_one(
    namespace: Namespace, running: Start
) -> None:
    prescriptions = await running(build_prescriptions(namespace.settings(Settings)))
    first_scan, second_scan = await stored_scans(prescriptions.db, prescriptions.cipher, ["p", "p"])

    def upload(document_id: str, quantity: int, request_id: str) -> UploadPrescription:
        return UploadPrescription(
            patient_id="p",
            lines=(PrescribedLine(medication_id="amoxicillin", quantity=quantity, prescription_only=True),),
            delivery_location=Location(latitude=52.5, longitude=13.4),
            payment_method_id="card",
            document_id=document_id,
            request_id=request_id,
        )

    async def sent(command: UploadPrescription) -> Any:
        return await prescriptions.commands.dispatch(command.TYPE, command.model_dump_json().encode())

    first = await sent(upload(first_scan, 1, "key-1"))
    # The same Idempotency-Key for other contents and another scan: refused, and that scan not taken.
    reused = await sent(upload(second_scan, 2, "key-1"))
    second = await sent(upload(second_scan, 2, "key-2"))
    again = await sent(upload(first_scan, 1, "key-3"))

    assert first.error is None, first.error
    assert reused.error is not None
    assert reused.error.code == "invalid"
    assert second.error is None, second.error
    assert again.error is not None
    assert (again.error.code, again.error.field) == ("conflict", "document_id")
    assert first.data["id"] in again.error.detail


async def test_prescriptions_stored_before_listed_was_kept_are_listed_as_their_withdrawal_says(
    namespace: Namespace, running: Start
) -> None:
    settings = namespace.settings(Settings)
    first = build_prescriptions(settings)
    raw = first.db["prescriptions"]
    await raw.insert_many(
        [
            {"_id": "kept", "patient_id": "p", "withdrawn_at": None},
            {"_id": "taken back", "patient_id": "p", "withdrawn_at": datetime.now(UTC)},
        ]
    )
    await first.client.close()

    service = await running(build_prescriptions(settings))  # its start brings the old ones up to date

    found = {doc["_id"]: doc["listed"] async for doc in service.db["prescriptions"].find({})}
    assert found == {"kept": True, "taken back": False}
