"""An order whose prescription needs a pharmacist, in order_service/domain.py: it waits, then goes on
or is rejected. Pure: no broker, no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.events import (
    Location,
    OrderCancelled,
    OrderCreated,
    OrderRejected,
    PrescribedLine,
    PrescriptionAnswered,
    PrescriptionHeld,
    PrescriptionRejected,
    PrescriptionUploaded,
    PrescriptionVerified,
)
from order_service import domain
from order_service.domain import Order

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T1, T2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
RX = PrescribedLine(medication_id="amoxicillin", quantity=1, prescription_only=True)
OTC = PrescribedLine(medication_id="ibuprofen", quantity=2)


def uploaded(*lines: PrescribedLine) -> PrescriptionUploaded:
    return PrescriptionUploaded(
        prescription_id="rx-1",
        order_id="order-1",
        patient_id="patient-1",
        lines=lines,
        delivery_location=Location(latitude=52.52, longitude=13.405),
        payment_method_id="card-1",
        document_id="scan-1",
    )


def awaiting() -> Order:
    order, _ = domain.open_order(uploaded(OTC, RX), T0)
    return order


def verified(*lines: PrescribedLine) -> PrescriptionVerified:
    return PrescriptionVerified(
        prescription_id="rx-1",
        order_id="order-1",
        patient_id="patient-1",
        pharmacist_id="pharmacist-1",
        lines=lines or (OTC, RX),
    )


def test_an_order_with_a_prescription_only_line_awaits_verification_and_asks_for_no_stock() -> None:
    order, events = domain.open_order(uploaded(OTC, RX), T0)

    assert order.status == "AWAITING_VERIFICATION"
    assert events == []


def test_an_over_the_counter_order_is_pending_at_once() -> None:
    order, events = domain.open_order(uploaded(OTC), T0)

    assert order.status == "PENDING"
    assert [type(e) for e in events] == [OrderCreated]
    assert isinstance(events[0], OrderCreated)
    assert events[0].verified_by is None


def test_a_verified_prescription_makes_the_order_pending_with_who_verified_it() -> None:
    order = awaiting()
    corrected = PrescribedLine(medication_id="amoxicillin", quantity=3, prescription_only=True)

    events = domain.go_on_verified(order, verified(corrected), T1)

    assert [h.status for h in order.history] == ["AWAITING_VERIFICATION", "PENDING"]
    assert order.lines == [corrected]
    assert len(events) == 1
    created = events[0]
    assert isinstance(created, OrderCreated)
    assert (created.verified_by, created.lines) == ("pharmacist-1", (corrected,))


def test_a_rejected_prescription_rejects_the_order_with_the_reason() -> None:
    order = awaiting()
    rejected = PrescriptionRejected(
        prescription_id="rx-1",
        order_id="order-1",
        patient_id="patient-1",
        pharmacist_id="pharmacist-1",
        reason="EXPIRED",
        note="expired in October",
    )

    events = domain.reject_unverified(order, rejected, T1)

    assert order.status == "REJECTED"
    assert order.history[-1].reason == "prescription rejected by a pharmacist: EXPIRED (expired in October)"
    assert [type(e) for e in events] == [OrderRejected]


def test_an_order_awaiting_verification_can_be_cancelled_and_a_late_approval_changes_nothing() -> None:
    order = awaiting()

    cancelled = domain.cancel(order, "changed my mind", T1)
    late = domain.go_on_verified(order, verified(), T2)

    assert [type(e) for e in cancelled] == [OrderCancelled]
    assert order.status == "CANCELLED"
    assert late == []


def test_a_question_and_its_answer_show_in_the_history_and_the_order_still_waits() -> None:
    order = awaiting()
    common = {"prescription_id": "rx-1", "order_id": "order-1", "patient_id": "patient-1"}

    domain.note_verification_wait(order, PrescriptionHeld(**common, pharmacist_id="ph", question="?"), T1)
    domain.note_verification_wait(order, PrescriptionAnswered(**common, answer="!"), T2)

    assert order.status == "AWAITING_VERIFICATION"
    assert [h.reason for h in order.history[1:]] == [
        "the pharmacist asked you a question",
        "answered: back with the pharmacist",
    ]


@pytest.mark.parametrize("status", ["PENDING", "CANCELLED", "REJECTED"])
def test_verification_events_move_only_an_order_awaiting_them(status: str) -> None:
    order = awaiting()
    order.status = status  # type: ignore[assignment]

    assert domain.go_on_verified(order, verified(), T1) == []
    assert order.status == status
