"""Registration, sign-in and the signed-in user."""

from __future__ import annotations

from typing import Annotated
from uuid import uuid4

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm

from service_runtime.clock import utc_now
from user_service.deps import CurrentUser, SettingsDep, Throttle, Users
from user_service.domain import User, WeakPassword, check_password_policy
from user_service.problems import field_error
from user_service.schemas import RegisterIn, TokenOut, UserOut
from user_service.security import hash_password, issue_access_token, needs_rehash, verify_password
from user_service.store import EmailTaken

router = APIRouter(tags=["auth"])


@router.post("/auth/register", status_code=201, response_model=UserOut)
async def register(body: RegisterIn, users: Users) -> UserOut:
    """Create a patient account. Staff roles are granted by an admin afterwards."""
    email = body.email.casefold()
    try:
        check_password_policy(body.password, email)
    except WeakPassword as exc:
        return field_error("password", str(exc))  # type: ignore[return-value]
    user = User(
        id=str(uuid4()),
        email=email,
        full_name=body.full_name,
        role="patient",
        password_hash=hash_password(body.password),
        created_at=utc_now(),
    )
    try:
        await users.add(user=user)
    except EmailTaken as exc:
        raise HTTPException(409, "an account with this email already exists") from exc
    return UserOut.of(user)


@router.post("/auth/token", response_model=TokenOut)
async def sign_in(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    users: Users,
    settings: SettingsDep,
    throttle: Throttle,
) -> TokenOut:
    """OAuth2 password flow: `username` is the email. Answers a bearer access token.

    Too many failed sign-ins for the account, or from the client's address, answer 429 with
    Retry-After, whatever the password, until the window has passed.
    """
    address = request.client.host if request.client else "unknown"
    if (wait := await throttle.retry_after(form.username, address)) is not None:
        raise HTTPException(
            429, "too many failed sign-ins: try again later", headers={"Retry-After": str(wait)}
        )
    user = await users.by_email(email=form.username)
    if not verify_password(user.password_hash if user else None, form.password) or user is None:
        await throttle.failed(form.username, address)
        raise HTTPException(401, "wrong email or password", headers={"WWW-Authenticate": "Bearer"})
    await throttle.succeeded(form.username)
    if needs_rehash(user.password_hash):
        # The only moment the password is at hand: bring its hash up to today's parameters.
        await users.set_password_hash(user_id=user.id, password_hash=hash_password(form.password))
    token, expires_in = issue_access_token(settings, user_id=user.id, role=user.role)
    return TokenOut(access_token=token, expires_in=expires_in)


@router.get("/users/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)
