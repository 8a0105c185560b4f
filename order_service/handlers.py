"""One thin function per message: load the order, let the domain decide, store and publish."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from contracts.base import Envelope, Event
from contracts.commands import CancelOrder, GetOrder, ListOrders, OrderView
from contracts.events import (
    DeliveryAssigned,
    DeliveryAttemptFailed,
    DeliveryCompleted,
    DeliveryPickedUp,
    DeliveryReturned,
    DeliveryUnassigned,
    OrderCancelled,
    OrderDispensed,
    PaymentApproved,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PrescriptionAnswered,
    PrescriptionHeld,
    PrescriptionRefilled,
    PrescriptionRejected,
    PrescriptionUploaded,
    PrescriptionVerified,
    PrescriptionWithdrawn,
    ReservationExpired,
    StockReservationFailed,
    StockReserved,
)
from order_service import domain, store
from order_service.domain import Order
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused
from service_runtime.service import Service, wrap
from service_runtime.store import Repository


def register(service: Service, orders: Repository[Order]) -> None:
    @service.events.on(PrescriptionUploaded)
    async def open_order(event: PrescriptionUploaded, envelope: Envelope) -> None:
        order, events = domain.open_order(event, envelope.occurred_at)
        # The order's id is minted from the upload's request: a redelivered upload adds nothing.
        await orders.add(order, wrap(events, envelope, order.id), caused_by=str(envelope.event_id))
        await service.publish_pending(orders, order.id)

    @service.events.on(PrescriptionRefilled)
    async def open_refill(event: PrescriptionRefilled, envelope: Envelope) -> None:
        order, events = domain.open_refill(event, envelope.occurred_at)
        # Minted from the refill's request id too: a redelivered refill adds nothing.
        await orders.add(order, wrap(events, envelope, order.id), caused_by=str(envelope.event_id))
        await service.publish_pending(orders, order.id)

    @service.events.on(PaymentRefunded)
    async def payment_refunded(event: PaymentRefunded, envelope: Envelope) -> None:
        await service.change(orders, event.order_id, lambda o: domain.record_refund(o, event), cause=envelope)

    @service.events.on(PrescriptionWithdrawn)
    async def prescription_withdrawn(event: PrescriptionWithdrawn, envelope: Envelope) -> None:
        reason = "prescription withdrawn by the patient"
        await service.change(
            orders,
            event.order_id,
            lambda o: domain.cancel_if_open(o, reason, envelope.occurred_at),
            cause=envelope,
        )

    @service.events.on(PaymentCaptured)
    async def payment_captured(event: PaymentCaptured, envelope: Envelope) -> None:
        await service.change(
            orders, event.order_id, lambda o: domain.record_capture(o, event), cause=envelope
        )

    def changes_its_order(kind: type[Event], decide: Callable[[Order, Any, datetime], list[Event]]) -> None:
        """An event that is one decision on its order, stamped with the event's time."""

        async def follow(event: Any, envelope: Envelope) -> None:
            await service.change(
                orders, event.order_id, lambda o: decide(o, event, envelope.occurred_at), cause=envelope
            )

        service.events.on(kind)(follow)

    changes_its_order(PrescriptionVerified, domain.go_on_verified)
    changes_its_order(PrescriptionRejected, domain.reject_unverified)
    changes_its_order(PrescriptionHeld, domain.note_verification_wait)
    changes_its_order(PrescriptionAnswered, domain.note_verification_wait)
    changes_its_order(StockReserved, domain.record_reservation)
    changes_its_order(StockReservationFailed, domain.reject_for_shortage)
    changes_its_order(PaymentApproved, domain.confirm_paid)
    changes_its_order(PaymentDeclined, domain.cancel_for_declined_payment)
    changes_its_order(ReservationExpired, domain.cancel_for_expired_reservation)
    changes_its_order(OrderDispensed, domain.ready_for_pickup)
    changes_its_order(DeliveryAssigned, domain.courier_assigned)
    changes_its_order(DeliveryUnassigned, domain.courier_unassigned)
    changes_its_order(DeliveryPickedUp, domain.picked_up)
    changes_its_order(DeliveryCompleted, domain.delivered)
    changes_its_order(DeliveryAttemptFailed, domain.attempt_failed)
    changes_its_order(DeliveryReturned, domain.returned)

    @service.events.on_own(OrderCancelled)
    async def restore_cancel(event: OrderCancelled, envelope: Envelope) -> None:
        await service.change(
            orders,
            event.order_id,
            lambda o: domain.restore_cancel(o, event, envelope.occurred_at),
            cause=envelope,
        )

    @service.commands.on(ListOrders)
    async def list_orders(command: ListOrders) -> list[OrderView]:
        found = await store.list_orders(
            orders,
            owner_id=command.owner_id,
            status=command.status,
            limit=command.page.limit,
            offset=command.page.offset,
        )
        return [o.view() for o in found]

    @service.commands.on(GetOrder)
    async def get_order(command: GetOrder) -> OrderView:
        return (await _visible_order(orders, command.order_id, command.owner_id)).view()

    @service.commands.on(CancelOrder)
    async def cancel_order(command: CancelOrder) -> OrderView:
        await _visible_order(orders, command.order_id, command.owner_id)
        now = utc_now()
        try:
            order = await service.change(
                orders, command.order_id, lambda o: domain.cancel(o, command.reason, now), cause=None, at=now
            )
        except domain.OrderNotCancellable as exc:
            raise CommandRefused("conflict", str(exc)) from exc
        return order.view()


async def _visible_order(orders: Repository[Order], order_id: str, owner_id: str | None) -> Order:
    order = await orders.get(order_id)
    # Another patient's order answers exactly like a missing one: no probing for ids.
    if order is None or (owner_id is not None and order.patient_id != owner_id):
        raise CommandRefused("not_found", f"order {order_id} not found")
    return order
