"""Payment methods and payments (payment_service behind RPC)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from contracts import commands as c
from user_service.audit import Audit, audited
from user_service.deps import Admin, CurrentUser, Paging, Patient, ResourceId, Rpc, UserFilter
from user_service.domain import PAYMENT_READERS, owner_scope
from user_service.schemas import Page, PaymentMethodIn, PaymentMethodOut, PaymentOut

router = APIRouter(tags=["payments"])


@router.post(
    "/payment-methods",
    status_code=201,
    response_model=PaymentMethodOut,
    dependencies=[audited("payment_method.add", subject="payment_method_id")],
)
async def add_payment_method(
    body: PaymentMethodIn, user: Patient, rpc: Rpc, audit: Audit
) -> PaymentMethodOut:
    """Register a card. Only its processor token, brand and last four digits are kept."""
    command = c.AddPaymentMethod(
        owner_id=user.id,
        card_number=body.card_number,
        exp_month=body.exp_month,
        exp_year=body.exp_year,
        cvc=body.cvc,
    )
    added = PaymentMethodOut.of(await rpc.ask(command, c.PaymentMethodView))
    audit.subject_id = added.id
    return added


@router.get(
    "/payment-methods",
    response_model=Page[PaymentMethodOut],
    dependencies=[audited("payment_method.list")],
)
async def list_payment_methods(user: Patient, rpc: Rpc) -> Page[PaymentMethodOut]:
    found = await rpc.ask(c.ListPaymentMethods(owner_id=user.id), list[c.PaymentMethodView])
    return Page(items=[PaymentMethodOut.of(m) for m in found], limit=len(found), offset=0)


@router.delete(
    "/payment-methods/{payment_method_id}",
    status_code=204,
    dependencies=[audited("payment_method.remove", subject="payment_method_id")],
)
async def remove_payment_method(payment_method_id: ResourceId, user: Patient, rpc: Rpc) -> Response:
    """Remove one of your cards: it is no longer listed, and an upload or refill naming it is refused
    (422). An order whose payment was authorised on it keeps its authorisation; one not yet paid is
    declined when its stock is reserved. Another patient's card is not found (404)."""
    await rpc.ask(c.RemovePaymentMethod(owner_id=user.id, payment_method_id=payment_method_id), None)
    return Response(status_code=204)


@router.get(
    "/payments", response_model=Page[PaymentOut], dependencies=[audited("payment.list", subject="user_id")]
)
async def list_payments(
    user: CurrentUser, rpc: Rpc, page: Paging, user_id: UserFilter = None
) -> Page[PaymentOut]:
    command = c.ListPayments(owner_id=owner_scope(user, user_id, readers=PAYMENT_READERS), page=page)
    found = await rpc.ask(command, list[c.PaymentView])
    return Page(items=[PaymentOut.of(p) for p in found], limit=page.limit, offset=page.offset)


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentOut,
    dependencies=[audited("payment.read", subject="payment_id")],
)
async def get_payment(payment_id: ResourceId, user: CurrentUser, rpc: Rpc) -> PaymentOut:
    command = c.GetPayment(owner_id=owner_scope(user, None, readers=PAYMENT_READERS), payment_id=payment_id)
    return PaymentOut.of(await rpc.ask(command, c.PaymentView))


@router.delete(
    "/payments/{payment_id}", status_code=204, dependencies=[audited("payment.hide", subject="payment_id")]
)
async def hide_payment(payment_id: ResourceId, admin: Admin, rpc: Rpc) -> Response:
    """Remove a payment from every listing; the record is kept for audit."""
    await rpc.ask(c.HidePayment(payment_id=payment_id, hidden_by=admin.id), None)
    return Response(status_code=204)
