"""A prescription's life, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.commands import UploadPrescription
from contracts.events import Location, PrescribedLine, PrescriptionUploaded, PrescriptionWithdrawn
from prescription_service import domain

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def upload() -> UploadPrescription:
    return UploadPrescription(
        patient_id="pat-1",
        lines=(PrescribedLine(medication_id="m-1", quantity=1),),
        delivery_location=Location(latitude=1, longitude=2),
        payment_method_id="pm-1",
    )


def test_upload_starts_the_saga_with_a_fresh_order_id() -> None:
    first, events = domain.upload(upload(), NOW)
    second, _ = domain.upload(upload(), NOW)

    assert first.status == "PROCESSING"
    assert first.order_id != second.order_id
    assert first.id != second.id
    assert len(events) == 1
    assert isinstance(events[0], PrescriptionUploaded)
    assert (events[0].prescription_id, events[0].order_id) == (first.id, first.order_id)


def test_withdrawing_hides_it_and_asks_once_to_cancel_the_order() -> None:
    prescription, _ = domain.upload(upload(), NOW)

    first = domain.withdraw(prescription, NOW)
    again = domain.withdraw(prescription, NOW)

    assert prescription.status == "WITHDRAWN"
    assert prescription.withdrawn_at == NOW
    assert [type(e) for e in first] == [PrescriptionWithdrawn]
    assert again == []


def test_it_follows_its_order_to_the_end_but_stays_withdrawn() -> None:
    filled, _ = domain.upload(upload(), NOW)
    withdrawn, _ = domain.upload(upload(), NOW)
    domain.withdraw(withdrawn, NOW)

    domain.follow_order(filled, "FILLED")
    domain.follow_order(withdrawn, "CANCELLED")

    assert (filled.status, withdrawn.status) == ("FILLED", "WITHDRAWN")


def test_withdrawing_a_filled_prescription_keeps_its_outcome() -> None:
    prescription, _ = domain.upload(upload(), NOW)
    domain.follow_order(prescription, "FILLED")

    domain.withdraw(prescription, NOW)

    assert prescription.status == "FILLED"
    assert prescription.withdrawn_at == NOW
