"""The order's life: its states, the moves between them, and the events each move causes. No I/O."""

from __future__ import annotations

from datetime import datetime

from contracts.base import Event
from contracts.commands import OrderDelivery, OrderStatus, OrderView, StatusChange
from contracts.events import (
    DeliveryAssigned,
    DeliveryAttemptFailed,
    DeliveryCompleted,
    DeliveryPickedUp,
    DeliveryReturned,
    DeliveryUnassigned,
    DeliveryWindow,
    LineShortage,
    Location,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderDispensed,
    OrderReadyForPickup,
    OrderRejected,
    OrderReturned,
    PaymentApproved,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PrescribedLine,
    PrescriptionAnswered,
    PrescriptionHeld,
    PrescriptionRefilled,
    PrescriptionRejected,
    PrescriptionUploaded,
    PrescriptionVerified,
    ReservationExpired,
    ReservedLine,
    StockReservationFailed,
    StockReserved,
)
from service_runtime.aggregate import Aggregate

TERMINAL: frozenset[OrderStatus] = frozenset({"DELIVERED", "RETURNED", "REJECTED", "CANCELLED"})
# Until its pharmacy dispenses it: a cancel then voids the card's authorisation, nothing is taken, and
# the held stock goes back on the shelf (or, when the dispensing raced the cancel, is recorded
# returned). Not after: once an order is READY_FOR_PICKUP, delivery_service and its courier move it,
# and a cancel decided here from a view that has not heard of the pickup yet would refund a delivered
# order. A dispensed order the patient does not want is refused at the door (RETURNED, refunded).
CANCELLABLE: frozenset[OrderStatus] = frozenset(
    {"AWAITING_VERIFICATION", "PENDING", "STOCK_RESERVED", "CONFIRMED"}
)
# Where a courier's news about the order applies: after it is dispensed and before it ends.
IN_DELIVERY: frozenset[OrderStatus] = frozenset({"READY_FOR_PICKUP", "OUT_FOR_DELIVERY", "DELIVERY_FAILED"})


class OrderNotCancellable(Exception):
    """The order is dispensed, or has ended: a cancel now could lose money or medicine."""


class Order(Aggregate):
    prescription_id: str
    patient_id: str
    status: OrderStatus
    lines: list[PrescribedLine]
    delivery_location: Location
    payment_method_id: str
    pharmacy_id: str | None = None
    priced_lines: list[ReservedLine] = []
    total_cents: int | None = None
    shortages: list[LineShortage] = []
    payment_id: str | None = None
    refunded_cents: int = 0
    history: list[StatusChange]
    created_at: datetime
    # The pharmacist who verified its prescription-only lines; None when none needed it.
    verified_by: str | None = None
    delivery_window: DeliveryWindow | None = None
    service_fee_cents: int = 0
    delivery_fee_cents: int = 0
    # The pharmacist who made the final check, and where the courier collects it.
    dispensed_by: str | None = None
    pharmacy_location: Location | None = None
    delivery: OrderDelivery | None = None
    captured_cents: int = 0

    def _move(self, status: OrderStatus, at: datetime, reason: str | None = None) -> None:
        self.status = status
        self.history.append(StatusChange(status=status, at=at, reason=reason))

    def view(self) -> OrderView:
        return OrderView(
            id=self.id,
            prescription_id=self.prescription_id,
            patient_id=self.patient_id,
            pharmacy_id=self.pharmacy_id,
            status=self.status,
            lines=tuple(self.lines),
            priced_lines=tuple(self.priced_lines),
            total_cents=self.total_cents,
            shortages=tuple(self.shortages),
            refunded_cents=self.refunded_cents,
            history=tuple(self.history),
            created_at=self.created_at,
            delivery_location=self.delivery_location,
            verified_by=self.verified_by,
            delivery_window=self.delivery_window,
            service_fee_cents=self.service_fee_cents,
            delivery_fee_cents=self.delivery_fee_cents,
            dispensed_by=self.dispensed_by,
            delivery=self.delivery,
            captured_cents=self.captured_cents,
            cancellable=self.status in CANCELLABLE,
            ended=self.status in TERMINAL,
        )

    @property
    def controlled(self) -> bool:
        """A controlled drug is among its lines: its hand-over needs the patient's PIN."""
        return any(line.schedule is not None for line in self.lines)


