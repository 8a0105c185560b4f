"""prescription_service on a real broker and store: an upload that waits for a pharmacist, and each
decision on it stored (sealed) and announced."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any
from uuid import uuid4

import pytest
from conftest import EventProbe, Namespace, handled_everything, stored, stored_scans

from contracts.base import Command, Envelope
from contracts.commands import (
    AnswerPrescription,
    ApprovePrescription,
    HoldPrescription,
    RejectPrescription,
    UploadPrescription,
)
from contracts.events import (
    Location,
    PrescribedLine,
    PrescriptionAnswered,
    PrescriptionHeld,
    PrescriptionRejected,
    PrescriptionUploaded,
    PrescriptionVerified,
)
from prescription_service.app import Settings, build
from prescription_service.store import prescriptions
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]
# Dates relative to the day the test runs: a prescription is never issued after today.
ISSUED = date.today() - timedelta(days=1)
VALID_UNTIL = ISSUED + timedelta(days=90)
RX = PrescribedLine(medication_id="amoxicillin-500", quantity=2, prescription_only=True)


async def command(service: Service, message: Command) -> Any:
    reply = await service.commands.dispatch(message.TYPE, message.model_dump_json().encode())
    return reply


async def uploaded(service: Service, probe: EventProbe) -> tuple[dict[str, Any], Envelope]:
    patient_id = f"patient-{uuid4().hex[:8]}"
    [document_id] = await stored_scans(service.db, service.cipher, [patient_id])
    upload = UploadPrescription(
        patient_id=patient_id,
        lines=(RX,),
        delivery_location=Location(latitude=52.37, longitude=4.89),
        payment_method_id="pm-1",
        document_id=document_id,
        issued_on=ISSUED,
        valid_until=VALID_UNTIL,
        request_id=str(uuid4()),
    )
    reply = await command(service, upload)
    assert reply.error is None, reply.error
    announced = await probe.wait_for(PrescriptionUploaded, correlation_id=reply.data["order_id"])
    return reply.data, announced


def decision(cls: type[Command], prescription_id: str, **fields: Any) -> Command:
    return cls(
        prescription_id=prescription_id, pharmacist_id="pharmacist-1", pharmacist_role="pharmacist", **fields
    )


async def test_an_approval_is_stored_with_the_pharmacist_and_announced_for_the_order(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    view, upload = await uploaded(service, probe)

    reply = await command(service, decision(ApprovePrescription, view["id"], note="checked"))
    verified = await probe.wait_for(PrescriptionVerified, correlation_id=view["order_id"])

    assert view["status"] == "PENDING_VERIFICATION"
    assert PrescriptionUploaded.model_validate(upload.payload).lines == (RX,)
    assert reply.error is None, reply.error
    assert PrescriptionVerified.model_validate(verified.payload) == PrescriptionVerified(
        prescription_id=view["id"],
        order_id=view["order_id"],
        patient_id=view["patient_id"],
        pharmacist_id="pharmacist-1",
        lines=(RX,),
        note="checked",
    )
    doc = await stored(prescriptions(service), view["id"])
    assert doc is not None
    assert (doc["status"], doc["verified_by"]) == ("PROCESSING", "pharmacist-1")
    assert (doc["issued_on"], doc["valid_until"]) == (ISSUED.isoformat(), VALID_UNTIL.isoformat())
    assert [(s["decision"], s["note"]) for s in doc["verification"]] == [("approved", "checked")]
    raw = await service.db["prescriptions"].find_one({"_id": view["id"]})
    assert raw is not None
    assert "checked" not in str(raw["verification"])  # the note is health data: sealed at rest


async def test_a_hold_an_answer_and_a_rejection_are_each_an_event(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    view, _ = await uploaded(service, probe)

    held = await command(service, decision(HoldPrescription, view["id"], question="Allergies?"))
    answered = await command(
        service, AnswerPrescription(owner_id=view["patient_id"], prescription_id=view["id"], answer="None")
    )
    rejected = await command(service, decision(RejectPrescription, view["id"], reason="CLINICAL_CONCERN"))
    await handled_everything(service, probe)

    assert [r.error for r in (held, answered, rejected)] == [None, None, None]
    assert [
        e.type
        for e in probe.seen
        if e.correlation_id == view["order_id"] and e.type != PrescriptionUploaded.TYPE
    ] == [PrescriptionHeld.TYPE, PrescriptionAnswered.TYPE, PrescriptionRejected.TYPE]
    doc = await stored(prescriptions(service), view["id"])
    assert doc is not None
    assert (doc["status"], doc["rejection_reason"]) == ("REJECTED", "CLINICAL_CONCERN")


async def test_a_refused_decision_changes_nothing_and_announces_nothing(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    view, _ = await uploaded(service, probe)

    own = await command(
        service,
        ApprovePrescription(
            prescription_id=view["id"], pharmacist_id=view["patient_id"], pharmacist_role="pharmacist"
        ),
    )
    courier = await command(
        service,
        ApprovePrescription(prescription_id=view["id"], pharmacist_id="c-1", pharmacist_role="courier"),
    )
    await handled_everything(service, probe)

    assert (own.error.code, courier.error.code) == ("forbidden", "forbidden")
    assert [e.type for e in probe.seen if e.correlation_id == view["order_id"]] == [PrescriptionUploaded.TYPE]
    doc = await stored(prescriptions(service), view["id"])
    assert doc is not None
    assert (doc["status"], doc["verification"]) == ("PENDING_VERIFICATION", [])


async def test_a_prescription_only_line_typed_without_a_document_is_refused_and_nothing_is_stored(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = UploadPrescription(
        patient_id="patient-x",
        lines=(PrescribedLine(medication_id="ibuprofen", quantity=1), RX),
        delivery_location=Location(latitude=52.37, longitude=4.89),
        payment_method_id="pm-1",
    )

    reply = await command(service, upload)

    assert reply.error is not None
    assert (reply.error.code, reply.error.field) == ("invalid", "lines.1.medication_id")
    assert await service.db["prescriptions"].count_documents({"patient_id": "patient-x"}) == 0
