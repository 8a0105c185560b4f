"""Orders (order_service behind RPC)."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from contracts import commands as c
from service_runtime.errors import CommandRefused, ServiceUnavailable
from service_runtime.messaging import RpcClient
from user_service.audit import audited
from user_service.deps import CurrentUser, Paging, ResourceId, Rpc, UserFilter
from user_service.domain import owner_scope
from user_service.schemas import OrderOut, Page

log = logging.getLogger(__name__)
router = APIRouter(tags=["orders"])

# While the PIN can still be asked for at the door.
PIN_SHOWN = frozenset({"READY_FOR_PICKUP", "OUT_FOR_DELIVERY", "DELIVERY_FAILED"})


@router.get("/orders", response_model=Page[OrderOut], dependencies=[audited("order.list", subject="user_id")])
async def list_orders(
    user: CurrentUser, rpc: Rpc, page: Paging, user_id: UserFilter = None
) -> Page[OrderOut]:
    found = await rpc.ask(c.ListOrders(owner_id=owner_scope(user, user_id), page=page), list[c.OrderView])
    return Page(items=[OrderOut.of(o) for o in found], limit=page.limit, offset=page.offset)


@router.get(
    "/orders/{order_id}", response_model=OrderOut, dependencies=[audited("order.read", subject="order_id")]
)
async def get_order(order_id: ResourceId, user: CurrentUser, rpc: Rpc) -> OrderOut:
    """Status, lines, pharmacy, price with its fees, every status the order went through with its
    time, and its delivery. The order's patient also sees the PIN to tell the courier, while a
    courier is on the way with an order that needs one; nobody else ever does."""
    order = await rpc.ask(c.GetOrder(owner_id=owner_scope(user, None), order_id=order_id), c.OrderView)
    pin = None
    if (
        user.id == order.patient_id
        and order.status in PIN_SHOWN
        and order.delivery
        and order.delivery.proof == "PIN"
    ):
        pin = await _pin(rpc, order.id, user.id)
    return OrderOut.of(order, pin)


async def _pin(rpc: RpcClient, order_id: str, patient_id: str) -> str | None:
    """The hand-over PIN, or None while delivery_service cannot say it: the order is shown without it
    (the patient asks again) rather than not at all."""
    try:
        answer: c.DeliveryPinView = await rpc.ask(
            c.GetDeliveryPin(order_id=order_id, patient_id=patient_id), c.DeliveryPinView
        )
    except (CommandRefused, ServiceUnavailable) as exc:
        log.warning("no PIN for order %s: %s", order_id, exc)
        return None
    return answer.pin


@router.delete(
    "/orders/{order_id}", response_model=OrderOut, dependencies=[audited("order.cancel", subject="order_id")]
)
async def cancel_order(order_id: ResourceId, user: CurrentUser, rpc: Rpc) -> OrderOut:
    """Cancel an order no courier has picked up yet (up to READY_FOR_PICKUP); 409 after that.

    Nothing is taken from the card (its authorisation is voided); held stock goes back on sale,
    dispensed stock is recorded returned."""
    command = c.CancelOrder(owner_id=owner_scope(user, None), order_id=order_id)
    return OrderOut.of(await rpc.ask(command, c.OrderView))
