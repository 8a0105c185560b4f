"""The web UI's plumbing, shared by its pages: sessions and CSRF, rendering, and the route class that
says every refusal in a page.

A page handler signs the caller in from their session cookie, then calls the API's own route
function (`orders.get_order`, `upload_typed`, ...) with that user, so every role, ownership and
domain rule is the API's: there is no second copy of any. What a route function raises (a refusal,
a forbidden role, a field at fault) becomes a page (`PageRoute`), or a message beside the field.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service.audit import open_note
from user_service.deps import SettingsDep, Users, role_in
from user_service.domain import STAFF, Forbidden, Role, User
from user_service.problems import RPC_STATUS, FieldInvalid
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


def role_page(*roles: Role) -> Any:
    """A page's dependency: the signed-in user, refused (403) unless of one of these roles. The API's
    own check (`role_in`), so a page refuses as its API route does: a route function called directly
    skips the route's own dependencies."""
    check = role_in(*roles)

    async def of_role(web: Web) -> SignedIn:
        await check(web.user)
        return web

    return Depends(of_role)


# As the API's routes ask: `Patient`, `role_in("courier")` (a courier's own deliveries), `Staff`, `Admin`.
PatientPage = Annotated[SignedIn, role_page("patient")]
CourierPage = Annotated[SignedIn, role_page("courier")]
StaffPage = Annotated[SignedIn, role_page(*sorted(STAFF))]
AdminPage = Annotated[SignedIn, role_page("admin")]


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
