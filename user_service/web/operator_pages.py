"""The operator's (role admin) screens on the web UI: the start page with its order search, users and
their roles, each service's health, and the audit log. Every page calls the API's own route function
(`users.grant_role`, `staff.add_staff`, `health.platform_health`, `audit.read_audit_log`, ...); the
saga timeline and the dead letters are in `operator_operations.py`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from contracts import commands as c
from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service.audit import AuditLogDep
from user_service.deps import MAX_ID_LENGTH, ResourceId, Rpc, Users
from user_service.domain import ROLES, Role
from user_service.routes import audit, catalogue, health, staff, users
from user_service.schemas import Page, RoleIn, StaffMemberOut, UserOut, UserSearchIn
from user_service.web.common import (
    AdminPage,
    PageRoute,
    SignedIn,
    audited_page,
    field_messages,
    redirect,
    render,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PAGE_SIZE = 50
Text = Annotated[str, Query(max_length=200)]
Offset = Annotated[int, Query(ge=0, le=100_000)]


# --- the start page: find an order's saga ----------------------------------------------------------


@router.get("/admin", dependencies=[audited_page("admin.home")])
async def admin_home(request: Request, web: AdminPage) -> HTMLResponse:
    return render(request, "operator_home.html", web, order_id="", errors={})


@router.get("/admin/orders", dependencies=[audited_page("admin.home")])
async def find_order(
    request: Request, web: AdminPage, order_id: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """The order-id search box: to the order's timeline, or back with the error beside the box."""
    wanted = order_id.strip()
    if not wanted or len(wanted) > MAX_ID_LENGTH:
        error = (
            "Type an order's id." if not wanted else f"An order id has at most {MAX_ID_LENGTH} characters."
        )
        return render(
            request, "operator_home.html", web, status=422, order_id=order_id, errors={"order_id": error}
        )
    return redirect(request, f"/admin/orders/{quote(wanted, safe='')}/timeline")


# --- users and roles --------------------------------------------------------------------------------


async def users_page(
    request: Request,
    web: SignedIn,
    users_store: Users,
    rpc: Rpc,
    *,
    role: Role | None,
    offset: int,
    status: int = 200,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    found_by_email: list[UserOut] | None = None,
    email: str = "",
) -> HTMLResponse:
    if found_by_email is None:
        found = await users.list_users(web.user, users_store, c.Page(limit=PAGE_SIZE, offset=offset), role)
    else:
        found = Page(items=found_by_email, limit=PAGE_SIZE, offset=0)
    try:
        pharmacies = (await catalogue.list_pharmacies(web.user, rpc, c.Page(limit=200, offset=0))).items
    except ServiceUnavailable:
        pharmacies = []  # the staff forms wait for inventory_service; the roles do not
    return render(
        request,
        "operator_users.html",
        web,
        status=status,
        users=found.items,
        role=role,
        roles=ROLES,
        offset=offset,
        page_size=PAGE_SIZE,
        pharmacies=pharmacies,
        errors=errors or {},
        notice=notice,
        searched=found_by_email is not None,
        email=email,
    )


