"""The order's state machine, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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
    ReservedLine,
    StockReservationFailed,
    StockReserved,
)
from order_service import domain
from order_service.domain import Order

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def pending_order() -> Order:
    uploaded = PrescriptionUploaded(
        prescription_id="rx-1",
        order_id="o-1",
        patient_id="pat-1",
        lines=(PrescribedLine(medication_id="m-1", quantity=2),),
        delivery_location=Location(latitude=52.5, longitude=13.4),
        payment_method_id="pm-1",
    )
    order, _ = domain.open_order(uploaded, NOW)
    return order


def reserved(order: Order) -> Order:
    event = StockReserved(
        order_id=order.id,
        patient_id=order.patient_id,
        pharmacy_id="ph-1",
        lines=(ReservedLine(medication_id="m-1", quantity=2, unit_price_cents=420),),
        total_cents=840,
        payment_method_id="pm-1",
    )
    assert domain.record_reservation(order, event, NOW) == []
    return order


def approved(order: Order) -> PaymentApproved:
    return PaymentApproved(
        payment_id="pay-1", order_id=order.id, patient_id=order.patient_id, amount_cents=840
    )


def test_an_uploaded_prescription_opens_a_pending_order_that_asks_for_stock() -> None:
    uploaded = PrescriptionUploaded(
        prescription_id="rx-1",
        order_id="o-1",
        patient_id="pat-1",
        lines=(PrescribedLine(medication_id="m-1", quantity=2),),
        delivery_location=Location(latitude=52.5, longitude=13.4),
        payment_method_id="pm-1",
    )

    order, events = domain.open_order(uploaded, NOW)

    assert (order.id, order.status, order.prescription_id) == ("o-1", "PENDING", "rx-1")
    assert [(h.status, h.at) for h in order.history] == [("PENDING", NOW)]
    assert events == [
        OrderCreated(
            order_id="o-1",
            prescription_id="rx-1",
            patient_id="pat-1",
            lines=uploaded.lines,
            delivery_location=uploaded.delivery_location,
            payment_method_id="pm-1",
        )
    ]


def test_reserved_stock_prices_the_order_and_waits_for_payment() -> None:
    order = reserved(pending_order())

    assert order.status == "STOCK_RESERVED"
    assert (order.pharmacy_id, order.total_cents) == ("ph-1", 840)
    assert [line.unit_price_cents for line in order.priced_lines] == [420]


def test_payment_confirms_a_reserved_order() -> None:
    order = reserved(pending_order())

    events = domain.confirm_paid(order, approved(order), NOW)

    assert order.status == "CONFIRMED"
    assert [h.status for h in order.history] == ["PENDING", "STOCK_RESERVED", "CONFIRMED"]
    assert events == [
        OrderConfirmed(
            order_id="o-1", prescription_id="rx-1", patient_id="pat-1", pharmacy_id="ph-1", total_cents=840
        )
    ]


def test_shortage_rejects_the_order_with_the_reason_per_line() -> None:
    order = pending_order()
    shortage = LineShortage(medication_id="m-1", requested=2, best_available=1, reason="at most 1 available")

    events = domain.reject_for_shortage(
        order, StockReservationFailed(order_id="o-1", shortages=(shortage,)), NOW
    )

    assert order.status == "REJECTED"
    assert order.shortages == [shortage]
    assert order.history[-1].reason == "m-1: at most 1 available"
    assert [type(e) for e in events] == [OrderRejected]


def test_declined_payment_cancels_the_order_with_the_reason() -> None:
    order = reserved(pending_order())
    declined = PaymentDeclined(
        payment_id="pay-1", order_id="o-1", patient_id="pat-1", amount_cents=840, reason="card declined"
    )

    events = domain.cancel_for_declined_payment(order, declined, NOW)

    assert order.status == "CANCELLED"
    assert order.history[-1].reason == "payment declined: card declined"
    assert events == [
        OrderCancelled(
            order_id="o-1",
            prescription_id="rx-1",
            patient_id="pat-1",
            reason="payment declined: card declined",
        )
    ]


@pytest.mark.parametrize("status", ["PENDING", "STOCK_RESERVED"])
def test_an_unpaid_order_can_be_cancelled(status: str) -> None:
    order = pending_order() if status == "PENDING" else reserved(pending_order())

    events = domain.cancel(order, "changed my mind", NOW)

    assert order.status == "CANCELLED"
    assert [type(e) for e in events] == [OrderCancelled]


def test_a_paid_or_finished_order_cannot_be_cancelled() -> None:
    confirmed = reserved(pending_order())
    domain.confirm_paid(confirmed, approved(confirmed), NOW)
    rejected = pending_order()
    domain.reject_for_shortage(rejected, StockReservationFailed(order_id="o-1", shortages=()), NOW)

    for order in (confirmed, rejected):
        with pytest.raises(domain.OrderNotCancellable):
            domain.cancel(order, "too late", NOW)
        assert order.status in {"CONFIRMED", "REJECTED"}


def test_late_payment_for_a_cancelled_order_changes_nothing_but_is_remembered() -> None:
    order = reserved(pending_order())
    domain.cancel(order, "changed my mind", NOW)

    events = domain.confirm_paid(order, approved(order), NOW)

    assert events == []
    assert order.status == "CANCELLED"
    assert order.payment_id == "pay-1"


def test_late_stock_or_shortage_for_a_cancelled_order_changes_nothing() -> None:
    order = pending_order()
    domain.cancel(order, "changed my mind", NOW)
    reservation = StockReserved(
        order_id="o-1",
        patient_id="pat-1",
        pharmacy_id="ph-1",
        lines=(),
        total_cents=0,
        payment_method_id="pm-1",
    )

    assert domain.record_reservation(order, reservation, NOW) == []
    assert domain.reject_for_shortage(order, StockReservationFailed(order_id="o-1", shortages=()), NOW) == []
    assert order.status == "CANCELLED"
    assert order.pharmacy_id is None


def test_withdrawn_prescription_cancels_only_an_open_order() -> None:
    open_order = pending_order()
    paid = reserved(pending_order())
    domain.confirm_paid(paid, approved(paid), NOW)

    assert [type(e) for e in domain.cancel_if_open(open_order, "withdrawn", NOW)] == [OrderCancelled]
    assert domain.cancel_if_open(paid, "withdrawn", NOW) == []
    assert paid.status == "CONFIRMED"


def test_refunds_add_up_on_the_order() -> None:
    order = reserved(pending_order())
    refund = PaymentRefunded(payment_id="pay-1", order_id="o-1", amount_cents=840, reason="cancelled")

    domain.record_refund(order, refund)

    assert order.view().refunded_cents == 840
