"""A patient's orders on the web UI: the list, an order's page, and its status followed live (SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from contracts import commands as c
from service_runtime.clock import utc_now
from service_runtime.errors import ServiceUnavailable
from user_service.deps import ResourceId, Rpc, SettingsDep
from user_service.routes import orders
from user_service.routes.prescriptions import medications_by_id
from user_service.schemas import (
    OrderOut,
)
from user_service.web.common import (
    PageRoute,
    PatientPage,
    Sessions,
    audited_page,
    cookie_name,
    redirect,
    render,
    templates,
)

# A comment line this many quiet polls apart: a proxy in between sees traffic and keeps the stream open.
KEEP_ALIVE_POLLS = 15
STOPPED = "Live updates have stopped: reload this page to follow the order again."
SIGNED_OUT = "You are signed out: sign in again to follow this order."


router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/orders", dependencies=[audited_page("order.list")])
async def order_list(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    found = await orders.list_orders(web.user, rpc, c.Page(limit=50, offset=0), None)
    return render(request, "orders.html", web, orders=found.items)


@router.get("/orders/{order_id}", dependencies=[audited_page("order.read", "order_id")])
async def order_page(request: Request, order_id: ResourceId, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    order = await orders.get_order(order_id, web.user, rpc)
    context = order_context(order, await medication_names(rpc, order))
    return render(request, "order.html", web, live=not order.ended, **context)


def order_context(order: OrderOut, names: dict[str, str]) -> dict[str, Any]:
    return {"order": order, "names": names, "cancellable": order.cancellable}


async def medication_names(rpc: Rpc, order: OrderOut) -> dict[str, str]:
    """Each line's medication as the patient knows it ("Ibuprofen 400 mg"); its id if the catalogue
    no longer lists it."""
    try:
        found = await medications_by_id(rpc, [line.medication_id for line in order.lines])
    except ServiceUnavailable:
        return {}
    return {m.id: f"{m.name} {m.strength}" for m in found}


async def watched_order(order_id: ResourceId, web: PatientPage, rpc: Rpc) -> OrderOut:
    # A dependency, so it is asked before the stream starts: another patient's order is a 404 (and
    # audited as not found), not an empty stream of 200.
    return await orders.get_order(order_id, web.user, rpc)


@router.get(
    "/orders/{order_id}/live",
    response_class=EventSourceResponse,
    dependencies=[audited_page("order.watch", "order_id")],
)
async def order_live(
    request: Request,
    order_id: ResourceId,
    web: PatientPage,
    rpc: Rpc,
    settings: SettingsDep,
    sessions: Sessions,
    order: Annotated[OrderOut, Depends(watched_order)],
) -> AsyncIterator[ServerSentEvent]:
    """The order's status panel, sent again each time it changes, until the order has ended or the
    session has (a signed-out tab is told nothing more)."""
    names = await medication_names(rpc, order)
    token = request.cookies.get(cookie_name(settings), "")

    def panel() -> ServerSentEvent:
        html = templates.get_template("_order_panel.html").render(
            csrf_token=web.session.csrf_token, **order_context(order, names)
        )
        return ServerSentEvent(event="order", raw_data=" ".join(html.split()))

    # At once: the page was rendered a moment ago (or before a reconnect), the order may have moved since.
    yield panel()
    sent = order.model_dump_json()
    loop = asyncio.get_running_loop()
    until = loop.time() + settings.web_live_max_minutes * 60
    quiet = 0
    note = STOPPED
    while not order.ended and loop.time() < until:
        await asyncio.sleep(settings.web_live_poll_seconds)
        if await request.is_disconnected():
            return
        if await sessions.find(token=token, now=utc_now()) is None:
            note = SIGNED_OUT
            break
        try:
            order = await orders.get_order(order_id, web.user, rpc)
        except ServiceUnavailable:
            continue
        if (seen := order.model_dump_json()) != sent:
            sent, quiet = seen, 0
            yield panel()
        elif (quiet := quiet + 1) % KEEP_ALIVE_POLLS == 0:
            yield ServerSentEvent(comment="still watching")
    if not order.ended:
        # Said, not left silent: the status shown is no longer followed (the note holds no order data).
        yield ServerSentEvent(event="note", raw_data=note)
    # The page closes its connection instead of reconnecting.
    yield ServerSentEvent(event="end", raw_data="")


@router.post("/orders/{order_id}/cancel", dependencies=[audited_page("order.cancel", "order_id")])
async def cancel(request: Request, order_id: ResourceId, web: PatientPage, rpc: Rpc) -> Response:
    await orders.cancel_order(order_id, web.user, rpc)
    return redirect(request, f"/orders/{order_id}")