@router.get("/admin/users", dependencies=[audited_page("user.list")])
async def users_list(
    request: Request,
    web: AdminPage,
    users_store: Users,
    rpc: Rpc,
    role: Annotated[str, Query(max_length=20)] = "",
    offset: Offset = 0,
    changed: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    chosen: Role | None = next((r for r in ROLES if r == role), None)
    notices = {"role": "The role was changed.", "staff": "The pharmacist was added to the pharmacy's staff."}
    return await users_page(
        request, web, users_store, rpc, role=chosen, offset=offset, notice=notices.get(changed)
    )


@router.post("/admin/users/find", dependencies=[audited_page("user.search")])
async def find_user(
    request: Request,
    web: AdminPage,
    users_store: Users,
    rpc: Rpc,
    email: Annotated[str, Form(max_length=320)] = "",
) -> HTMLResponse:
    """A user by their email. A POST that changes nothing, answered with the page itself: redirecting
    to a GET would put the email in a URL."""
    try:
        body = UserSearchIn(email=email)
    except ValidationError:
        return await users_page(
            request,
            web,
            users_store,
            rpc,
            role=None,
            offset=0,
            status=422,
            email=email,
            errors={"email": "Type the user's email."},
            found_by_email=[],
        )
    found = await users.search_users(body, web.user, users_store)
    errors = {} if found.items else {"email": "No user has this email."}
    return await users_page(
        request,
        web,
        users_store,
        rpc,
        role=None,
        offset=0,
        email=email,
        errors=errors,
        found_by_email=found.items,
    )


# The view a user's form was sent from (hidden fields of the form): the page of users by role and
# offset, or the user found by email (in the form's body, never in a URL).
ViewRole = Annotated[str, Form(max_length=20)]
ViewOffset = Annotated[int, Form(ge=0, le=100_000)]
ViewEmail = Annotated[str, Form(max_length=320)]


async def same_view(
    request: Request,
    web: SignedIn,
    users_store: Users,
    rpc: Rpc,
    errors: dict[str, str],
    *,
    view_role: str,
    view_offset: int,
    view_email: str,
) -> HTMLResponse:
    """The view the form came from again, with its error beside the user it is about (the first page
    of every user may not show them)."""
    if view_email:
        try:
            search = UserSearchIn(email=view_email)
        except ValidationError:
            search = None
        if search is not None:
            found = await users.search_users(search, web.user, users_store)
            return await users_page(
                request,
                web,
                users_store,
                rpc,
                role=None,
                offset=0,
                status=422,
                errors=errors,
                found_by_email=found.items,
                email=view_email,
            )
    chosen: Role | None = next((r for r in ROLES if r == view_role), None)
    return await users_page(
        request, web, users_store, rpc, role=chosen, offset=view_offset, status=422, errors=errors
    )


@router.post("/admin/users/{user_id}/role", dependencies=[audited_page("user.role_change", "user_id")])
async def change_role(
    request: Request,
    user_id: ResourceId,
    web: AdminPage,
    users_store: Users,
    rpc: Rpc,
    role: Annotated[str, Form(max_length=20)] = "",
    view_role: ViewRole = "",
    view_offset: ViewOffset = 0,
    view_email: ViewEmail = "",
) -> Response:
    try:
        body = RoleIn(role=role)  # type: ignore[arg-type]  # validated here, as the API validates it
    except ValidationError as exc:
        errors = {f"role-{user_id}": field_messages(exc).get("role", "Choose a role.")}
        return await same_view(
            request,
            web,
            users_store,
            rpc,
            errors,
            view_role=view_role,
            view_offset=view_offset,
            view_email=view_email,
        )
    await users.grant_role(user_id, body, web.user, users_store, request.state.audit)
    return redirect(request, "/admin/users?" + urlencode({"changed": "role"}))


@router.post("/admin/users/{user_id}/staff", dependencies=[audited_page("pharmacy.staff_add", "pharmacy_id")])
async def add_to_staff(
    request: Request,
    user_id: ResourceId,
    web: AdminPage,
    users_store: Users,
    rpc: Rpc,
    pharmacy_id: Annotated[str, Form(max_length=MAX_ID_LENGTH)] = "",
    view_role: ViewRole = "",
    view_offset: ViewOffset = 0,
    view_email: ViewEmail = "",
) -> Response:
    field = f"pharmacy-{user_id}"

    async def again(message: str) -> HTMLResponse:
        return await same_view(
            request,
            web,
            users_store,
            rpc,
            {field: message},
            view_role=view_role,
            view_offset=view_offset,
            view_email=view_email,
        )

    if not pharmacy_id:
        return await again("Choose a pharmacy.")
    # The audit entry names the pharmacy chosen (a form field, not a path parameter).
    request.state.audit.subject_id = pharmacy_id
    try:
        added = await staff.add_staff(pharmacy_id, user_id, web.user, users_store, rpc, request.state.audit)
    except CommandRefused as exc:
        if exc.code not in ("not_found", "invalid"):
            raise
        return await again(f"{exc.detail}.")
    if not isinstance(added, StaffMemberOut):
        # The API's field error (only a pharmacist joins a staff): said beside the field.
        problem = json.loads(bytes(added.body))
        return await again(f"{problem['errors'][0]['message'].capitalize()}.")
    return redirect(request, "/admin/users?" + urlencode({"role": "pharmacist", "changed": "staff"}))


# --- each service's health ----------------------------------------------------------------------------

STATE_WORDS = {"up": "Up", "not ready": "Not ready", "down": "Down"}


@router.get("/admin/health", dependencies=[audited_page("operations.health")])
async def health_page(request: Request, web: AdminPage, rpc: Rpc) -> HTMLResponse:
    report = await health.platform_health(request, rpc)
    gateway = {name: state for name, state in report["checks"].items() if name not in report["services"]}
    return render(
        request,
        "operator_health.html",
        web,
        report=report,
        gateway=gateway,
        state_words=STATE_WORDS,
    )


# --- the audit log --------------------------------------------------------------------------------


def _moment(value: str, name: str, errors: dict[str, str]) -> datetime | None:
    """A time typed in the form (UTC, as 2026-11-27T09:30 or with seconds), or None when blank."""
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        errors[name] = "Give a date and time, as 2026-11-27T09:30 (UTC)."
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/admin/audit", dependencies=[audited_page("audit.read")])
async def audit_page(
    request: Request,
    web: AdminPage,
    audit_log: AuditLogDep,
    actor_id: Text = "",
    action: Text = "",
    subject_id: Text = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    offset: Offset = 0,
) -> HTMLResponse:
    values = {
        "actor_id": actor_id,
        "action": action,
        "subject_id": subject_id,
        "since": since,
        "until": until,
    }
    errors: dict[str, str] = {}
    start, end = _moment(since, "since", errors), _moment(until, "until", errors)
    entries: list[Any] = []
    if not errors:
        found = await audit.read_audit_log(
            web.user,
            audit_log,
            c.Page(limit=PAGE_SIZE, offset=offset),
            actor_id=actor_id.strip() or None,
            action=action.strip() or None,
            subject_id=subject_id.strip() or None,
            since=start,
            until=end,
        )
        entries = found.items
    filters = {k: v for k, v in values.items() if v}
    return render(
        request,
        "operator_audit.html",
        web,
        status=422 if errors else 200,
        entries=entries,
        values=values,
        errors=errors,
        offset=offset,
        page_size=PAGE_SIZE,
        newer=urlencode({**filters, "offset": max(0, offset - PAGE_SIZE)}),
        older=urlencode({**filters, "offset": offset + PAGE_SIZE}),
    )
