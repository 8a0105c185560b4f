"""A courier's screens on the web UI: on or off duty and where they are, their deliveries (refreshed
while the page is open), and one delivery's moves: pick up, hand over on the PIN or the recipient's
name, or a failed attempt with its reason.

Every move is the API's route function (`routes/deliveries.py`), so the rules are delivery_service's:
which proof a hand-over needs, how many wrong PINs a visit allows, that a collected delivery keeps its
courier on duty. Each form carries an idempotency key made when the page was rendered: sent twice
(a double click, a resent form), the move is carried out once and answered the same.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from contracts import commands as c
from contracts.events import DeliveryFailure
from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service.audit import withdraw_note
from user_service.deps import ResourceId, Rpc
from user_service.problems import FieldInvalid
from user_service.routes import catalogue, deliveries
from user_service.schemas import CourierIn, CourierOut, DeliverIn, DeliveryOut, FailIn, PharmacyOut
from user_service.web.common import (
    CourierPage,
    PageRoute,
    SignedIn,
    audited_page,
    field_messages,
    redirect,
    render,
    templates,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DELIVERY_STATUS_WORDS = {
    "WAITING_FOR_COURIER": "Waiting for a courier",
    "ASSIGNED": "Assigned to you: collect it at the pharmacy",
    "OUT_FOR_DELIVERY": "Collected: on the way to the patient",
    "ATTEMPT_FAILED": "Attempt failed: try again",
    "DELIVERED": "Delivered",
    "RETURNED": "Returned to the pharmacy",
    "CANCELLED": "Cancelled",
}
FAILURE_WORDS: dict[str, str] = {
    "NO_ONE_HOME": "No one at home",
    "WRONG_ADDRESS": "Wrong address",
    "REFUSED": "The patient refused it",
    "ID_CHECK_FAILED": "Identity check failed",
    "OTHER": "Something else (say what in the note)",
}
assert set(FAILURE_WORDS) == set(get_args(DeliveryFailure)), "a failure reason without its words"
templates.env.globals["delivery_status_words"] = DELIVERY_STATUS_WORDS
templates.env.globals["failure_words"] = FAILURE_WORDS
# What the page says after a move (PRG: the redirect names it, nothing of the patient's).
Done = Literal["status", "picked-up", "delivered", "failed"]
DONE_WORDS: dict[str, str] = {
    "status": "Your status is saved.",
    "picked-up": "Picked up: take it to the patient.",
    "delivered": "Delivered. Thank you.",
    "failed": "The failed attempt is recorded.",
}
LIST_SIZE = 50
MoveKey = Annotated[str, Form(max_length=100)]


def move_key() -> str:
    """A form's idempotency key, made when the page is rendered: the same form sent twice is one move."""
    return secrets.token_urlsafe(18)


async def my_state(web: SignedIn, rpc: Rpc) -> CourierOut | None:
    """Where the courier last said they were; None until they first said (they take no deliveries)."""
    try:
        return await deliveries.read_me(web.user, rpc)
    except CommandRefused as exc:
        if exc.code != "not_found":
            raise
        return None


async def my_deliveries(web: SignedIn, rpc: Rpc) -> dict[str, Any]:
    """The courier's deliveries, newest first, with the pharmacies to collect them from, and a digest
    of what they show (`seen`): the page sends it back when it asks again."""
    found = await deliveries.list_deliveries(web.user, rpc, c.Page(limit=LIST_SIZE, offset=0))
    pharmacies = await pharmacies_of(rpc, found.items)
    shown = json.dumps(
        [
            [d.model_dump(mode="json") for d in found.items],
            {k: p.model_dump() for k, p in pharmacies.items()},
        ],
        sort_keys=True,
    )
    seen = hashlib.sha256(shown.encode()).hexdigest()[:32]
    return {"deliveries": found.items, "pharmacies": pharmacies, "seen": seen}


async def pharmacies_of(rpc: Rpc, shown: list[DeliveryOut]) -> dict[str, PharmacyOut]:
    """Each delivery's pharmacy by name and address; its id and place alone if inventory is not answering."""
    try:
        return await catalogue.pharmacies_by_id(rpc, [d.pharmacy_id for d in shown])
    except ServiceUnavailable:
        return {}


