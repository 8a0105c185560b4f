"""The web UI's pages: server-rendered from the same route functions and RPCs as the API.

A page handler signs the caller in from their session cookie, then calls the API's own route
function (`orders.get_order`, `upload_typed`, ...) with that user, so every role, ownership and
domain rule is the API's: there is no second copy of any. What a route function raises (a refusal,
a forbidden role, a field at fault) becomes a page (`PageRoute`), or a message beside the field.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from contracts import commands as c
from contracts.events import Location
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service.audit import AuditNote, open_note, open_sign_in
from user_service.deps import ResourceId, Rpc, SettingsDep, Throttle, Users
from user_service.domain import Forbidden, User, keyed_request_id
from user_service.problems import RPC_STATUS, FieldInvalid
from user_service.routes import auth, catalogue, orders, payments
from user_service.routes.prescriptions import quote_of, upload_typed
from user_service.schemas import (
    OrderOut,
    PaymentMethodIn,
    PrescriptionIn,
    QuoteOut,
    RegisterIn,
)
from user_service.settings import Settings
from user_service.web.sessions import WebSession, WebSessions

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Before anyone is signed in, the sign-in and register forms carry this cookie's value (double submit).
FORM_COOKIE = "pharmacy_form"
FORM_COOKIE_SECONDS = 3600
CSRF_HEADER = "X-CSRF-Token"
# The order page stops listening once the order can no longer change.
ENDED = frozenset({"DELIVERED", "RETURNED", "CANCELLED", "REJECTED"})
LIVE_POLL_SECONDS = 1.0
LIVE_MAX_SECONDS = 15 * 60
KEEP_ALIVE_POLLS = 15
STATUS_WORDS = {
    "AWAITING_VERIFICATION": "Waiting for a pharmacist",
    "PENDING": "Finding stock",
    "STOCK_RESERVED": "Stock reserved",
    "CONFIRMED": "Paid, waiting for the pharmacy",
    "READY_FOR_PICKUP": "Ready, waiting for a courier",
    "OUT_FOR_DELIVERY": "On its way",
    "DELIVERY_FAILED": "Delivery attempt failed",
    "DELIVERED": "Delivered",
    "RETURNED": "Returned to the pharmacy",
    "CANCELLED": "Cancelled",
    "REJECTED": "Rejected",
}
CANCELLABLE = frozenset({"AWAITING_VERIFICATION", "PENDING", "STOCK_RESERVED", "CONFIRMED"})
templates.env.globals["status_words"] = STATUS_WORDS


class SignInFirst(Exception):
    """No valid session: the page sends the browser to the sign-in page."""


class FormExpired(HTTPException):
    """A state-changing request without its CSRF token (or with another session's)."""

    def __init__(self) -> None:
        super().__init__(403, "this form has expired: reload the page and try again")


class PageRoute(APIRoute):
    """A page answers in HTML whatever goes wrong: an error page for a refusal, the sign-in page for
    no session, never problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInFirst:
                return redirect(request, "/sign-in")
            except Forbidden as exc:
                return error_page(request, 403, str(exc))
            except CommandRefused as exc:
                status = RPC_STATUS[exc.code]
                if status < 500:
                    return error_page(request, status, exc.detail)
                log.warning("%s %s refused: %s %s", request.method, request.url.path, exc.code, exc.detail)
                return error_page(request, status, "a back-end service could not carry out the request")
            except ServiceUnavailable as exc:
                log.warning("%s", exc)
                return error_page(request, 503, "a back-end service is not answering; try again shortly")
            except FieldInvalid as exc:
                return error_page(request, 422, exc.message)
            except HTTPException as exc:
                page = error_page(request, exc.status_code, str(exc.detail))
                page.headers.update(getattr(exc, "headers", None) or {})
                return page
            except RequestValidationError:
                return error_page(request, 422, "the request was not understood; go back and try again")

        return page


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# --- sessions, CSRF, rendering ----------------------------------------------------------------------


def cookie_name(settings: Settings, name: str = "pharmacy_session") -> str:
    # `__Host-`: only ever set over HTTPS, for this host and path / (no sibling domain can plant one);
    # development runs on plain HTTP.
    return name if settings.environment == "development" else f"__Host-{name}"


def form_cookie(settings: Settings) -> str:
    return cookie_name(settings, FORM_COOKIE)


def drop_cookie(response: Response, settings: Settings, name: str) -> None:
    # With the attributes it was set with: a browser keeps a `__Host-` cookie deleted without `Secure`.
    response.delete_cookie(
        name, path="/", secure=settings.environment != "development", httponly=True, samesite="strict"
    )


def set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=settings.environment != "development",
        samesite="strict",
    )


async def get_sessions(request: Request) -> WebSessions:
    sessions: WebSessions = request.app.state.web_sessions
    return sessions


Sessions = Annotated[WebSessions, Depends(get_sessions)]


class SignedIn:
    def __init__(self, user: User, session: WebSession) -> None:
        self.user = user
        self.session = session


async def signed_in(request: Request, settings: SettingsDep, sessions: Sessions, users: Users) -> SignedIn:
    """The session's user, read again from the store (a revoked role takes effect at once); a
    state-changing request must carry the session's CSRF token, in a form field or a header."""
    token = request.cookies.get(cookie_name(settings))
    session = None if token is None else await sessions.find(token=token, now=utc_now())
    user = None if session is None else await users.by_id(user_id=session.user_id)
    if session is None or user is None:
        raise SignInFirst
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            form = await request.form()
            field = form.get("csrf_token")
            sent = field if isinstance(field, str) else None
        if not session.csrf_matches(sent):
            raise FormExpired
    return SignedIn(user, session)


Web = Annotated[SignedIn, Depends(signed_in)]


def audited_page(action: str, subject: str | None = None) -> Any:
    async def open_entry(request: Request, web: Web) -> None:
        open_note(request, web.user, action, subject)

    return Depends(open_entry)


async def patient_only(web: Web) -> SignedIn:
    if web.user.role != "patient":
        raise Forbidden("this page is for patients")
    return web


PatientPage = Annotated[SignedIn, Depends(patient_only)]


def render(
    request: Request, template: str, web: SignedIn | None = None, status: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {
            "user": None if web is None else web.user,
            "csrf_token": None if web is None else web.session.csrf_token,
            **context,
        },
        status_code=status,
    )


def redirect(request: Request, to: str) -> Response:
    # htmx follows a redirect inside its swap; a full page change is asked for with HX-Redirect.
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": to})
    return RedirectResponse(to, status_code=303)


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    return render(request, "error.html", status=status, title=HTTPStatus(status).phrase, detail=detail)


def field_messages(exc: ValidationError, names: dict[str, str] | None = None) -> dict[str, str]:
    """pydantic's errors by form field: the message shown beside each."""
    found: dict[str, str] = {}
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        field = (names or {}).get(loc, loc)
        found.setdefault(field, error["msg"].removeprefix("Value error, "))
    return found


# --- signing in and out -----------------------------------------------------------------------------


def anonymous_form(
    request: Request, settings: Settings, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    token = request.cookies.get(form_cookie(settings)) or secrets.token_urlsafe(32)
    page = render(request, template, status=status, csrf_token=token, **context)
    set_cookie(page, settings, form_cookie(settings), token, max_age=FORM_COOKIE_SECONDS)
    return page


def check_form_token(request: Request, settings: Settings, sent: str) -> None:
    kept = request.cookies.get(form_cookie(settings))
    if kept is None or not secrets.compare_digest(kept, sent):
        raise FormExpired


async def start_session(request: Request, settings: Settings, sessions: WebSessions, user: User) -> Response:
    token, _ = await sessions.open(user_id=user.id, now=utc_now())
    response = redirect(request, "/")
    set_cookie(response, settings, cookie_name(settings), token, int(sessions.lifetime.total_seconds()))
    drop_cookie(response, settings, form_cookie(settings))
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return anonymous_form(request, settings, "sign_in.html", email="", errors={})


@router.post("/sign-in", dependencies=[Depends(open_sign_in)])
async def sign_in(
    request: Request,
    settings: SettingsDep,
    sessions: Sessions,
    users: Users,
    throttle: Throttle,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    check_form_token(request, settings, csrf_token)
    note: AuditNote = request.state.audit
    address = request.client.host if request.client else "unknown"
    try:
        user = await auth.authenticate(
            users, throttle, note, email=email.strip(), password=password, address=address
        )
    except HTTPException as exc:
        message = "Wrong email or password." if exc.status_code == 401 else f"{exc.detail}."
        return anonymous_form(
            request, settings, "sign_in.html", status=exc.status_code, email=email, errors={"email": message}
        )
    return await start_session(request, settings, sessions, user)


@router.get("/register")
async def register_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return anonymous_form(request, settings, "register.html", values={}, errors={})


@router.post("/register")
async def register(
    request: Request,
    settings: SettingsDep,
    sessions: Sessions,
    users: Users,
    full_name: Annotated[str, Form(max_length=400)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    check_form_token(request, settings, csrf_token)
    values = {"full_name": full_name, "email": email}

    def again(errors: dict[str, str], status: int = 422) -> HTMLResponse:
        return anonymous_form(request, settings, "register.html", status=status, values=values, errors=errors)

    try:
        body = RegisterIn(email=email, password=password, full_name=full_name)
        user = await auth.create_patient(body, users)
    except ValidationError as exc:
        return again(field_messages(exc))
    except FieldInvalid as exc:
        return again({exc.field: f"{exc.message}."})
    except HTTPException as exc:
        return again({"email": "An account with this email already exists."}, exc.status_code)
    return await start_session(request, settings, sessions, user)


@router.post("/sign-out", dependencies=[audited_page("auth.sign_out")])
async def sign_out(request: Request, web: Web, settings: SettingsDep, sessions: Sessions) -> Response:
    token = request.cookies.get(cookie_name(settings))
    if token is not None:
        await sessions.close(token=token)
    response = redirect(request, "/sign-in")
    drop_cookie(response, settings, cookie_name(settings))
    return response


@router.get("/")
async def home(request: Request, web: Web) -> Response:
    if web.user.role == "patient":
        return redirect(request, "/orders")
    return render(request, "home.html", web)


# --- the patient's orders ---------------------------------------------------------------------------


@router.get("/orders", dependencies=[audited_page("order.list")])
async def order_list(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    found = await orders.list_orders(web.user, rpc, c.Page(limit=50, offset=0), None)
    return render(request, "orders.html", web, orders=found.items)


@router.get("/orders/{order_id}", dependencies=[audited_page("order.read", "order_id")])
async def order_page(request: Request, order_id: ResourceId, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    order = await orders.get_order(order_id, web.user, rpc)
    context = order_context(order, await medication_names(rpc, order))
    return render(request, "order.html", web, live=order.status not in ENDED, **context)


def order_context(order: OrderOut, names: dict[str, str]) -> dict[str, Any]:
    return {"order": order, "names": names, "cancellable": order.status in CANCELLABLE}


async def medication_names(rpc: Rpc, order: OrderOut) -> dict[str, str]:
    """Each line's medication as the patient knows it ("Ibuprofen 400 mg"); its id if the catalogue
    no longer lists it."""
    ids = tuple(dict.fromkeys(line.medication_id for line in order.lines))
    try:
        found = await rpc.ask(c.ListMedications(medication_ids=ids), list[c.MedicationView])
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
            csrf_token=web.session.csrf_token, status_words=STATUS_WORDS, **order_context(order, names)
        )
        return ServerSentEvent(event="order", raw_data=" ".join(html.split()))

    # At once: the page was rendered a moment ago (or before a reconnect), the order may have moved since.
    yield panel()
    sent = order.model_dump_json()
    loop = asyncio.get_running_loop()
    until = loop.time() + LIVE_MAX_SECONDS
    quiet = 0
    while order.status not in ENDED and loop.time() < until:
        await asyncio.sleep(LIVE_POLL_SECONDS)
        if await request.is_disconnected():
            return
        if await sessions.find(token=token, now=utc_now()) is None:
            break
        try:
            order = await orders.get_order(order_id, web.user, rpc)
        except ServiceUnavailable:
            continue
        if (seen := order.model_dump_json()) != sent:
            sent, quiet = seen, 0
            yield panel()
        elif (quiet := quiet + 1) % KEEP_ALIVE_POLLS == 0:
            # A comment line: a proxy in between sees traffic and keeps the connection open.
            yield ServerSentEvent(comment="still watching")
    # Ended (or watched long enough): the page closes its connection instead of reconnecting.
    yield ServerSentEvent(event="end", raw_data="")


@router.post("/orders/{order_id}/cancel", dependencies=[audited_page("order.cancel", "order_id")])
async def cancel(request: Request, order_id: ResourceId, web: PatientPage, rpc: Rpc) -> Response:
    await orders.cancel_order(order_id, web.user, rpc)
    return redirect(request, f"/orders/{order_id}")


# --- cards ------------------------------------------------------------------------------------------


@router.get("/cards", dependencies=[audited_page("payment_method.list")])
async def cards_page(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    return await _cards(request, web, rpc)


async def _cards(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    return await with_cards(request, web, rpc, "cards.html", status, errors, values or {})


async def with_cards(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    template: str,
    status: int,
    errors: dict[str, str] | None,
    values: dict[str, Any],
) -> HTMLResponse:
    """A page showing the patient's cards (brand and last four only), with a form's errors and values."""
    found = await payments.list_payment_methods(web.user, rpc)
    return render(
        request, template, web, status=status, cards=found.items, errors=errors or {}, values=values
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
        return await _cards(request, web, rpc, 422, errors, values)
    except CommandRefused as exc:
        if exc.code != "invalid":
            raise
        field = CARD_FIELDS.get(exc.field or "", "card_number")
        return await _cards(request, web, rpc, 422, {field: f"{exc.detail}."}, values)
    return redirect(request, "/cards")


# --- an over-the-counter order -------------------------------------------------------------------------


@router.get("/prescriptions/new", dependencies=[audited_page("payment_method.list")])
async def new_order_page(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    return await _new_order(request, web, rpc)


async def _new_order(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    fresh = {"lines": [], "form_id": str(uuid4())}
    return await with_cards(request, web, rpc, "new_order.html", status, errors, values or fresh)


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


class OrderForm:
    """The new-order form as sent: lines (medication and quantity, repeated), where, and the card."""

    def __init__(self, form: Any) -> None:
        self.medication_ids = [str(v) for v in form.getlist("medication_id")][:50]
        self.quantities = [str(v) for v in form.getlist("quantity")][:50]
        self.latitude = str(form.get("latitude") or "")
        self.longitude = str(form.get("longitude") or "")
        self.payment_method_id = str(form.get("payment_method_id") or "")
        self.form_id = str(form.get("form_id") or "")[:64]

    def body(self) -> PrescriptionIn:
        """The upload the API would take: every field at fault found at once (ValidationError)."""
        return PrescriptionIn.model_validate(
            {
                "lines": [
                    {"medication_id": m, "quantity": int(q) if q.strip().isdigit() else q}
                    for m, q in zip(self.medication_ids, self.quantities, strict=False)
                ],
                "delivery_location": {"latitude": number(self.latitude), "longitude": number(self.longitude)},
                "payment_method_id": self.payment_method_id,
            }
        )

    def errors(self, exc: ValidationError) -> dict[str, str]:
        """Each message under the id of the input it is about: `quantity-<medication id>` for a line."""
        found: dict[str, str] = {}
        for error in exc.errors():
            loc, message = error["loc"], str(error["msg"]).removeprefix("Value error, ")
            if loc[:1] == ("lines",) and len(loc) >= 3 and isinstance(loc[1], int):
                field = f"quantity-{self.medication_ids[loc[1]]}"
            elif loc[:1] == ("lines",):
                field, message = "lines", "add at least one medication"
            else:
                field = str(loc[-1])
            found.setdefault(field, message)
        return found


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
}


def labelled(errors: dict[str, str]) -> dict[str, str]:
    """The errors under the labels the patient sees, for a list of them (the price's panel)."""
    labels = {
        "lines": "Medications",
        "latitude": "Latitude",
        "longitude": "Longitude",
        "payment_method_id": "Card",
    }
    return {labels.get(field, "Quantity"): message for field, message in errors.items()}


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

    async def again(errors: dict[str, str], form_id: str = form.form_id) -> HTMLResponse:
        values = {
            "lines": await _named_lines(web, rpc, form),
            "latitude": form.latitude,
            "longitude": form.longitude,
            "payment_method_id": form.payment_method_id,
            "form_id": form_id,
        }
        return await _new_order(request, web, rpc, 422, errors, values)

    try:
        body = form.body()
        # One order per form shown: a double click or a form sent again makes no second order.
        request_id = keyed_request_id(web.user.id, f"web-order:{form.form_id}") if form.form_id else None
        view, _ = await upload_typed(body, web.user.id, rpc, request_id)
    except ValidationError as exc:
        return await again(form.errors(exc))
    except FieldInvalid as exc:
        field = "payment_method_id" if exc.field == "payment_method_id" else "lines"
        return await again({field: f"{exc.message}."})
    except CommandRefused as exc:
        if exc.code != "invalid":
            raise
        # This form's order was placed already, with other lines (Back, an edit, sent again): the
        # form gets a new id, so what is sent now is a new order.
        return await again({"lines": f"{exc.detail}: check the lines and send again."}, str(uuid4()))
    request.state.audit.subject_id = view.id
    return redirect(request, f"/orders/{view.order_id}")


async def _named_lines(web: SignedIn, rpc: Rpc, form: OrderForm) -> list[dict[str, Any]]:
    """The form's lines with their medications, to show the form again: at once, unknown ones left out."""
    found = await asyncio.gather(
        *(catalogue.get_medication(m, web.user, rpc) for m in form.medication_ids), return_exceptions=True
    )
    return [
        {"medication": medication, "quantity": quantity}
        for medication, quantity in zip(found, form.quantities, strict=False)
        if not isinstance(medication, BaseException)
    ]
