"""The order's life: its states, the moves between them, and the events each move causes. No I/O."""

from __future__ import annotations

from datetime import datetime

from contracts.base import Event
from contracts.commands import OrderStatus, OrderView, StatusChange
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

TERMINAL: frozenset[OrderStatus] = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})
CANCELLABLE: frozenset[OrderStatus] = frozenset({"AWAITING_VERIFICATION", "PENDING", "STOCK_RESERVED"})


class OrderNotCancellable(Exception):
    """The order is already paid or finished: cancelling it now would lose money or stock."""


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
        )


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
    """Payment went through for reserved stock: the order is CONFIRMED."""
    order.payment_id = approved.payment_id
    if order.status != "STOCK_RESERVED":
        # Cancelled before the charge landed: payment_service refunds on OrderCancelled.
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
    the patient paid for stock nobody holds. Either way payment_service refunds on OrderCancelled.
    """
    if order.status not in CANCELLABLE and order.status != "CONFIRMED":
        return []
    return _cancel(order, f"reservation expired: {expired.reason}", now)


def cancel(order: Order, reason: str, now: datetime) -> list[Event]:
    """A customer or staff cancels an order that is not yet paid."""
    if order.status not in CANCELLABLE:
        raise OrderNotCancellable(
            f"order is {order.status}: only orders not yet paid (AWAITING_VERIFICATION, PENDING or "
            "STOCK_RESERVED) can be cancelled"
        )
    return _cancel(order, reason, now)


def cancel_if_open(order: Order, reason: str, now: datetime) -> list[Event]:
    """Cancel when still possible (the prescription was withdrawn); a paid order stands."""
    return _cancel(order, reason, now) if order.status in CANCELLABLE else []


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