# --- my status and my deliveries --------------------------------------------------------------------


async def courier_page(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    done: str | None = None,
) -> HTMLResponse:
    me = await my_state(web, rpc)
    shown = values or (
        {}
        if me is None
        else {
            "available": "yes" if me.available else "no",
            "latitude": f"{me.latitude:.5f}",
            "longitude": f"{me.longitude:.5f}",
        }
    )
    return render(
        request,
        "courier.html",
        web,
        status=status,
        me=me,
        values=shown,
        errors=errors or {},
        **await my_deliveries(web, rpc),
        notice=DONE_WORDS.get(done or ""),
    )


@router.get("/courier", dependencies=[audited_page("courier.read")])
async def courier_home(
    request: Request, web: CourierPage, rpc: Rpc, done: Annotated[Done | None, Query()] = None
) -> HTMLResponse:
    return await courier_page(request, web, rpc, done=done)


@router.get("/courier/deliveries", dependencies=[audited_page("delivery.list")])
async def delivery_list(
    request: Request, web: CourierPage, rpc: Rpc, seen: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    """The list alone: the courier's page asks for it again every few seconds (htmx), so a delivery
    newly assigned appears without a reload. Unchanged since `seen`: 204, and htmx leaves the list
    as it is (a link in focus stays in focus)."""
    listed = await my_deliveries(web, rpc)
    if seen == listed["seen"]:
        withdraw_note(request)  # every 5 s while the page is open: only a list sent is an entry
        return Response(status_code=204)
    return render(request, "_courier_deliveries.html", web, **listed)


def coordinate(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


@router.post("/courier/status", dependencies=[audited_page("courier.update")])
async def update_status(
    request: Request,
    web: CourierPage,
    rpc: Rpc,
    available: Annotated[str, Form(max_length=3)] = "",
    latitude: Annotated[str, Form(max_length=40)] = "",
    longitude: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    values = {"available": available, "latitude": latitude, "longitude": longitude}
    errors: dict[str, str] = {}
    if available not in ("yes", "no"):
        errors["available"] = "Choose on duty or off duty."
    north, east = coordinate(latitude), coordinate(longitude)
    for name, number in (("latitude", north), ("longitude", east)):
        if number is None:
            errors[name] = "Give a number in degrees, like 52.52."
    if errors or north is None or east is None:
        return await courier_page(request, web, rpc, status=422, errors=errors, values=values)
    try:
        body = CourierIn(available=available == "yes", latitude=north, longitude=east)
        await deliveries.update_me(body, web.user, rpc)
    except ValidationError as exc:
        errors = {k: f"{v}." for k, v in field_messages(exc).items()}
        return await courier_page(request, web, rpc, status=422, errors=errors, values=values)
    except CommandRefused as exc:
        # Off duty with a delivery collected: the API refuses (409) until it is handed over or failed.
        if exc.code != "conflict":
            raise
        errors = {"available": f"You cannot go off duty now: {exc.detail}."}
        return await courier_page(request, web, rpc, status=409, errors=errors, values=values)
    return redirect(request, "/courier?done=status")


# --- one delivery -----------------------------------------------------------------------------------


async def delivery_page(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    delivery_id: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    done: str | None = None,
) -> HTMLResponse:
    delivery = await deliveries.get_delivery(delivery_id, web.user, rpc)
    return render(
        request,
        "courier_delivery.html",
        web,
        status=status,
        delivery=delivery,
        pharmacies=await pharmacies_of(rpc, [delivery]),
        errors=errors or {},
        values=values or {},
        notice=DONE_WORDS.get(done or ""),
        move_key=move_key(),
    )


@router.get("/courier/deliveries/{delivery_id}", dependencies=[audited_page("delivery.read", "delivery_id")])
async def delivery_screen(
    request: Request,
    delivery_id: ResourceId,
    web: CourierPage,
    rpc: Rpc,
    done: Annotated[Done | None, Query()] = None,
) -> HTMLResponse:
    return await delivery_page(request, web, rpc, delivery_id, done=done)


def refused_beside(exc: CommandRefused, default: str) -> dict[str, str]:
    """A refusal of a move, beside the field it names (or the form's button)."""
    if exc.field == "Idempotency-Key":
        return {default: "This form was already sent with other values: it is fresh now, send it again."}
    if exc.field == "pin" and exc.detail.startswith("wrong PIN"):
        # The API says how many tries this visit has left: "wrong PIN (4 tries left on this visit)".
        return {"pin": f"That PIN is not right{exc.detail.removeprefix('wrong PIN')}."}
    return {exc.field or default: f"{exc.detail[:1].upper()}{exc.detail[1:]}."}


def moved(request: Request, delivery_id: str, done: Done) -> Response:
    return redirect(request, f"/courier/deliveries/{delivery_id}?done={done}")


@router.post(
    "/courier/deliveries/{delivery_id}/pickup",
    dependencies=[audited_page("delivery.pickup", "delivery_id")],
)
async def pick_up(
    request: Request, delivery_id: ResourceId, web: CourierPage, rpc: Rpc, move_key: MoveKey = ""
) -> Response:
    try:
        await deliveries.pick_up(delivery_id, web.user, rpc, move_key or None)
    except CommandRefused as exc:
        if exc.code not in ("invalid", "conflict"):
            raise
        errors = refused_beside(exc, "pickup")
        return await delivery_page(request, web, rpc, delivery_id, status=409, errors=errors)
    return moved(request, delivery_id, "picked-up")


@router.post(
    "/courier/deliveries/{delivery_id}/deliver",
    dependencies=[audited_page("delivery.deliver", "delivery_id")],
)
async def deliver(
    request: Request,
    delivery_id: ResourceId,
    web: CourierPage,
    rpc: Rpc,
    move_key: MoveKey = "",
    pin: Annotated[str, Form(max_length=20)] = "",
    recipient_name: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    values = {"recipient_name": recipient_name}  # a PIN is never sent back
    try:
        body = DeliverIn(pin=pin.strip() or None, recipient_name=recipient_name.strip() or None)
        await deliveries.deliver(delivery_id, body, web.user, rpc, move_key or None)
    except ValidationError as exc:
        errors = field_messages(exc)
        if "pin" in errors:
            errors["pin"] = "Give the 4 digits the patient tells you."
        return await delivery_page(request, web, rpc, delivery_id, status=422, errors=errors, values=values)
    except FieldInvalid as exc:
        errors = {exc.field: f"{exc.message[:1].upper()}{exc.message[1:]}."}
        return await delivery_page(request, web, rpc, delivery_id, status=422, errors=errors, values=values)
    except CommandRefused as exc:
        if exc.code not in ("invalid", "conflict"):
            raise
        status = 422 if exc.code == "invalid" else 409
        errors = refused_beside(exc, "deliver")
        return await delivery_page(
            request, web, rpc, delivery_id, status=status, errors=errors, values=values
        )
    return moved(request, delivery_id, "delivered")


@router.post(
    "/courier/deliveries/{delivery_id}/fail",
    dependencies=[audited_page("delivery.fail", "delivery_id")],
)
async def fail(
    request: Request,
    delivery_id: ResourceId,
    web: CourierPage,
    rpc: Rpc,
    move_key: MoveKey = "",
    reason: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    values = {"reason": reason, "note": note}
    try:
        body = FailIn.model_validate({"reason": reason, "note": note.strip() or None})
        await deliveries.fail(delivery_id, body, web.user, rpc, move_key or None)
    except ValidationError as exc:
        errors = field_messages(exc)
        if "reason" in errors:
            errors["reason"] = "Choose why the delivery could not be made."
        return await delivery_page(request, web, rpc, delivery_id, status=422, errors=errors, values=values)
    except CommandRefused as exc:
        if exc.code not in ("invalid", "conflict"):
            raise
        status = 422 if exc.code == "invalid" else 409
        errors = refused_beside(exc, "fail")
        return await delivery_page(
            request, web, rpc, delivery_id, status=status, errors=errors, values=values
        )
    return moved(request, delivery_id, "failed")