def open_order(uploaded: PrescriptionUploaded, now: datetime) -> tuple[Order, list[Event]]:
    """A new prescription becomes a PENDING order that asks for stock, or, with a prescription-only
    line, an order AWAITING_VERIFICATION by a pharmacist: nothing is reserved or charged until then."""
    waits = any(line.prescription_only or line.schedule is not None for line in uploaded.lines)
    status: OrderStatus = "AWAITING_VERIFICATION" if waits else "PENDING"
    order = Order(
        id=uploaded.order_id,
        prescription_id=uploaded.prescription_id,
        patient_id=uploaded.patient_id,
        status=status,
        lines=list(uploaded.lines),
        delivery_location=uploaded.delivery_location,
        payment_method_id=uploaded.payment_method_id,
        history=[StatusChange(status=status, at=now)],
        created_at=now,
        delivery_window=uploaded.delivery_window,
    )
    return order, [] if waits else [_created(order)]


def open_refill(refilled: PrescriptionRefilled, now: datetime) -> tuple[Order, list[Event]]:
    """A refill of a verified prescription is a new PENDING order, verified by the first fill's pharmacist."""
    order = Order(
        id=refilled.order_id,
        prescription_id=refilled.prescription_id,
        patient_id=refilled.patient_id,
        status="PENDING",
        lines=list(refilled.lines),
        delivery_location=refilled.delivery_location,
        payment_method_id=refilled.payment_method_id,
        history=[StatusChange(status="PENDING", at=now, reason=f"refill {refilled.refill}")],
        created_at=now,
        verified_by=refilled.verified_by,
    )
    return order, [_created(order)]


def _created(order: Order) -> OrderCreated:
    return OrderCreated(
        order_id=order.id,
        prescription_id=order.prescription_id,
        patient_id=order.patient_id,
        lines=tuple(order.lines),
        delivery_location=order.delivery_location,
        payment_method_id=order.payment_method_id,
        verified_by=order.verified_by,
        delivery_window=order.delivery_window,
    )


def go_on_verified(order: Order, verified: PrescriptionVerified, now: datetime) -> list[Event]:
    """A pharmacist approved the prescription: the order (with the lines as approved) asks for stock."""
    if order.status != "AWAITING_VERIFICATION":
        return []  # cancelled or withdrawn meanwhile: it stays so
    order.lines = list(verified.lines)
    order.verified_by = verified.pharmacist_id
    order._move("PENDING", now)
    return [_created(order)]


def note_verification_wait(
    order: Order, waiting: PrescriptionHeld | PrescriptionAnswered, now: datetime
) -> list[Event]:
    """A question to the patient, or their answer: the order still waits, its history says for whom."""
    if order.status != "AWAITING_VERIFICATION":
        return []
    held = isinstance(waiting, PrescriptionHeld)
    reason = "the pharmacist asked you a question" if held else "answered: back with the pharmacist"
    order._move("AWAITING_VERIFICATION", now, reason)
    return []


def reject_unverified(order: Order, rejected: PrescriptionRejected, now: datetime) -> list[Event]:
    """A pharmacist refused the prescription: the order is REJECTED with the pharmacist's reason."""
    if order.status != "AWAITING_VERIFICATION":
        return []
    reason = f"prescription rejected by a pharmacist: {rejected.reason}"
    if rejected.note:
        reason += f" ({rejected.note})"
    order._move("REJECTED", now, reason)
    return [
        OrderRejected(
            order_id=order.id,
            prescription_id=order.prescription_id,
            patient_id=order.patient_id,
            reason=reason,
        )
    ]


def record_reservation(order: Order, reserved: StockReserved, now: datetime) -> list[Event]:
    """Stock is held at one pharmacy: the order now waits for payment."""
    if order.status != "PENDING":
        # Cancelled meanwhile: inventory releases the stock on OrderCancelled, nothing to do here.
        return []
    order.pharmacy_id = reserved.pharmacy_id
    order.priced_lines = list(reserved.lines)
    order.total_cents = reserved.total_cents
    order.service_fee_cents = reserved.service_fee_cents
    order.delivery_fee_cents = reserved.delivery_fee_cents
    order._move("STOCK_RESERVED", now)
    return []


