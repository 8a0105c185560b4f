"""One thin function per message: charge reserved orders, void or refund cancelled ones."""

from __future__ import annotations

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
)
from contracts.events import OrderCancelled, PaymentApproved, PaymentDeclined, PaymentRefunded, StockReserved
from payment_service import domain, store
from payment_service.domain import CardDetails, Payment, PaymentMethod
from payment_service.processor import CardProcessor
from payment_service.store import Stores
from service_runtime.aggregate import minted_id
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused
from service_runtime.service import Service, wrap


def register(service: Service, s: Stores, processor: CardProcessor) -> None:
    @service.events.on(StockReserved)
    async def charge_for_reserved_stock(event: StockReserved, envelope: Envelope) -> None:
        payment_id = domain.payment_id_for(event.order_id)
        async with service.locks.hold(f"payments/{payment_id}"):
            if await s.payments.get(payment_id) is None:
                payment, events = await _charge(event, payment_id)
                await s.payments.add(
                    payment, wrap(events, envelope, event.order_id), caused_by=str(envelope.event_id)
                )
        await service.publish_pending(s.payments, payment_id)

    async def _charge(event: StockReserved, payment_id: str) -> tuple[Payment, list[Event]]:
        method = await s.methods.get(event.payment_method_id)
        payment = Payment(
            id=payment_id,
            order_id=event.order_id,
            patient_id=event.patient_id,
            payment_method_id=event.payment_method_id,
            amount_cents=event.total_cents,
            status="DECLINED",
            created_at=utc_now(),
        )
        if method is None or method.owner_id != event.patient_id:
            payment.decline_reason = "payment method not found"
        else:
            payment.brand, payment.last4 = method.brand, method.last4
            # The order id is the idempotency key: a retry after a crash gets the same charge back.
            result = await processor.charge(method.token, event.total_cents, idempotency_key=event.order_id)
            payment.charge_id = result.charge_id
            payment.status = "APPROVED" if result.approved else "DECLINED"
            payment.decline_reason = result.reason
        if payment.status == "APPROVED":
            return payment, [
                PaymentApproved(
                    payment_id=payment.id,
                    order_id=event.order_id,
                    patient_id=event.patient_id,
                    amount_cents=event.total_cents,
                )
            ]
        return payment, [
            PaymentDeclined(
                payment_id=payment.id,
                order_id=event.order_id,
                patient_id=event.patient_id,
                amount_cents=event.total_cents,
                reason=payment.decline_reason or "declined",
            )
        ]

    @service.events.on(OrderCancelled)
    async def void_or_refund(event: OrderCancelled, envelope: Envelope) -> None:
        payment_id = domain.payment_id_for(event.order_id)
        voided = Payment(id=payment_id, order_id=event.order_id, status="VOIDED", created_at=utc_now())
        async with service.locks.hold(f"payments/{payment_id}"):
            # Not charged yet: a VOIDED record makes the coming StockReserved charge nothing.
            inserted = await s.payments.add(voided, caused_by=str(envelope.event_id))
        if inserted:
            return
        payment = await s.payments.get(payment_id)
        if (
            payment is not None
            and payment.status == "APPROVED"
            and not payment.has_processed(str(envelope.event_id))
        ):
            await processor.refund(idempotency_key=event.order_id)
        await service.change(s.payments, payment_id, lambda p: _refund(p, event.reason), cause=envelope)

    def _refund(payment: Payment, reason: str) -> list[Event]:
        if payment.status != "APPROVED":
            return []
        payment.status = "REFUNDED"
        payment.refunded_at = utc_now()
        return [
            PaymentRefunded(
                payment_id=payment.id,
                order_id=payment.order_id,
                amount_cents=payment.amount_cents,
                reason=reason,
            )
        ]

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
        return [m.view() for m in await s.methods.find({"owner_id": command.owner_id})]

    @service.commands.on(GetPaymentMethod)
    async def get_payment_method(command: GetPaymentMethod) -> PaymentMethodView:
        method = await s.methods.get(command.payment_method_id)
        if method is None or (command.owner_id is not None and method.owner_id != command.owner_id):
            raise CommandRefused("not_found", f"payment method {command.payment_method_id} not found")
        return method.view()

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
