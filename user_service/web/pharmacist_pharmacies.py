"""A pharmacist's own pharmacies on the web UI: their dispensing queues, and their stock of each
medication with its level changed. Which pharmacies, and who may change or dispense what, is the
API's (and inventory's) to say: these pages call `catalogue.*` and `deliveries.*` with the user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from contracts import commands as c
from user_service.deps import MAX_ID_LENGTH, ResourceId, Rpc
from user_service.routes import catalogue, deliveries
from user_service.schemas import PharmacyOut, StockIn, StockOut
from user_service.web.common import PageRoute, SignedIn, StaffPage, audited_page, redirect, render
from user_service.web.pharmacist_pages import names_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

EVERY = c.Page(limit=200, offset=0)


async def my_pharmacies(web: SignedIn, rpc: Rpc) -> list[PharmacyOut]:
    found = await catalogue.list_pharmacies(web.user, rpc, EVERY, mine=True)
    return found.items


@router.get("/dispensing", dependencies=[audited_page("pharmacy.dispensing_list")])
async def dispensing_page(
    request: Request,
    web: StaffPage,
    rpc: Rpc,
    dispensed: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
) -> HTMLResponse:
    """Each of the pharmacist's pharmacies with the paid orders waiting for its final check."""
    queues = []
    for pharmacy in await my_pharmacies(web, rpc):
        waiting = await deliveries.dispensing_queue(pharmacy.id, web.user, rpc, EVERY)
        queues.append((pharmacy, waiting.items))
    ids = [line.medication_id for _, orders in queues for order in orders for line in order.lines]
    confirmation = None if dispensed is None else f"Order {dispensed[:8]} dispensed: it waits for a courier."
    return render(
        request,
        "pharmacist_dispensing.html",
        web,
        queues=queues,
        names=await names_of(rpc, ids),
        confirmation=confirmation,
    )


@router.post("/dispensing/{order_id}/dispense", dependencies=[audited_page("order.dispense", "order_id")])
async def dispense(request: Request, order_id: ResourceId, web: StaffPage, rpc: Rpc) -> Response:
    await deliveries.dispense(order_id, web.user, rpc)
    return redirect(request, f"/dispensing?dispensed={order_id}")


async def stock_page(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    confirmation: str | None = None,
    sent: tuple[str, str] | None = None,
) -> HTMLResponse:
    """The pharmacist's pharmacies, each with its stock per medication and a form to change each
    (`sent`: the pharmacy and medication of a form sent with an error, shown even if not stocked yet)."""
    shelves: list[tuple[PharmacyOut, list[StockOut]]] = []
    for pharmacy in await my_pharmacies(web, rpc):
        levels = (await catalogue.list_stock(pharmacy.id, web.user, rpc, EVERY)).items
        if sent and sent[0] == pharmacy.id and sent[1] not in {s.medication_id for s in levels}:
            levels.append(
                StockOut(pharmacy_id=pharmacy.id, medication_id=sent[1], quantity=0, reserved=0, sold=0)
            )
        shelves.append((pharmacy, levels))
    names = await names_of(rpc, [s.medication_id for _, levels in shelves for s in levels])
    for _, levels in shelves:  # by name, as a shelf is read; those the catalogue lost last

        def by_name(level: StockOut) -> tuple[bool, str]:
            found = names.get(level.medication_id)
            return (
                found is None,
                f"{found.name} {found.strength}".casefold() if found else level.medication_id,
            )

        levels.sort(key=by_name)
    return render(
        request,
        "pharmacist_stock.html",
        web,
        status=status,
        shelves=shelves,
        names=names,
        errors=errors or {},
        values=values or {},
        confirmation=confirmation,
    )


@router.get("/stock", dependencies=[audited_page("stock.list")])
async def stock(
    request: Request,
    web: StaffPage,
    rpc: Rpc,
    changed: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
    opened: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
) -> HTMLResponse:
    confirmation = None
    if opened is not None:  # the pharmacist's new pharmacy (catalogue_pages), shown below with its search
        confirmation = "Your pharmacy is open and you are on its staff: find a medication below to stock it."
    if changed is not None:
        found = await names_of(rpc, [changed])
        named = f"{found[changed].name} {found[changed].strength}" if changed in found else "the medication"
        confirmation = f"The stock of {named} was changed."
    return await stock_page(request, web, rpc, confirmation=confirmation)


@router.get("/stock/search", dependencies=[audited_page("stock.list", "pharmacy_id")])
async def medication_search(
    request: Request,
    web: StaffPage,
    rpc: Rpc,
    pharmacy_id: Annotated[str, Query(max_length=MAX_ID_LENGTH)],
    q: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    """The catalogue's medications whose name starts with what was typed, each with a form to stock it
    at this pharmacy (prescription-only ones too), filled in with what it has for sale now."""
    wanted = q.strip()
    found = []
    levels: dict[str, int] = {}
    if len(wanted) >= 2:
        listed = await catalogue.list_medications(web.user, rpc, c.Page(limit=10, offset=0), None, wanted)
        found = listed.items
    if found:
        stocked = (await catalogue.list_stock(pharmacy_id, web.user, rpc, EVERY)).items
        levels = {s.medication_id: s.quantity for s in stocked}
    return render(
        request,
        "_pharmacist_stock_results.html",
        web,
        medications=found,
        query=q,
        pharmacy_id=pharmacy_id,
        levels=levels,
    )


def quantity_field(pharmacy_id: str, medication_id: str) -> str:
    return f"quantity-{pharmacy_id}-{medication_id}"


@router.post(
    "/stock/{pharmacy_id}/{medication_id}",
    dependencies=[audited_page("stock.set", "pharmacy_id")],
)
async def set_stock(
    request: Request,
    pharmacy_id: ResourceId,
    medication_id: ResourceId,
    web: StaffPage,
    rpc: Rpc,
    quantity: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    field = quantity_field(pharmacy_id, medication_id)
    try:
        body = StockIn.model_validate({"quantity": int(quantity) if quantity.strip().isdigit() else quantity})
    except ValidationError:
        errors = {field: "give the units for sale as a whole number from 0 to 1,000,000"}
        return await stock_page(
            request, web, rpc, 422, errors, {field: quantity}, None, (pharmacy_id, medication_id)
        )
    await catalogue.set_stock(pharmacy_id, medication_id, body, web.user, rpc, request.state.audit)
    return redirect(request, f"/stock?changed={medication_id}")
