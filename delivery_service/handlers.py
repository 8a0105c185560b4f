"""One thin function per message: open and cancel deliveries, the couriers' moves, the reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from uuid import NAMESPACE_URL, uuid5

from contracts.base import Command, Envelope, Event
from contracts.commands import (
    CompleteDelivery,
    CourierView,
    DeliveryPinView,
    DeliveryView,
    FailDelivery,
    GetCourier,
    GetDelivery,
    GetDeliveryPin,
    ListDeliveries,
    PickUpDelivery,
    UpdateCourier,
)
from contracts.events import (
    CourierFree,
    DeliveryCompleted,
    DeliveryReturned,
    DeliveryUnassigned,
    Location,
    OrderCancelled,
    OrderReadyForPickup,
)
from delivery_service import domain, store
from delivery_service.dispatch import Dispatcher
from delivery_service.domain import Delivery, PinKey, Rules
from delivery_service.store import Stores
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, until_up
from service_runtime.service import Service, wrap


def command_cause(command: Command, aggregate_id: str) -> Envelope | None:
    """A write command as the cause of its change, under an id minted from its request id: delivered
    again (a crash before its ack), it finds itself applied and changes nothing."""
    if command.request_id is None:
        return None
    return Envelope(
        event_id=uuid5(NAMESPACE_URL, f"pharmacy:command:{command.TYPE}:{command.request_id}"),
        type=command.TYPE,
        correlation_id=aggregate_id,
        payload={},
    )


def register(service: Service, s: Stores, dispatcher: Dispatcher, pins: PinKey, rules: Rules) -> None:
    @service.events.on(OrderReadyForPickup)
    async def open_delivery(event: OrderReadyForPickup, envelope: Envelope) -> None:
        delivery = domain.open_delivery(event, pins, rules, utc_now())
        # Its id is the order's: a redelivery, or the tombstone of an early cancel, makes it add nothing.
        await s.deliveries.add(delivery, caused_by=str(envelope.event_id))
        await dispatcher.dispatch(event.order_id)

    @service.events.on(OrderCancelled)
    async def cancel_delivery(event: OrderCancelled, envelope: Envelope) -> None:
        now = utc_now()
        # Not ready yet: the tombstone makes a late OrderReadyForPickup create nothing.
        if not await s.deliveries.add(
            domain.tombstone(event.order_id, event.reason, now), caused_by=str(envelope.event_id)
        ):
            await service.change(
                s.deliveries,
                event.order_id,
                lambda d: domain.cancel(d, event.reason, now),
                cause=envelope,
                at=now,
            )
        await dispatcher.dispatch(event.order_id)

    # A hand-over or a return frees its courier. The command that made it does so at once, in its
    # follow-up; but when the broker goes away mid-command, the write stands and the follow-up dies
    # with the handler, and the redelivered command, past its caller's wait, is dropped unread. The
    # event, published from the delivery's outbox, always comes back: it frees the courier then.
    @service.events.on(DeliveryCompleted)
    async def courier_free_after_hand_over(event: DeliveryCompleted, envelope: Envelope) -> None:
        await dispatcher.dispatch(event.delivery_id)

    @service.events.on(DeliveryReturned)
    async def courier_free_after_return(event: DeliveryReturned, envelope: Envelope) -> None:
        await dispatcher.dispatch(event.delivery_id)

    # A hand-back: its courier's claim released, the delivery to the nearest other free courier.
    @service.events.on(DeliveryUnassigned)
    async def another_courier_after_hand_back(event: DeliveryUnassigned, envelope: Envelope) -> None:
        await dispatcher.dispatch(event.delivery_id)

    # The same guarantee for a courier who comes free: the write that freed them (UpdateCourier, a
    # release) settles them in its follow-up, and this, from the courier's outbox, when that was lost.
    @service.events.on(CourierFree)
    async def settle_free_courier(event: CourierFree, envelope: Envelope) -> None:
        await dispatcher.settle(event.courier_id)

    # --- commands from the gateway (it checked the caller is the courier, or an admin) ------------

    async def follow_up(what: str, step: Callable[[], Awaitable[None]]) -> None:
        # The move is stored and its answer due: an outage now is waited out here, as the consumer
        # does for events, rather than leave a courier claimed for a delivery that ended.
        await until_up(what, step)

    async def back_on_duty(courier_id: str, location: Location, now: datetime) -> None:
        """Their own pickup raced their going off duty: the refusal leaves them as they were."""
        await service.change(
            s.couriers,
            courier_id,
            lambda c: domain.update_courier(c, True, location, rules, now) if not c.available else [],
            cause=None,
            at=now,
        )

    @service.commands.on(UpdateCourier)
    async def update_courier(command: UpdateCourier) -> CourierView:
        now = utc_now()
        cause = command_cause(command, command.courier_id)
        joined = domain.new_courier(command.courier_id, command.available, command.location, now)
        free = wrap(domain.joining(joined), cause, command.courier_id, at=now)
        handed_back = None
        if await s.couriers.add(joined, free, caused_by=str(cause.event_id) if cause else None):
            await service.publish_pending(s.couriers, joined.id)
        else:
            # Off duty: refused while they hold what they collected; else stored off duty first, then
            # the delivery not collected goes back (the order of writes: dispatch.py).
            try:
                if not command.available:
                    await dispatcher.may_go_off_duty(command.courier_id)
                await service.change(
                    s.couriers,
                    command.courier_id,
                    lambda c: domain.update_courier(c, command.available, command.location, rules, now),
                    cause=cause,
                    at=now,
                )
                if not command.available:
                    handed_back = await dispatcher.hand_back(command.courier_id, cause)
            except domain.MoveNotAllowed as exc:
                if not command.available:
                    await back_on_duty(command.courier_id, command.location, now)
                raise CommandRefused("conflict", str(exc)) from exc
        if handed_back is not None:
            # Its claim released, and the nearest other free courier given it.
            delivery_id = handed_back
            await follow_up("handing a delivery back", lambda: dispatcher.dispatch(delivery_id))
        await follow_up("settling a courier", lambda: dispatcher.settle(command.courier_id))
        courier = await s.couriers.get(command.courier_id)
        assert courier is not None
        return courier.view()

    async def move(
        command: PickUpDelivery | CompleteDelivery | FailDelivery,
        decide: Callable[[Delivery], Sequence[Event]],
    ) -> Delivery:
        """One courier's move on their delivery, its refusals said in the gateway's codes."""
        found = await s.deliveries.get(command.delivery_id)
        if found is None or not found.listed:
            raise CommandRefused("not_found", f"delivery {command.delivery_id} not found")
        asked = pins.fingerprint(command.model_dump_json(exclude=set(Command.model_fields)))
        if command.request_id is not None and found.requests.get(command.request_id, asked) != asked:
            raise CommandRefused(
                "invalid",
                "this Idempotency-Key was already used for another request: send a new key",
                "Idempotency-Key",
            )

        def decide_and_keep(delivery: Delivery) -> Sequence[Event]:
            events = decide(delivery)
            if command.request_id is not None:
                delivery.requests[command.request_id] = asked
            return events

        now = utc_now()
        try:
            return await service.change(
                s.deliveries,
                command.delivery_id,
                decide_and_keep,
                cause=command_cause(command, command.delivery_id),
                at=now,
            )
        except domain.NotTheirs as exc:
            raise CommandRefused("not_found", str(exc)) from exc
        except domain.MoveNotAllowed as exc:
            raise CommandRefused("conflict", str(exc)) from exc
        except domain.PinsExhausted as exc:
            raise CommandRefused("conflict", str(exc)) from exc
        except domain.ProofMissing as exc:
            raise CommandRefused("invalid", exc.detail, exc.field) from exc

    @service.commands.on(PickUpDelivery)
    async def pick_up(command: PickUpDelivery) -> DeliveryView:
        delivery = await move(command, lambda d: domain.pick_up(d, command.courier_id, rules, utc_now()))
        return delivery.view_for(command.courier_id)

    @service.commands.on(CompleteDelivery)
    async def complete(command: CompleteDelivery) -> DeliveryView:
        delivery = await move(
            command,
            lambda d: domain.hand_over(
                d,
                command.courier_id,
                pin=command.pin,
                recipient_name=command.recipient_name,
                pins=pins,
                rules=rules,
                now=utc_now(),
            ),
        )
        if delivery.status != "DELIVERED":
            # Stored, counted: the only hand-over that is saved and not carried out is a wrong PIN.
            left = max(0, rules.max_wrong_pins - delivery.wrong_pins_this_visit)
            raise CommandRefused("invalid", f"wrong PIN ({left} tries left on this visit)", "pin")
        await follow_up("freeing a courier", lambda: dispatcher.dispatch(delivery.id))
        # Handed over: from now its courier no longer sees where, or to whom (Delivery.view_for).
        return delivery.view_for(command.courier_id)

    @service.commands.on(FailDelivery)
    async def fail(command: FailDelivery) -> DeliveryView:
        delivery = await move(
            command,
            lambda d: domain.fail_attempt(
                d, command.courier_id, command.reason, command.note, rules, utc_now()
            ),
        )
        await follow_up("freeing a courier", lambda: dispatcher.dispatch(delivery.id))
        return delivery.view_for(command.courier_id)

    # --- reads --------------------------------------------------------------------------------------

    @service.commands.on(ListDeliveries)
    async def list_deliveries(command: ListDeliveries) -> list[DeliveryView]:
        found = await store.list_deliveries(
            s,
            courier_id=command.courier_id,
            status=command.status,
            limit=command.page.limit,
            offset=command.page.offset,
        )
        return [d.view_for(command.courier_id) for d in found]

    @service.commands.on(GetCourier)
    async def get_courier(command: GetCourier) -> CourierView:
        courier = await s.couriers.get(command.courier_id)
        # Never said whether they take deliveries: nothing stored yet (they count as off duty).
        if courier is None:
            raise CommandRefused("not_found", f"courier {command.courier_id} has not said where they are yet")
        return courier.view()

    @service.commands.on(GetDelivery)
    async def get_delivery(command: GetDelivery) -> DeliveryView:
        delivery = await s.deliveries.get(command.delivery_id)
        # Another courier's delivery answers exactly like a missing one: no probing for ids.
        if (
            delivery is None
            or not delivery.listed
            or (command.courier_id is not None and delivery.courier_id != command.courier_id)
        ):
            raise CommandRefused("not_found", f"delivery {command.delivery_id} not found")
        return delivery.view_for(command.courier_id)

    @service.commands.on(GetDeliveryPin)
    async def get_delivery_pin(command: GetDeliveryPin) -> DeliveryPinView:
        delivery = await s.deliveries.get(command.order_id)
        if delivery is None or not delivery.listed or delivery.patient_id != command.patient_id:
            raise CommandRefused("not_found", f"no delivery of order {command.order_id}")
        pin = pins.pin(delivery.order_id) if delivery.proof == "PIN" else None
        return DeliveryPinView(order_id=delivery.order_id, pin=pin)
