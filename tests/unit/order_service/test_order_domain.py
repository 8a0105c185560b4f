"""The order's state machine in order_service/domain.py: every move, the event it causes, and the moves
it refuses. Pure: no broker, no store, the clock passed in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from contracts.commands import StatusChange
from contracts.events import (
    LineShortage,
    Location,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderRejected,
    PaymentApproved,
    PaymentDeclined,
    PaymentRefunded,
    PrescribedLine,
    PrescriptionUploaded,
    ReservationExpired,
    ReservedLine,
    StockReservationFailed,
    StockReserved,
)
from order_service import domain
from order_service.domain import Order

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
T1, T2, T3 = (T0 + timedelta(minutes=n) for n in (1, 2, 3))
BERLIN = Location(latitude=52.52, longitude=13.405)


def uploaded() -> PrescriptionUploaded:
    return PrescriptionUploaded(
        prescription_id="rx-1",
        order_id="order-1",
        patient_id="patient-1",
        lines=(
            PrescribedLine(medication_id="ibuprofen", quantity=2),
            PrescribedLine(medication_id="amoxicillin", quantity=1),
        ),
        delivery_location=BERLIN,
        payment_method_id="card-1",
    )


def pending_order() -> Order:
    order, _ = domain.open_order(uploaded(), T0)
    return order


def stock_reserved(pharmacy_id: str = "pharmacy-near", total_cents: int = 1039) -> StockReserved:
    return StockReserved(
        order_id="order-1",
        patient_id="patient-1",
        pharmacy_id=pharmacy_id,
        lines=(
            ReservedLine(medication_id="ibuprofen", quantity=2, unit_price_cents=420),
            ReservedLine(medication_id="amoxicillin", quantity=1, unit_price_cents=199),
        ),
        total_cents=total_cents,
        payment_method_id="card-1",
    )


def reserved_order() -> Order:
    order = pending_order()
    domain.record_reservation(order, stock_reserved(), T1)
    return order


def payment_approved() -> PaymentApproved:
    return PaymentApproved(payment_id="pay-1", order_id="order-1", patient_id="patient-1", amount_cents=1039)


def payment_declined(reason: str = "insufficient funds") -> PaymentDeclined:
    return PaymentDeclined(
        payment_id="pay-1", order_id="order-1", patient_id="patient-1", amount_cents=1039, reason=reason
    )


def confirmed_order() -> Order:
    order = reserved_order()
    domain.confirm_paid(order, payment_approved(), T2)
    return order


def rejected_order() -> Order:
    order = pending_order()
    domain.reject_for_shortage(order, StockReservationFailed(order_id="order-1", shortages=()), T1)
    return order


def cancelled_order() -> Order:
    order = reserved_order()
    domain.cancel(order, "changed my mind", T2)
    return order


def test_open_order_is_pending_and_emits_order_created_for_the_prescription() -> None:
    order, events = domain.open_order(uploaded(), T0)

    assert order.id == "order-1"  # the id prescription_service chose: the saga's correlation id
    assert order.status == "PENDING"
    assert (order.prescription_id, order.patient_id, order.payment_method_id) == (
        "rx-1",
        "patient-1",
        "card-1",
    )
    assert order.lines == list(uploaded().lines)
    assert order.created_at == T0
    assert (order.pharmacy_id, order.total_cents, order.payment_id) == (None, None, None)
    assert events == [
        OrderCreated(
            order_id="order-1",
            prescription_id="rx-1",
            patient_id="patient-1",
            lines=uploaded().lines,
            delivery_location=BERLIN,
            payment_method_id="card-1",
        )
    ]


def test_reservation_moves_pending_to_stock_reserved_with_total_and_pharmacy() -> None:
    order = pending_order()

    events = domain.record_reservation(order, stock_reserved(), T1)

    assert events == []  # payment_service starts from StockReserved itself
    assert order.status == "STOCK_RESERVED"
    assert order.pharmacy_id == "pharmacy-near"
    assert order.total_cents == 1039
    assert order.priced_lines == list(stock_reserved().lines)


def test_a_second_reservation_does_not_move_the_order_to_another_pharmacy() -> None:
    order = reserved_order()

    events = domain.record_reservation(order, stock_reserved("pharmacy-far", 9999), T2)

    assert events == []
    assert (order.status, order.pharmacy_id, order.total_cents) == ("STOCK_RESERVED", "pharmacy-near", 1039)
    assert len(order.history) == 2


def test_shortage_rejects_the_order_with_the_reason_per_line() -> None:
    order = pending_order()
    shortages = (
        LineShortage(
            medication_id="ibuprofen",
            requested=2,
            best_available=1,
            reason="at most 1 available at one pharmacy within 50 km",
        ),
        LineShortage(medication_id="amoxicillin", requested=1, best_available=0, reason="discontinued"),
    )

    events = domain.reject_for_shortage(
        order, StockReservationFailed(order_id="order-1", shortages=shortages), T1
    )

    reason = "ibuprofen: at most 1 available at one pharmacy within 50 km; amoxicillin: discontinued"
    assert order.status == "REJECTED"
    assert order.shortages == list(shortages)
    assert order.history[-1] == StatusChange(status="REJECTED", at=T1, reason=reason)
    assert events == [
        OrderRejected(order_id="order-1", prescription_id="rx-1", patient_id="patient-1", reason=reason)
    ]


def test_a_shortage_naming_no_line_still_gives_the_patient_a_reason() -> None:
    order = pending_order()

    events = domain.reject_for_shortage(order, StockReservationFailed(order_id="order-1", shortages=()), T1)

    assert order.history[-1].reason == "stock unavailable"
    assert [e.reason for e in events if isinstance(e, OrderRejected)] == ["stock unavailable"]


def test_payment_confirms_a_reserved_order_and_emits_order_confirmed() -> None:
    order = reserved_order()

    events = domain.confirm_paid(order, payment_approved(), T2)

    assert order.status == "CONFIRMED"
    assert order.payment_id == "pay-1"
    assert events == [
        OrderConfirmed(
            order_id="order-1",
            prescription_id="rx-1",
            patient_id="patient-1",
            pharmacy_id="pharmacy-near",
            total_cents=1039,
        )
    ]


def test_a_redelivered_payment_confirms_the_order_only_once() -> None:
    order = confirmed_order()

    events = domain.confirm_paid(order, payment_approved(), T3)

    assert events == []
    assert [change.status for change in order.history].count("CONFIRMED") == 1


def test_payment_landing_on_a_cancelled_order_changes_nothing_and_emits_nothing() -> None:
    order = cancelled_order()
    history_before = list(order.history)

    events = domain.confirm_paid(order, payment_approved(), T3)

    assert events == []
    assert order.status == "CANCELLED"
    assert order.history == history_before
    # The charge is remembered so the refund payment_service makes can be traced to this order.
    assert order.payment_id == "pay-1"


@pytest.mark.parametrize("status", ["PENDING", "STOCK_RESERVED"])
def test_an_unpaid_order_can_be_cancelled_with_its_reason(status: str) -> None:
    order = pending_order() if status == "PENDING" else reserved_order()

    events = domain.cancel(order, "changed my mind", T2)

    assert order.status == "CANCELLED"
    assert order.history[-1] == StatusChange(status="CANCELLED", at=T2, reason="changed my mind")
    assert events == [
        OrderCancelled(
            order_id="order-1", prescription_id="rx-1", patient_id="patient-1", reason="changed my mind"
        )
    ]


@pytest.mark.parametrize(
    ("make", "status"),
    [(rejected_order, "REJECTED"), (cancelled_order, "CANCELLED")],
)
def test_cancel_refuses_an_order_that_has_ended(make: Callable[[], Order], status: str) -> None:
    # A courier's order (OUT_FOR_DELIVERY and after): tests/unit/order_service/test_order_delivery.py.
    order = make()
    history_before = list(order.history)

    with pytest.raises(domain.OrderNotCancellable, match=status):
        domain.cancel(order, "too late", T3)

    assert order.status == status
    assert order.history == history_before


def test_declined_payment_cancels_the_order_and_says_why() -> None:
    order = reserved_order()

    events = domain.cancel_for_declined_payment(order, payment_declined("insufficient funds"), T2)

    reason = "payment declined: insufficient funds"
    assert order.status == "CANCELLED"
    assert order.payment_id == "pay-1"
    assert order.history[-1] == StatusChange(status="CANCELLED", at=T2, reason=reason)
    assert events == [
        OrderCancelled(order_id="order-1", prescription_id="rx-1", patient_id="patient-1", reason=reason)
    ]


def test_declined_payment_for_an_order_already_cancelled_keeps_the_first_reason() -> None:
    order = cancelled_order()

    events = domain.cancel_for_declined_payment(order, payment_declined(), T3)

    assert events == []
    assert order.history[-1].reason == "changed my mind"
    assert [change.status for change in order.history].count("CANCELLED") == 1


def test_late_stock_news_for_a_cancelled_order_changes_nothing() -> None:
    order = pending_order()
    domain.cancel(order, "changed my mind", T1)
    shortage = LineShortage(medication_id="ibuprofen", requested=2, best_available=0, reason="gone")
    failed = StockReservationFailed(order_id="order-1", shortages=(shortage,))

    assert domain.record_reservation(order, stock_reserved(), T2) == []
    assert domain.reject_for_shortage(order, failed, T3) == []
    assert order.status == "CANCELLED"
    assert (order.pharmacy_id, order.total_cents, order.shortages) == (None, None, [])


def test_history_records_every_status_with_its_time() -> None:
    order = confirmed_order()

    assert order.history == [
        StatusChange(status="PENDING", at=T0),
        StatusChange(status="STOCK_RESERVED", at=T1),
        StatusChange(status="CONFIRMED", at=T2),
    ]
    assert order.view().history == tuple(order.history)


def test_a_withdrawn_prescription_cancels_an_open_order_but_leaves_a_paid_one() -> None:
    open_order = reserved_order()
    paid = confirmed_order()

    cancelled = domain.cancel_if_open(open_order, "prescription withdrawn", T3)
    untouched = domain.cancel_if_open(paid, "prescription withdrawn", T3)

    assert [type(e) for e in cancelled] == [OrderCancelled]
    assert open_order.status == "CANCELLED"
    assert untouched == []
    assert paid.status == "CONFIRMED"


def test_refunds_add_up_on_the_order() -> None:
    order = cancelled_order()

    for cents in (600, 439):
        refund = PaymentRefunded(payment_id="pay-1", order_id="order-1", amount_cents=cents, reason="r")
        assert domain.record_refund(order, refund) == []

    assert order.refunded_cents == 1039
    assert order.status == "CANCELLED"


def test_the_view_shows_what_the_patient_may_see_of_the_order() -> None:
    view = confirmed_order().view()

    assert (view.id, view.status, view.pharmacy_id, view.total_cents) == (
        "order-1",
        "CONFIRMED",
        "pharmacy-near",
        1039,
    )
    assert view.priced_lines == stock_reserved().lines
    assert view.lines == uploaded().lines


# --- the reservation's hold runs out --------------------------------------------------------------


def reservation_expired() -> ReservationExpired:
    return ReservationExpired(
        reservation_id="order-1",
        order_id="order-1",
        pharmacy_id="pharmacy-near",
        reason="payment not received within 15 minutes",
    )


@pytest.mark.parametrize("make", [pending_order, reserved_order], ids=["PENDING", "STOCK_RESERVED"])
def test_an_expired_reservation_cancels_an_unpaid_order_and_says_why(make: Callable[[], Order]) -> None:
    order = make()

    events = domain.cancel_for_expired_reservation(order, reservation_expired(), T3)

    reason = "reservation expired: payment not received within 15 minutes"
    assert events == [
        OrderCancelled(order_id="order-1", prescription_id="rx-1", patient_id="patient-1", reason=reason)
    ]
    assert order.status == "CANCELLED"
    assert order.history[-1] == StatusChange(status="CANCELLED", at=T3, reason=reason)


def test_a_payment_after_the_expiry_leaves_the_order_cancelled() -> None:
    order = reserved_order()
    domain.cancel_for_expired_reservation(order, reservation_expired(), T2)

    events = domain.confirm_paid(order, payment_approved(), T3)

    assert events == []
    assert order.status == "CANCELLED"
    # Kept, so the refund that follows is matched to the order.
    assert order.payment_id == "pay-1"


def test_an_expiry_heard_after_the_payment_cancels_the_confirmed_order_whose_stock_is_gone() -> None:
    # Inventory expired the hold before it saw the payment: it sold nothing and never will.
    order = confirmed_order()

    events = domain.cancel_for_expired_reservation(order, reservation_expired(), T3)

    assert [type(e) for e in events] == [OrderCancelled]
    assert [c.status for c in order.history] == ["PENDING", "STOCK_RESERVED", "CONFIRMED", "CANCELLED"]


@pytest.mark.parametrize("make", [rejected_order, cancelled_order], ids=["REJECTED", "CANCELLED"])
def test_an_expiry_for_an_order_already_ended_changes_nothing(make: Callable[[], Order]) -> None:
    order = make()
    before = order.model_copy(deep=True)

    events = domain.cancel_for_expired_reservation(order, reservation_expired(), T3)

    assert events == []
    assert order == before
