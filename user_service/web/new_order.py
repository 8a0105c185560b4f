"""An over-the-counter order on the web UI: found in the catalogue, priced, placed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from uuid import uuid4

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from contracts import commands as c
from contracts.events import Location
from service_runtime.errors import CommandRefused
from user_service.deps import Rpc
from user_service.domain import keyed_request_id
from user_service.problems import FieldInvalid
from user_service.routes import catalogue
from user_service.routes.prescriptions import medications_by_id, quote_of, upload_typed
from user_service.schemas import (
    PrescriptionIn,
    QuoteOut,
)
from user_service.web.cards import with_cards
from user_service.web.common import (
    PageRoute,
    PatientPage,
    SignedIn,
    audited_page,
    redirect,
    render,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/prescriptions/new", dependencies=[audited_page("payment_method.list")])
async def new_order_page(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    fresh = {"lines": [], "form_id": str(uuid4())}
    return await with_cards(request, web, rpc, "new_order.html", values=fresh)


@router.get("/catalogue/search")
async def catalogue_search(
    request: Request, web: PatientPage, rpc: Rpc, q: Annotated[str, Query(max_length=100)] = ""
) -> HTMLResponse:
    """Over-the-counter medications whose name starts with what was typed."""
    wanted = q.strip()
    found = []
    if len(wanted) >= 2:
        listed = await catalogue.list_medications(web.user, rpc, c.Page(limit=50, offset=0), None, wanted)
        found = [m for m in listed.items if not m.prescription_only][:10]
    return render(request, "_search_results.html", web, medications=found, query=q)


@router.get("/prescriptions/new/line")
async def order_line(
    request: Request, web: PatientPage, rpc: Rpc, medication_id: Annotated[str, Query(max_length=64)]
) -> HTMLResponse:
    medication = await catalogue.get_medication(medication_id, web.user, rpc)
    return render(request, "_order_line.html", web, line={"medication": medication, "quantity": 1})


@router.get("/prescriptions/new/removed")
async def removed_line(web: PatientPage) -> HTMLResponse:
    # The line's row is swapped for nothing (hx-swap="delete" needs an answer to act on).
    return HTMLResponse("")


# The refusal of a form sent again with other lines after it placed its order (the API's words are
# about its idempotency key); the page links to "My orders" beside it.
PLACED_ALREADY = (
    "This form already placed an order, with other lines than these. "
    "Check it in My orders; sending this form again now places a second order."
)


class OrderForm:
    """An order form as sent: lines (medication and quantity, repeated), where, the card, an optional
    delivery window, and for a scanned prescription its document."""

    def __init__(self, form: Any) -> None:
        self.medication_ids = [str(v) for v in form.getlist("medication_id")][:50]
        self.quantities = [str(v) for v in form.getlist("quantity")][:50]
        self.latitude = str(form.get("latitude") or "")
        self.longitude = str(form.get("longitude") or "")
        self.payment_method_id = str(form.get("payment_method_id") or "")
        self.window_start = str(form.get("window_start") or "")[:40]
        self.window_end = str(form.get("window_end") or "")[:40]
        self.document_id = str(form.get("document_id") or "")[:64] or None
        self.form_id = str(form.get("form_id") or "")[:64]
        # A scanned draft's lines are told apart by their place in the draft: two may match one medication.
        self.draft_lines = [str(v) for v in form.getlist("draft_line")][:50]

    def body(self) -> PrescriptionIn:
        """The upload the API would take: every field at fault found at once (ValidationError)."""
        window = None
        if self.window_start or self.window_end:
            window = {"start": utc_time(self.window_start), "end": utc_time(self.window_end)}
        return PrescriptionIn.model_validate(
            {
                "lines": [
                    {"medication_id": m, "quantity": int(q) if q.strip().isdigit() else q}
                    for m, q in zip(self.medication_ids, self.quantities, strict=False)
                ],
                "delivery_location": {"latitude": number(self.latitude), "longitude": number(self.longitude)},
                "payment_method_id": self.payment_method_id,
                "delivery_window": window,
                "document_id": self.document_id,
            }
        )

    def values(self) -> dict[str, Any]:
        """What was typed, to show the form again with it."""
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "payment_method_id": self.payment_method_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
        }

    def errors(self, exc: ValidationError) -> dict[str, str]:
        """Each message under the id of the input it is about: `quantity-<medication id>` for a line
        (`quantity-<place in the draft>` for a scanned draft's)."""
        found: dict[str, str] = {}
        for error in exc.errors():
            loc, message = error["loc"], str(error["msg"]).removeprefix("Value error, ")
            if loc[:1] == ("lines",) and len(loc) >= 3 and isinstance(loc[1], int):
                keys = self.draft_lines if len(self.draft_lines) > loc[1] else self.medication_ids
                field = f"quantity-{keys[loc[1]]}"
            elif loc[:1] == ("lines",):
                field, message = "lines", "add at least one medication"
            elif loc[:1] == ("delivery_window",):
                field = "window_end" if loc[-1] == "end" else "window_start"
                if "datetime" in message:
                    message = "give the day and time, or leave both empty for no window"
            else:
                field = str(loc[-1])
            found.setdefault(field, message)
        return found


def utc_time(text: str) -> datetime | str:
    """A datetime-local field's value ("2026-12-02T10:00"), read as UTC as the form says; as typed
    when it is none, for the model to refuse by its name."""
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    except ValueError:
        return text


def number(text: str) -> float | str:
    """A form's number as a float; as typed when it is none, for the model to refuse by its name."""
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return text


FIELD_LABELS = {
    "lines": "Medications",
    "latitude": "Latitude",
    "longitude": "Longitude",
    "payment_method_id": "Card",
    "window_start": "Delivery window from",
    "window_end": "Delivery window until",
}


def labelled(errors: dict[str, str]) -> dict[str, str]:
    """The errors under the labels the patient sees, for a list of them (the price's panel)."""
    return {FIELD_LABELS.get(field, "Quantity"): message for field, message in errors.items()}


@router.post("/prescriptions/quote")
async def quote(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    """The price of the lines in the form, delivered where it says, now: shown before ordering."""
    form = OrderForm(await request.form())
    try:
        body = form.body()
    except ValidationError as exc:
        return render(request, "_quote.html", web, quote=None, errors=labelled(form.errors(exc)))
    location = Location(latitude=body.delivery_location.latitude, longitude=body.delivery_location.longitude)
    quoted = QuoteOut.of(await quote_of(rpc, body.lines, location))
    return render(request, "_quote.html", web, quote=quoted, errors={})


@router.post("/prescriptions/new", dependencies=[audited_page("prescription.upload", "prescription_id")])
async def place_order(request: Request, web: PatientPage, rpc: Rpc) -> Response:
    form = OrderForm(await request.form())

    async def again(
        errors: dict[str, str], form_id: str = form.form_id, *, placed: bool = False
    ) -> HTMLResponse:
        values = {
            "lines": await _named_lines(rpc, form),
            "form_id": form_id,
            "placed_already": placed,
            **form.values(),
        }
        return await with_cards(request, web, rpc, "new_order.html", 422, errors, values)

    return await uploaded_once(request, web, rpc, form, "web-order", again)


class FormAgain(Protocol):
    """The order form shown again with what is wrong: with a new `form_id` once this one has placed
    its order (`placed`)."""

    async def __call__(
        self, errors: dict[str, str], form_id: str = ..., *, placed: bool = False
    ) -> HTMLResponse: ...


async def uploaded_once(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    form: OrderForm,
    key: str,
    again: FormAgain,
) -> Response:
    """The form's order uploaded, then its page; what is wrong, on the form again (`again`) beside its
    field. One order per form shown (`key`:form id): a double click or a form sent again makes no
    second order."""
    try:
        body = form.body()
        request_id = keyed_request_id(web.user.id, f"{key}:{form.form_id}") if form.form_id else None
        view, _ = await upload_typed(body, web.user.id, rpc, request_id)
    except ValidationError as exc:
        return await again(form.errors(exc), form.form_id)
    except FieldInvalid as exc:
        field = "payment_method_id" if exc.field == "payment_method_id" else "lines"
        return await again({field: f"{exc.message}."}, form.form_id)
    except CommandRefused as exc:
        if exc.code != "invalid":
            raise
        if exc.field == "document_id":  # a scan's document (the API refuses one not the patient's)
            return await again({"lines": f"{exc.detail}: scan the prescription again."}, form.form_id)
        if exc.field is not None:  # a field the rules refuse: said as the API says it
            return await again({"lines": f"{exc.detail}: check the lines and send again."}, form.form_id)
        # This form's order was placed already, with other lines (Back, an edit, sent again): the
        # form gets a new id, so what is sent now is a new order.
        return await again({"lines": PLACED_ALREADY}, str(uuid4()), placed=True)
    request.state.audit.subject_id = view.id
    return redirect(request, f"/orders/{view.order_id}")


async def _named_lines(rpc: Rpc, form: OrderForm) -> list[dict[str, Any]]:
    """The form's lines with their medications, to show the form again, in one question: those the
    catalogue does not sell are left out."""
    found = {m.id: m for m in await medications_by_id(rpc, form.medication_ids)}
    return [
        {"medication": found[medication_id], "quantity": quantity}
        for medication_id, quantity in zip(form.medication_ids, form.quantities, strict=False)
        if medication_id in found
    ]
