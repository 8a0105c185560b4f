"""Orders (order_service behind RPC)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

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
# How long a patient's request about an order they were just given waits for it to be placed: the
# upload was accepted (202) and the order follows within moments, a second or two more while the
# broker fails over and the prescription's events wait in its outbox.
PLACING_SECONDS = 5.0
PLACING_POLL_SECONDS = 0.25
# An upload older than this whose order is still missing is not being placed: its event was lost or
# dead-lettered (an incident for the operators), and the patient is told 404 at once, as before.
PLACING_WINDOW = timedelta(minutes=10)


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
    command = c.GetOrder(owner_id=owner_scope(user, None), order_id=order_id)
    order = await _once_placed(rpc, command.owner_id, order_id, lambda: rpc.ask(command, c.OrderView))
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
    return OrderOut.of(
        await _once_placed(rpc, command.owner_id, order_id, lambda: rpc.ask(command, c.OrderView))
    )


async def _once_placed(
    rpc: RpcClient, owner_id: str | None, order_id: str, ask: Callable[[], Awaitable[c.OrderView]]
) -> c.OrderView:
    """`ask` about an order. Not found, but named by one of the patient's own prescriptions, the order
    is on its way: asked again for up to PLACING_SECONDS, then 409 saying so, never 404 for an order
    the patient was just given (a cancel is not lost as "not found")."""
    try:
        return await ask()
    except CommandRefused as exc:
        if exc.code != "not_found" or owner_id is None or not await _being_placed(rpc, owner_id, order_id):
            raise
    log.info("order %s is not placed yet; waiting for it", order_id)
    deadline = time.monotonic() + PLACING_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(PLACING_POLL_SECONDS)
        try:
            return await ask()
        except CommandRefused as exc:
            if exc.code != "not_found":
                raise
    raise CommandRefused("conflict", f"order {order_id} is still being placed; try again in a moment")


async def _being_placed(rpc: RpcClient, patient_id: str, order_id: str) -> bool:
    """Whether one of the patient's newest prescriptions names the order: its first fill, uploaded
    within PLACING_WINDOW, or a refill (the view does not say when one was asked for). Unknown, when
    prescription_service does not answer: then not, and the order's own 404 stands."""
    try:
        newest = await rpc.ask(
            c.ListPrescriptions(owner_id=patient_id, page=c.Page(limit=20)), list[c.PrescriptionView]
        )
    except (CommandRefused, ServiceUnavailable) as exc:
        log.warning("cannot tell whether order %s is being placed: %s", order_id, exc)
        return False
    recent = datetime.now(UTC) - PLACING_WINDOW
    return any(
        (order_id == p.order_id and p.uploaded_at >= recent) or order_id in p.refill_order_ids for p in newest
    )
