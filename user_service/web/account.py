"""Signing in, registering and signing out on the web UI, and its start page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from user_service.audit import AuditNote, open_sign_in
from user_service.deps import SettingsDep, Throttle, Users
from user_service.problems import FieldInvalid
from user_service.routes import auth
from user_service.schemas import (
    RegisterIn,
)
from user_service.web.common import (
    PageRoute,
    Sessions,
    Web,
    anonymous_form,
    audited_page,
    check_form_token,
    cookie_name,
    drop_cookie,
    field_messages,
    redirect,
    render,
    start_session,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


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
    address = auth.client_address(request)
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
    if web.user.role == "pharmacist":
        return redirect(request, "/verifications")
    if web.user.role == "courier":
        return redirect(request, "/courier")
    if web.user.role == "admin":
        return redirect(request, "/admin")
    return render(request, "home.html", web)
