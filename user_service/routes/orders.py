"""Orders (order_service behind RPC)."""

from __future__ import annotations

from fastapi import APIRouter

from contracts import commands as c
from user_service.audit import audited
from user_service.deps import CurrentUser, Dispatcher, Paging, ResourceId, Rpc, UserFilter
from user_service.domain import owner_scope
from user_service.schemas import DeliveryOut, OrderOut, Page

router = APIRouter(tags=["orders"])


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
    """Status, lines, pharmacy, total, and every status the order went through with its time."""
    return OrderOut.of(
        await rpc.ask(c.GetOrder(owner_id=owner_scope(user, None), order_id=order_id), c.OrderView)
    )


@router.delete(
    "/orders/{order_id}", response_model=OrderOut, dependencies=[audited("order.cancel", subject="order_id")]
)
async def cancel_order(order_id: ResourceId, user: CurrentUser, rpc: Rpc) -> OrderOut:
    """Cancel an order not yet paid (AWAITING_VERIFICATION, PENDING, STOCK_RESERVED); 409 otherwise.

    Its stock goes back."""
    command = c.CancelOrder(owner_id=owner_scope(user, None), order_id=order_id)
    return OrderOut.of(await rpc.ask(command, c.OrderView))


@router.get(
    "/deliveries",
    response_model=Page[DeliveryOut],
    tags=["deliveries"],
    dependencies=[audited("delivery.list")],
)
async def list_deliveries(courier: Dispatcher, rpc: Rpc, page: Paging) -> Page[DeliveryOut]:
    """Paid orders waiting to be taken to the patient, newest first: the pharmacy to collect from and
    where to deliver. A courier sees no medication, no price and no prescription.
    """
    command = c.ListOrders(owner_id=None, status="CONFIRMED", page=page)
    found = await rpc.ask(command, list[c.OrderView])
    return Page(items=[DeliveryOut.of(o) for o in found], limit=page.limit, offset=page.offset)
