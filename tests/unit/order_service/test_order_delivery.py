"""The order after payment in order_service/domain.py: dispensed, carried, handed over or brought back,
and what a cancel may still do. Pure: no broker, no store, the clock passed in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from contracts.events import (
    DeliveryAssigned,
    DeliveryAttemptFailed,
    DeliveryCompleted,
    DeliveryPickedUp,
    DeliveryReturned,
    DeliveryUnassigned,
    DeliveryWindow,
    Location,
    OrderCancelled,
    OrderDispensed,
    OrderReadyForPickup,
    OrderReturned,
    PaymentApproved,
    PaymentCaptured,
    PrescribedLine,
    PrescriptionUploaded,
    ReservedLine,
    StockReserved,
)
from order_service import domain
from order_service.domain import Order

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
T = [T0 + timedelta(minutes=n) for n in range(10)]
HOME = Location(latitude=52.52, longitude=13.405)
SHOP = Location(latitude=52.50, longitude=13.40)
WINDOW = DeliveryWindow(start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=4))
LINES = (
    PrescribedLine(medication_id="ibuprofen", quantity=2),
    PrescribedLine(medication_id="oxycodone", quantity=1, prescription_only=True, schedule="II"),
)


def confirmed(lines: tuple[PrescribedLine, ...] = LINES[:1]) -> Order:
    uploaded = PrescriptionUploaded(
        prescription_id="rx-1",
        order_id="order-1",
        patient_id="patient-1",
        lines=lines,
        delivery_location=HOME,
        payment_method_id="card-1",
        delivery_window=WINDOW,
    )
    order, _ = domain.open_order(uploaded, T[0])
    order.status = "PENDING"  # past verification, where a controlled line waits (test_order_verification)
    reserved = StockReserved(
        order_id="order-1",
        patient_id="patient-1",
        pharmacy_id="pharmacy-1",
        lines=(ReservedLine(medication_id="ibuprofen", quantity=2, unit_price_cents=420),),
        total_cents=840 + 199 + 349,
        payment_method_id="card-1",
        service_fee_cents=199,
        delivery_fee_cents=349,
    )
    domain.record_reservation(order, reserved, T[1])
    domain.confirm_paid(
        order,
        PaymentApproved(payment_id="pay-1", order_id="order-1", patient_id="patient-1", amount_cents=1388),
        T[2],
    )
    assert order.view().status == "CONFIRMED"
    return order


def dispensed(order: Order) -> list[object]:
    event = OrderDispensed(
        order_id="order-1",
        pharmacy_id="pharmacy-1",
        pharmacist_id="pharmacist-1",
        lines=(ReservedLine(medication_id="ibuprofen", quantity=2, unit_price_cents=420),),
        pharmacy_location=SHOP,
    )
    return list(domain.ready_for_pickup(order, event, T[3]))


def ready() -> Order:
    order = confirmed()
    dispensed(order)
    return order


def assigned() -> DeliveryAssigned:
    return DeliveryAssigned(
        delivery_id="order-1", order_id="order-1", courier_id="courier-1", eta=T[9], proof="NAME"
    )


def unassigned(courier_id: str = "courier-1") -> DeliveryUnassigned:
    return DeliveryUnassigned(
        delivery_id="order-1", order_id="order-1", courier_id=courier_id, reason="went off duty"
    )


def out_for_delivery() -> Order:
    order = ready()
    domain.courier_assigned(order, assigned(), T[4])
    domain.picked_up(
        order,
        DeliveryPickedUp(delivery_id="order-1", order_id="order-1", courier_id="courier-1", eta=T[9]),
        T[5],
    )
    return order


def failed(attempt: int, retrying: bool) -> DeliveryAttemptFailed:
    return DeliveryAttemptFailed(
        delivery_id="order-1",
        order_id="order-1",
        courier_id="courier-1",
        reason="NO_ONE_HOME",
        attempt=attempt,
        retrying=retrying,
    )


def test_the_price_keeps_its_fees_and_the_window_travels_with_the_order() -> None:
    order = confirmed()

    view = order.view()

    assert (view.total_cents, view.service_fee_cents, view.delivery_fee_cents) == (1388, 199, 349)
    assert view.delivery_window == WINDOW


def test_dispensed_it_waits_for_a_courier_and_tells_delivery_all_it_needs() -> None:
    order = confirmed()

    events = dispensed(order)

    assert order.status == "READY_FOR_PICKUP"
    assert order.dispensed_by == "pharmacist-1"
    assert events == [
        OrderReadyForPickup(
            order_id="order-1",
            patient_id="patient-1",
            pharmacy_id="pharmacy-1",
            pharmacy_location=SHOP,
            delivery_location=HOME,
            delivery_window=WINDOW,
            total_cents=1388,
            controlled=False,
        )
    ]


def test_a_controlled_line_asks_delivery_for_a_pin() -> None:
    order = confirmed(LINES)

    (ready_event,) = dispensed(order)

    assert isinstance(ready_event, OrderReadyForPickup)
    assert ready_event.controlled is True


def test_an_order_cancelled_before_its_dispensing_was_heard_stays_cancelled() -> None:
    order = confirmed()
    domain.cancel(order, "changed my mind", T[3])

    events = dispensed(order)

    assert (order.status, events) == ("CANCELLED", [])


def test_a_dispensed_order_heard_twice_moves_once() -> None:
    order = ready()

    again = dispensed(order)

    assert again == []
    assert [c.status for c in order.history].count("READY_FOR_PICKUP") == 1


def test_the_courier_on_the_way_and_the_pickup_are_in_the_order() -> None:
    order = out_for_delivery()

    assert order.status == "OUT_FOR_DELIVERY"
    assert order.delivery is not None
    assert (order.delivery.courier_id, order.delivery.eta, order.delivery.proof) == (
        "courier-1",
        T[9],
        "NAME",
    )
    assert [c.status for c in order.history][-3:] == [
        "READY_FOR_PICKUP",
        "READY_FOR_PICKUP",
        "OUT_FOR_DELIVERY",
    ]


def test_handed_over_it_is_delivered_with_its_proof() -> None:
    order = out_for_delivery()

    completed = DeliveryCompleted(
        delivery_id="order-1", order_id="order-1", courier_id="courier-1", proof="NAME", recipient_name="Ana"
    )
    domain.delivered(order, completed, T[6])

    assert order.status == "DELIVERED"
    assert order.delivery is not None
    assert (order.delivery.recipient_name, order.delivery.delivered_at) == ("Ana", T[6])
    assert {"DELIVERED"} <= domain.TERMINAL


def test_a_failed_attempt_then_a_second_that_succeeds() -> None:
    order = out_for_delivery()

    domain.attempt_failed(order, failed(1, retrying=True), T[6])
    assert order.status == "DELIVERY_FAILED"
    assert order.delivery is not None
    assert order.delivery.failed_attempts == 1
    assert "another attempt follows" in (order.history[-1].reason or "")

    domain.delivered(
        order,
        DeliveryCompleted(delivery_id="order-1", order_id="order-1", courier_id="courier-1", proof="PIN"),
        T[7],
    )
    assert order.view().status == "DELIVERED"


def test_the_last_failed_attempt_returns_it_to_the_pharmacy() -> None:
    order = out_for_delivery()
    domain.attempt_failed(order, failed(1, retrying=True), T[6])
    domain.attempt_failed(order, failed(2, retrying=False), T[7])

    events = domain.returned(
        order,
        DeliveryReturned(
            delivery_id="order-1", order_id="order-1", pharmacy_id="pharmacy-1", reason="NO_ONE_HOME x2"
        ),
        T[8],
    )

    assert order.status == "RETURNED"
    assert "NO_ONE_HOME x2" in (order.history[-1].reason or "")
    # The prescription hears of it: its fill (or the refill's repeat) did not happen.
    assert events == [
        OrderReturned(
            order_id="order-1",
            prescription_id=order.prescription_id,
            patient_id=order.patient_id,
            reason="NO_ONE_HOME x2",
        )
    ]


def test_paid_and_not_dispensed_the_patient_may_cancel() -> None:
    order = confirmed()

    events = domain.cancel(order, "changed my mind", T[6])

    assert order.status == "CANCELLED"
    assert [type(e) for e in events] == [OrderCancelled]


@pytest.mark.parametrize("make", [ready, out_for_delivery], ids=["READY_FOR_PICKUP", "OUT_FOR_DELIVERY"])
def test_once_dispensed_a_cancel_is_refused_and_changes_nothing(make: Callable[[], Order]) -> None:
    # The courier's side decides from there: a cancel decided here could not know of a pickup.
    order = make()
    before = (order.status, list(order.history))

    with pytest.raises(domain.OrderNotCancellable, match=order.status):
        domain.cancel(order, "too late", T[6])

    assert (order.status, order.history) == before


def test_a_withdrawal_leaves_a_paid_order_alone() -> None:
    order = confirmed()

    assert domain.cancel_if_open(order, "prescription withdrawn by the patient", T[6]) == []
    assert order.status == "CONFIRMED"


def test_a_pickup_heard_after_a_cancel_leaves_it_cancelled() -> None:
    order = ready()
    order.status = "CANCELLED"  # as an order cancelled before a rule change left it

    domain.picked_up(
        order,
        DeliveryPickedUp(delivery_id="order-1", order_id="order-1", courier_id="courier-1", eta=T[9]),
        T[5],
    )

    assert order.status == "CANCELLED"


def test_money_taken_is_recorded() -> None:
    order = out_for_delivery()

    domain.record_capture(order, PaymentCaptured(payment_id="pay-1", order_id="order-1", amount_cents=1388))
    assert order.view().captured_cents == 1388


def test_a_courier_handing_the_delivery_back_leaves_the_order_ready_without_a_courier() -> None:
    order = ready()
    domain.courier_assigned(order, assigned(), T[4])

    domain.courier_unassigned(order, unassigned(), T[5])

    view = order.view()
    assert view.status == "READY_FOR_PICKUP"
    assert view.delivery is not None
    assert (view.delivery.courier_id, view.delivery.eta, view.delivery.proof) == (None, None, "NAME")
    assert "went off duty" in (order.history[-1].reason or "")
    again = domain.courier_assigned(order, assigned().model_copy(update={"courier_id": "courier-2"}), T[6])
    assert again == []
    assert order.view().delivery == view.delivery.model_copy(update={"courier_id": "courier-2", "eta": T[9]})


def test_a_hand_back_by_a_courier_the_order_no_longer_shows_changes_nothing() -> None:
    order = ready()
    domain.courier_assigned(order, assigned().model_copy(update={"courier_id": "courier-2"}), T[4])
    history = list(order.history)

    domain.courier_unassigned(order, unassigned("courier-1"), T[5])

    assert order.history == history
    delivery = order.view().delivery
    assert delivery is not None
    assert delivery.courier_id == "courier-2"


def test_the_view_says_whether_the_order_may_be_cancelled_and_whether_it_has_ended() -> None:
    # A client (the web UI) reads these instead of keeping its own copy of the rules.
    paid = confirmed()
    on_its_way = out_for_delivery()
    delivered = out_for_delivery()
    domain.delivered(
        delivered,
        DeliveryCompleted(delivery_id="order-1", order_id="order-1", courier_id="courier-1", proof="NAME"),
        T[7],
    )

    assert (paid.view().cancellable, paid.view().ended) == (True, False)
    assert (on_its_way.view().cancellable, on_its_way.view().ended) == (False, False)
    assert (delivered.view().cancellable, delivered.view().ended) == (False, True)
