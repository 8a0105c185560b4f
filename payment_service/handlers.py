"""One thin function per message: authorise reserved orders, capture at pickup, void or refund the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.base import Envelope, Event
from contracts.commands import (
    AddPaymentMethod,
    GetPayment,
    GetPaymentMethod,
    HidePayment,
    ListPaymentMethods,
    ListPayments,
    PaymentMethodView,
    PaymentView,
    RemovePaymentMethod,
)
from contracts.events import DeliveryPickedUp, DeliveryReturned, OrderCancelled, StockReserved
from payment_service import domain, store
from payment_service.domain import CardDetails, Payment, PaymentMethod
from payment_service.processor import CardProcessor, Outcome
from payment_service.store import Stores
from service_runtime.aggregate import minted_id
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, PermanentFailure
from service_runtime.service import Service, wrap


def register(service: Service, s: Stores, processor: CardProcessor) -> None:
    steps: dict[domain.ProcessorStep, Callable[..., Awaitable[Outcome]]] = {
        "capture": processor.capture,
        "void": processor.void,
        "refund": processor.refund,
    }

    @service.events.on(StockReserved)
    async def authorise_reserved_stock(event: StockReserved, envelope: Envelope) -> None:
        payment_id = domain.payment_id_for(event.order_id)
        async with service.locks.hold(f"payments/{payment_id}"):
            # Found: authorised before (a redelivery), or cancelled first (FORGONE): nothing to do.
            if await s.payments.get(payment_id) is None:
                payment, events = await _authorise(event)
                await s.payments.add(
                    payment, wrap(events, envelope, event.order_id), caused_by=str(envelope.event_id)
                )
        await service.publish_pending(s.payments, payment_id)

    async def _authorise(event: StockReserved) -> tuple[Payment, list[Event]]:
        method = await s.methods.get(event.payment_method_id)
        if (refused := domain.unusable_card(method, event.patient_id)) is not None:
            # An earlier delivery may have authorised before a crash (and the card was removed since):
            # release that hold, or nothing would. With nothing held, the processor changes nothing.
            await processor.void(idempotency_key=event.order_id)
            return domain.declined_payment(event, refused, utc_now())
        assert method is not None
        payment = domain.authorising(event, method, utc_now())
        # The order id is the idempotency key: a retry after a crash gets the same authorisation back.
        held = await processor.authorise(method.token, event.total_cents, idempotency_key=event.order_id)
        events = domain.record_authorisation(
            payment,
            charge_id=held.charge_id,
            approved=held.approved,
            charged_in_full=held.state == "CAPTURED",
            reason=held.reason,
        )
        return payment, events

    @service.events.on(DeliveryPickedUp)
    async def capture_at_pickup(event: DeliveryPickedUp, envelope: Envelope) -> None:
        await _move_money(event.order_id, domain.step_at_pickup, "picked up", envelope)

    @service.events.on(OrderCancelled)
    async def void_or_refund(event: OrderCancelled, envelope: Envelope) -> None:
        forgone = domain.forgone(event.order_id, utc_now())
        async with service.locks.hold(f"payments/{forgone.id}"):
            # Nothing authorised yet: the tombstone makes the coming StockReserved authorise nothing.
            inserted = await s.payments.add(forgone, caused_by=str(envelope.event_id))
        if not inserted:
            await _move_money(event.order_id, domain.step_at_cancel, event.reason, envelope)

    @service.events.on(DeliveryReturned)
    async def refund_returned(event: DeliveryReturned, envelope: Envelope) -> None:
        await _move_money(event.order_id, domain.step_at_return, event.reason, envelope)

    async def _move_money(
        order_id: str,
        step_for: Callable[[Payment], domain.ProcessorStep | None],
        reason: str,
        cause: Envelope,
    ) -> None:
        """Ask the processor first, then record it: a crash between the two asks again on redelivery,
        and the processor, idempotent by the order's id, answers what it did without doing it twice."""
        payment_id = domain.payment_id_for(order_id)
        payment = await s.payments.get(payment_id)
        step = None if payment is None else step_for(payment)
        if payment is not None and step is not None and not payment.has_processed(str(cause.event_id)):
            outcome = await steps[step](idempotency_key=order_id)
            if not outcome.done:
                # The processor and our record disagree: an operator's to look at, with its reason.
                raise PermanentFailure(f"payment {payment_id}: {outcome.refused}")

        def record(p: Payment) -> list[Event]:
            # One message of an order at a time: the step read above is still the one to record.
            return domain.take_step(p, step, reason, utc_now()) if step and step_for(p) == step else []

        # No payment yet (RetryLater): a pickup or a return never comes before its authorisation.
        await service.change(s.payments, payment_id, record, cause=cause)

    # --- commands from the gateway ---------------------------------------------------------------

    @service.commands.on(AddPaymentMethod)
    async def add_payment_method(command: AddPaymentMethod) -> PaymentMethodView:
        method_id = minted_id(command.request_id, "payment-method")
        if (added := await s.methods.get(method_id)) is not None:
            return added.view()  # delivered again after it was carried out
        number = domain.normalise_number(command.card_number)
        card = CardDetails(
            number=number, exp_month=command.exp_month, exp_year=command.exp_year, cvc=command.cvc
        )
        try:
            brand = domain.validate_card(card, utc_now())
        except domain.InvalidCard as exc:
            raise CommandRefused("invalid", exc.detail, exc.field) from exc
        method = PaymentMethod(
            id=method_id,
            owner_id=command.owner_id,
            token=await processor.tokenize(number, command.exp_month, command.exp_year),
            brand=brand,
            last4=number[-4:],
            exp_month=command.exp_month,
            exp_year=command.exp_year,
            created_at=utc_now(),
        )
        await s.methods.add(method)
        return method.view()

    @service.commands.on(ListPaymentMethods)
    async def list_payment_methods(command: ListPaymentMethods) -> list[PaymentMethodView]:
        found = await s.methods.find({"owner_id": command.owner_id})
        return [m.view() for m in found if m.removed_at is None]

    @service.commands.on(GetPaymentMethod)
    async def get_payment_method(command: GetPaymentMethod) -> PaymentMethodView:
        method = await s.methods.get(command.payment_method_id)
        # A removed card is not found: an upload or a refill naming it is refused on its field.
        if (
            method is None
            or method.removed_at is not None
            or (command.owner_id is not None and method.owner_id != command.owner_id)
        ):
            raise CommandRefused("not_found", f"payment method {command.payment_method_id} not found")
        return method.view()

    @service.commands.on(RemovePaymentMethod)
    async def remove_payment_method(command: RemovePaymentMethod) -> None:
        method = await s.methods.get(command.payment_method_id)
        if method is None or method.owner_id != command.owner_id:
            raise CommandRefused("not_found", f"payment method {command.payment_method_id} not found")
        # Removed already (a redelivery, a second click): nothing changes, and it answers the same.
        now = utc_now()
        await service.change(
            s.methods, command.payment_method_id, lambda m: domain.remove_payment_method(m, now), cause=None
        )

    @service.commands.on(ListPayments)
    async def list_payments(command: ListPayments) -> list[PaymentView]:
        found = await store.list_payments(
            s, owner_id=command.owner_id, limit=command.page.limit, offset=command.page.offset
        )
        return [p.view() for p in found]

    async def _visible_payment(payment_id: str, owner_id: str | None) -> Payment:
        payment = await s.payments.get(payment_id)
        if (
            payment is None
            or not payment.visible
            or (owner_id is not None and payment.patient_id != owner_id)
        ):
            raise CommandRefused("not_found", f"payment {payment_id} not found")
        return payment

    @service.commands.on(GetPayment)
    async def get_payment(command: GetPayment) -> PaymentView:
        return (await _visible_payment(command.payment_id, command.owner_id)).view()

    @service.commands.on(HidePayment)
    async def hide_payment(command: HidePayment) -> None:
        await _visible_payment(command.payment_id, None)

        def hide(p: Payment) -> list[Event]:
            # Kept for audit: only taken out of every listing.
            p.hidden_at, p.hidden_by = utc_now(), command.hidden_by
            return []

        await service.change(s.payments, command.payment_id, hide, cause=None)
