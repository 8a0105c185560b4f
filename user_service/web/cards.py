"""A patient's cards on the web UI: brand and last four only, adding one and removing one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from service_runtime.errors import CommandRefused
from user_service.deps import ResourceId, Rpc
from user_service.routes import payments
from user_service.schemas import (
    PaymentMethodIn,
)
from user_service.web.common import (
    PageRoute,
    PatientPage,
    SignedIn,
    audited_page,
    field_messages,
    redirect,
    render,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/cards", dependencies=[audited_page("payment_method.list")])
async def cards_page(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    return await with_cards(request, web, rpc, "cards.html")


async def with_cards(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    template: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    """A page showing the patient's cards (brand and last four only), with a form's errors and values."""
    found = await payments.list_payment_methods(web.user, rpc)
    return render(
        request, template, web, status=status, cards=found.items, errors=errors or {}, values=values or {}
    )


CARD_FIELDS = {"card_number": "card_number", "exp_month": "expiry", "exp_year": "expiry", "cvc": "cvc"}


@router.post("/cards", dependencies=[audited_page("payment_method.add", "payment_method_id")])
async def add_card(
    request: Request,
    web: PatientPage,
    rpc: Rpc,
    card_number: Annotated[str, Form(max_length=40)] = "",
    expiry: Annotated[str, Form(max_length=10)] = "",
    cvc: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    values = {"card_number": "", "expiry": expiry}  # the number and the CVC are never sent back
    month, _, year = expiry.partition("/")
    try:
        body = PaymentMethodIn(
            card_number=card_number.replace(" ", ""),
            exp_month=int(month) if month.strip().isdigit() else 0,
            exp_year=2000 + int(year) if year.strip().isdigit() and len(year.strip()) == 2 else 0,
            cvc=cvc,
        )
        await payments.add_payment_method(body, web.user, rpc, request.state.audit)
    except ValidationError as exc:
        errors = field_messages(exc, CARD_FIELDS)
        if "expiry" in errors:
            errors["expiry"] = "Give the month and year as on the card, as MM/YY."
        return await with_cards(request, web, rpc, "cards.html", 422, errors, values)
    except CommandRefused as exc:
        if exc.code != "invalid":
            raise
        field = CARD_FIELDS.get(exc.field or "", "card_number")
        return await with_cards(request, web, rpc, "cards.html", 422, {field: f"{exc.detail}."}, values)
    return redirect(request, "/cards")


@router.post(
    "/cards/{payment_method_id}/remove",
    dependencies=[audited_page("payment_method.remove", "payment_method_id")],
)
async def remove_card(
    request: Request, payment_method_id: ResourceId, web: PatientPage, rpc: Rpc
) -> Response:
    """The card is no longer offered nor charged; an order already paid with it keeps its payment."""
    await payments.remove_payment_method(payment_method_id, web.user, rpc)
    return redirect(request, "/cards")