def reject_for_shortage(order: Order, failed: StockReservationFailed, now: datetime) -> list[Event]:
    """No pharmacy near the patient has every line: the order is REJECTED, with the reason per line."""
    if order.status != "PENDING":
        return []
    order.shortages = list(failed.shortages)
    reason = "; ".join(f"{s.medication_id}: {s.reason}" for s in failed.shortages) or "stock unavailable"
    order._move("REJECTED", now, reason)
    return [
        OrderRejected(
            order_id=order.id,
            prescription_id=order.prescription_id,
            patient_id=order.patient_id,
            reason=reason,
        )
    ]


def confirm_paid(order: Order, approved: PaymentApproved, now: datetime) -> list[Event]:
    """The card was authorised for reserved stock: the order is CONFIRMED and waits for its pharmacy."""
    order.payment_id = approved.payment_id
    if order.status != "STOCK_RESERVED":
        # Cancelled before the authorisation landed: payment_service voids it on OrderCancelled.
        return []
    order._move("CONFIRMED", now)
    return [
        OrderConfirmed(
            order_id=order.id,
            prescription_id=order.prescription_id,
            patient_id=order.patient_id,
            pharmacy_id=order.pharmacy_id or "",
            total_cents=order.total_cents or 0,
        )
    ]


def cancel_for_declined_payment(order: Order, declined: PaymentDeclined, now: datetime) -> list[Event]:
    """The card was declined: the order is CANCELLED and its reserved stock goes back."""
    order.payment_id = declined.payment_id
    if order.status not in CANCELLABLE:
        return []
    return _cancel(order, f"payment declined: {declined.reason}", now)


def cancel_for_expired_reservation(order: Order, expired: ReservationExpired, now: datetime) -> list[Event]:
    """Payment did not come in time and the held stock went back: the order is CANCELLED, saying why.

    Inventory announces an expiry only for stock it never sold and never will. So an order CONFIRMED
    meanwhile (its payment lost the race with the deadline at inventory) is cancelled too: otherwise
    the patient paid for stock nobody holds. Either way payment_service voids on OrderCancelled.
    """
    if order.status not in ("AWAITING_VERIFICATION", "PENDING", "STOCK_RESERVED", "CONFIRMED"):
        return []
    return _cancel(order, f"reservation expired: {expired.reason}", now)


def cancel(order: Order, reason: str, now: datetime) -> list[Event]:
    """A customer or staff cancels an order its pharmacy has not dispensed: nothing is taken from the card."""
    if order.status not in CANCELLABLE:
        raise OrderNotCancellable(
            f"order is {order.status}: an order is cancelled only until its pharmacy dispenses it "
            "(AWAITING_VERIFICATION, PENDING, STOCK_RESERVED or CONFIRMED); after that, refuse it at the door"
        )
    return _cancel(order, reason, now)


def cancel_if_open(order: Order, reason: str, now: datetime) -> list[Event]:
    """Cancel when the order is not paid yet (the prescription was withdrawn); a paid order stands."""
    unpaid = ("AWAITING_VERIFICATION", "PENDING", "STOCK_RESERVED")
    return _cancel(order, reason, now) if order.status in unpaid else []


def restore_cancel(order: Order, cancelled: OrderCancelled, at: datetime) -> list[Event]:
    """Rebuilding from the journal: a cancel no other event explains (the patient's) happens again.

    A cancel that another event caused was restored by replaying that event first.
    """
    if order.status != "CANCELLED":
        order._move("CANCELLED", at, cancelled.reason)
    return []


def record_refund(order: Order, refunded: PaymentRefunded) -> list[Event]:
    order.refunded_cents += refunded.amount_cents
    return []


def record_capture(order: Order, captured: PaymentCaptured) -> list[Event]:
    order.captured_cents = captured.amount_cents
    return []


# --- after payment: dispensing and delivery -------------------------------------------------------


