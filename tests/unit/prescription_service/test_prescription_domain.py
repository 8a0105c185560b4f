"""A prescription's life in prescription_service/domain.py: upload, withdrawal, and following its order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from contracts.commands import UploadPrescription
from contracts.events import Location, PrescribedLine, PrescriptionUploaded, PrescriptionWithdrawn
from prescription_service import domain
from prescription_service.domain import Prescription, PrescriptionStatus

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
LINES = (
    PrescribedLine(medication_id="ibuprofen", quantity=2),
    PrescribedLine(medication_id="amoxicillin", quantity=1),
)
HOME = Location(latitude=52.52, longitude=13.405)


def upload_command() -> UploadPrescription:
    return UploadPrescription(
        patient_id="patient-1", lines=LINES, delivery_location=HOME, payment_method_id="card-1"
    )


def uploaded() -> Prescription:
    prescription, _ = domain.upload(upload_command(), NOW)
    return prescription


def test_upload_is_processing_and_emits_prescription_uploaded_with_its_order_id() -> None:
    prescription, events = domain.upload(upload_command(), NOW)

    assert prescription.status == "PROCESSING"
    assert (prescription.uploaded_at, prescription.withdrawn_at) == (NOW, None)
    assert prescription.lines == list(LINES)
    assert events == [
        PrescriptionUploaded(
            prescription_id=prescription.id,
            order_id=prescription.order_id,
            patient_id="patient-1",
            lines=LINES,
            delivery_location=HOME,
            payment_method_id="card-1",
        )
    ]


def test_every_upload_gets_a_fresh_order_id_of_its_own() -> None:
    prescriptions = [uploaded() for _ in range(20)]

    order_ids = {p.order_id for p in prescriptions}
    prescription_ids = {p.id for p in prescriptions}

    assert len(order_ids) == 20
    assert len(prescription_ids) == 20
    assert not order_ids & prescription_ids
    assert all(UUID(order_id).version == 4 for order_id in order_ids)


def test_withdrawing_a_processing_prescription_withdraws_it_and_emits_prescription_withdrawn() -> None:
    prescription = uploaded()

    events = domain.withdraw(prescription, NOW)

    assert prescription.status == "WITHDRAWN"
    assert prescription.withdrawn_at == NOW
    assert events == [
        PrescriptionWithdrawn(
            prescription_id=prescription.id, order_id=prescription.order_id, patient_id="patient-1"
        )
    ]


def test_withdrawing_twice_emits_nothing_the_second_time_and_keeps_the_first_time() -> None:
    prescription = uploaded()
    domain.withdraw(prescription, NOW)

    again = domain.withdraw(prescription, LATER)

    assert again == []
    assert (prescription.status, prescription.withdrawn_at) == ("WITHDRAWN", NOW)


@pytest.mark.parametrize("outcome", ["FILLED", "REJECTED", "CANCELLED"])
def test_a_processing_prescription_takes_the_outcome_of_its_order(outcome: PrescriptionStatus) -> None:
    prescription = uploaded()

    events = domain.follow_order(prescription, outcome)

    assert events == []
    assert prescription.status == outcome


@pytest.mark.parametrize("outcome", ["REJECTED", "CANCELLED"])
def test_an_order_ending_unsold_does_not_overwrite_a_withdrawal(outcome: PrescriptionStatus) -> None:
    prescription = uploaded()
    domain.withdraw(prescription, NOW)

    domain.follow_order(prescription, outcome)

    assert prescription.status == "WITHDRAWN"


def test_an_order_paid_before_the_withdrawal_reached_it_fills_the_prescription_all_the_same() -> None:
    # order_service leaves a paid order alone when it hears of the withdrawal: the medicines were sold.
    prescription = uploaded()
    domain.withdraw(prescription, NOW)

    domain.follow_order(prescription, "FILLED")

    assert (prescription.status, prescription.withdrawn_at, prescription.listed) == ("FILLED", NOW, False)


# What an order can tell its prescription, in the order order_service publishes it.
ORDER_ENDINGS: list[list[PrescriptionStatus]] = [
    ["FILLED"],
    ["REJECTED"],
    ["CANCELLED"],
    ["FILLED", "CANCELLED"],
    ["FILLED", "RETURNED"],
]


@pytest.mark.parametrize("endings", ORDER_ENDINGS, ids="-then-".join)
def test_a_withdrawal_comes_to_the_same_state_wherever_it_falls_among_the_orders_events(
    endings: list[PrescriptionStatus],
) -> None:
    # Live, the withdrawal and the order's events race; a rebuild from the journal may apply them in
    # another order. Each order gives the same prescription.
    states = set()
    for at in range(len(endings) + 1):
        prescription = uploaded()
        for n, outcome in enumerate(endings):
            if n == at:
                domain.withdraw(prescription, NOW)
            domain.follow_order(prescription, outcome)
        if at == len(endings):
            domain.withdraw(prescription, NOW)
        states.add((prescription.status, prescription.withdrawn_at, prescription.listed))

    expected = "FILLED" if endings[-1] == "FILLED" else "WITHDRAWN"
    assert states == {(expected, NOW, False)}


@pytest.mark.parametrize(
    ("first", "later"),
    [("CANCELLED", "FILLED"), ("REJECTED", "CANCELLED"), ("REJECTED", "FILLED"), ("FILLED", "REJECTED")],
)
def test_once_its_order_has_ended_a_later_outcome_does_not_change_it(
    first: PrescriptionStatus, later: PrescriptionStatus
) -> None:
    prescription = uploaded()
    domain.follow_order(prescription, first)

    domain.follow_order(prescription, later)

    assert prescription.status == first


def test_a_filled_prescription_whose_order_is_cancelled_after_all_is_cancelled() -> None:
    # A payment that lost the race with the reservation's expiry: confirmed, then cancelled and refunded.
    prescription = uploaded()
    domain.follow_order(prescription, "FILLED")

    events = domain.follow_order(prescription, "CANCELLED")

    assert events == []
    assert prescription.status == "CANCELLED"


def test_a_filled_prescription_whose_order_came_back_undelivered_is_returned_not_filled() -> None:
    # Paid, dispensed, then every delivery attempt failed: refunded, its medicines never resold.
    prescription = uploaded()
    domain.follow_order(prescription, "FILLED", prescription.order_id)

    events = domain.follow_order(prescription, "RETURNED", prescription.order_id)

    assert events == []
    assert prescription.status == "RETURNED"


def test_withdrawing_a_filled_prescription_hides_it_but_keeps_its_outcome() -> None:
    prescription = uploaded()
    domain.follow_order(prescription, "FILLED")

    events = domain.withdraw(prescription, NOW)

    assert prescription.status == "FILLED"
    assert prescription.withdrawn_at == NOW
    # order_service hears of it and leaves a paid order alone.
    assert [type(e) for e in events] == [PrescriptionWithdrawn]


def test_the_view_shows_the_status_and_what_was_prescribed() -> None:
    prescription = uploaded()
    domain.withdraw(prescription, NOW)

    view = prescription.view()

    assert (view.id, view.order_id, view.status) == (prescription.id, prescription.order_id, "WITHDRAWN")
    assert view.lines == LINES


def test_the_view_read_on_a_day_says_the_refills_left_and_the_last_valid_day() -> None:
    prescription = uploaded()
    prescription.repeats_allowed = 2
    prescription.refill_order_ids, prescription.refills_filled = ["refill-1"], ["refill-1"]

    view = prescription.view(NOW.date())

    assert (view.refills_left, view.last_valid_day) == (1, domain.last_valid_day(prescription))
    assert view.last_valid_day == datetime(2027, 5, 26).date()  # six months after its upload
    # Without the day (an answer to a decision), it says neither.
    assert (prescription.view().refills_left, prescription.view().last_valid_day) == (None, None)


def test_an_upload_again_with_the_same_contents_gets_the_prescription_it_made() -> None:
    first = uploaded()

    again = domain.upload_again(first, upload_command())

    assert again is first


@pytest.mark.parametrize(
    "change",
    [
        {"patient_id": "patient-2"},
        {"lines": LINES[:1]},
        {"lines": (LINES[1], LINES[0])},
        {"delivery_location": Location(latitude=52.52, longitude=13.406)},
        {"payment_method_id": "card-2"},
    ],
)
def test_an_upload_again_with_other_contents_is_refused(change: dict[str, object]) -> None:
    first = uploaded()
    other = upload_command().model_copy(update=change)

    with pytest.raises(domain.UploadKeyReused):
        domain.upload_again(first, other)


def test_the_fingerprint_leaves_out_the_request_id_and_survives_a_rebuild_from_the_journal() -> None:
    prescription, [event] = domain.upload(upload_command().model_copy(update={"request_id": "r-1"}), NOW)
    assert isinstance(event, PrescriptionUploaded)

    restored = domain.restore_upload(event, NOW)

    assert prescription.fingerprint == restored.fingerprint == domain.upload_fingerprint(upload_command())
    assert domain.upload_again(restored, upload_command()) is restored


def test_a_prescription_stored_before_fingerprints_were_kept_is_answered_as_it_is() -> None:
    stored = uploaded().model_dump(exclude={"fingerprint"})
    old = Prescription.model_validate(stored)

    assert old.fingerprint is None
    assert domain.upload_again(old, upload_command().model_copy(update={"payment_method_id": "x"})) is old