def ready_for_pickup(order: Order, dispensed: OrderDispensed, now: datetime) -> list[Event]:
    """Its pharmacy dispensed it: it waits for a courier, and delivery_service hears all it needs."""
    if order.status != "CONFIRMED":
        return []  # cancelled meanwhile: inventory records the dispensed stock returned
    order.dispensed_by = dispensed.pharmacist_id
    order.pharmacy_location = dispensed.pharmacy_location
    order.delivery = OrderDelivery()
    order._move("READY_FOR_PICKUP", now, "dispensed by a pharmacist")
    return [
        OrderReadyForPickup(
            order_id=order.id,
            patient_id=order.patient_id,
            pharmacy_id=dispensed.pharmacy_id,
            pharmacy_location=dispensed.pharmacy_location,
            delivery_location=order.delivery_location,
            delivery_window=order.delivery_window,
            total_cents=order.total_cents or 0,
            controlled=order.controlled,
        )
    ]


def _delivery(order: Order) -> OrderDelivery:
    return order.delivery or OrderDelivery()


def courier_assigned(order: Order, assigned: DeliveryAssigned, now: datetime) -> list[Event]:
    if order.status != "READY_FOR_PICKUP":
        return []
    order.delivery = _delivery(order).model_copy(
        update={"courier_id": assigned.courier_id, "eta": assigned.eta, "proof": assigned.proof}
    )
    order._move("READY_FOR_PICKUP", now, "a courier is on the way to the pharmacy")
    return []


def courier_unassigned(order: Order, unassigned: DeliveryUnassigned, now: datetime) -> list[Event]:
    """Its courier went off duty before collecting it: no courier, no ETA, until another is assigned."""
    if order.status != "READY_FOR_PICKUP" or _delivery(order).courier_id != unassigned.courier_id:
        return []
    order.delivery = _delivery(order).model_copy(update={"courier_id": None, "eta": None})
    order._move("READY_FOR_PICKUP", now, "its courier went off duty: waiting for another")
    return []


def picked_up(order: Order, picked: DeliveryPickedUp, now: datetime) -> list[Event]:
    if order.status != "READY_FOR_PICKUP":
        return []  # cancelled as the courier took it: delivery_service brings it back
    order.delivery = _delivery(order).model_copy(update={"courier_id": picked.courier_id, "eta": picked.eta})
    order._move("OUT_FOR_DELIVERY", now)
    return []


def delivered(order: Order, completed: DeliveryCompleted, now: datetime) -> list[Event]:
    if order.status not in IN_DELIVERY:
        return []
    order.delivery = _delivery(order).model_copy(
        update={"proof": completed.proof, "recipient_name": completed.recipient_name, "delivered_at": now}
    )
    proof = "the patient's PIN" if completed.proof == "PIN" else "the recipient's name"
    order._move("DELIVERED", now, f"handed over with {proof}")
    return []


def attempt_failed(order: Order, failed: DeliveryAttemptFailed, now: datetime) -> list[Event]:
    if order.status not in IN_DELIVERY:
        return []
    order.delivery = _delivery(order).model_copy(
        update={"failed_attempts": failed.attempt, "last_failure": failed.reason}
    )
    then = "another attempt follows" if failed.retrying else "it goes back to the pharmacy"
    note = f" ({failed.note})" if failed.note else ""
    order._move("DELIVERY_FAILED", now, f"attempt {failed.attempt} failed: {failed.reason}{note}; {then}")
    return []


def returned(order: Order, back: DeliveryReturned, now: datetime) -> list[Event]:
    if order.status not in IN_DELIVERY:
        return []
    order._move("RETURNED", now, f"returned to the pharmacy: {back.reason}")
    return [
        OrderReturned(
            order_id=order.id,
            prescription_id=order.prescription_id,
            patient_id=order.patient_id,
            reason=back.reason,
        )
    ]


def _cancel(order: Order, reason: str, now: datetime) -> list[Event]:
    order._move("CANCELLED", now, reason)
    return [
        OrderCancelled(
            order_id=order.id,
            prescription_id=order.prescription_id,
            patient_id=order.patient_id,
            reason=reason,
        )
    ]
