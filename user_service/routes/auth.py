"""Registration, sign-in, refresh, sign-out and the signed-in user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import uuid4

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from service_runtime.clock import utc_now
from user_service.audit import Audit, AuditNote, audited, open_sign_in
from user_service.deps import AccessClaims, CurrentUser, SettingsDep, Throttle, Tokens, Users
from user_service.domain import User, WeakPassword, check_password_policy
from user_service.problems import FieldInvalid
from user_service.schemas import RefreshTokenIn, RegisterIn, TokenOut, UserOut
from user_service.security import (
    hash_password,
    issue_access_token,
    needs_rehash,
    new_refresh_token,
    refresh_token_hash,
    verify_password,
)
from user_service.settings import Settings
from user_service.store import EmailTaken, UserStore
from user_service.throttle import SignInThrottle
from user_service.token_store import RefreshRefused, RefreshReused, RefreshToken, TokenStore

router = APIRouter(tags=["auth"])
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@router.post("/auth/register", status_code=201, response_model=UserOut)
async def register(body: RegisterIn, users: Users) -> UserOut:
    """Create a patient account. Staff roles are granted by an admin afterwards."""
    return UserOut.of(await create_patient(body, users))


async def create_patient(body: RegisterIn, users: UserStore) -> User:
    """A new patient account: FieldInvalid for a weak password, 409 for an email already taken."""
    email = body.email.casefold()
    try:
        check_password_policy(body.password, email)
    except WeakPassword as exc:
        raise FieldInvalid("password", str(exc)) from exc
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
    return user


@router.post("/auth/token", response_model=TokenOut, dependencies=[Depends(open_sign_in)])
async def sign_in(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    users: Users,
    settings: SettingsDep,
    throttle: Throttle,
    tokens: Tokens,
    audit: Audit,
) -> TokenOut:
    """OAuth2 password flow: `username` is the email. Answers a bearer access token and a refresh token.

    Too many failed sign-ins for the account, or from the client's address, answer 429 with
    Retry-After, whatever the password, until the window has passed.
    """
    address = client_address(request)
    user = await authenticate(
        users, throttle, audit, email=form.username, password=form.password, address=address
    )
    return await _issue(settings, tokens, user=user, family_id=str(uuid4()), new_family=True)


def client_address(request: Request) -> str:
    """Whom the sign-in throttle counts by address: uvicorn's client (see FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


async def authenticate(
    users: UserStore, throttle: SignInThrottle, audit: AuditNote, *, email: str, password: str, address: str
) -> User:
    """The account whose password this is; 429 with Retry-After while sign-ins are held back for the
    account or the address, 401 otherwise. The API's sign-in and the web page's share it."""
    user = await users.by_email(email=email)
    audit.subject_id = user.id if user else None  # the account tried, even when held back
    if (wait := await throttle.retry_after(email, address)) is not None:
        raise HTTPException(
            429, "too many failed sign-ins: try again later", headers={"Retry-After": str(wait)}
        )
    if not verify_password(user.password_hash if user else None, password) or user is None:
        await throttle.failed(email, address)
        raise HTTPException(401, "wrong email or password", headers={"WWW-Authenticate": "Bearer"})
    await throttle.succeeded(email)
    if needs_rehash(user.password_hash):
        # The only moment the password is at hand: bring its hash up to today's parameters.
        await users.set_password_hash(user_id=user.id, password_hash=hash_password(password))
    return user


@router.post("/auth/refresh", response_model=TokenOut)
async def refresh(body: RefreshTokenIn, users: Users, settings: SettingsDep, tokens: Tokens) -> TokenOut:
    """Exchange a refresh token for a new access token and a new refresh token; it is used up.

    A refresh token presented again after that was copied: every token of its sign-in is revoked (401).
    """
    try:
        used = await tokens.claim(token_hash=refresh_token_hash(body.refresh_token), now=utc_now())
        # The role comes from the store, and a deleted account gets nothing.
        user = await users.by_id(user_id=used.user_id)
        if user is None:
            raise HTTPException(401, "the account no longer exists", headers=_CHALLENGE)
        return await _issue(settings, tokens, user=user, family_id=used.family_id)
    except RefreshReused as exc:
        raise HTTPException(
            401,
            "this refresh token was used before: its sign-in is revoked; sign in again",
            headers=_CHALLENGE,
        ) from exc
    except RefreshRefused as exc:
        raise HTTPException(
            401, "the refresh token is invalid, expired or revoked; sign in again", headers=_CHALLENGE
        ) from exc


@router.post(
    "/auth/logout", status_code=204, response_class=Response, dependencies=[audited("auth.sign_out")]
)
async def sign_out(body: RefreshTokenIn, user: CurrentUser, claims: AccessClaims, tokens: Tokens) -> Response:
    """Sign out: this access token and every token of this refresh token's sign-in stop working.

    Another user's refresh token is left alone and answered the same: the answer reveals nothing.
    """
    await tokens.revoke_access(jti=claims["jti"], expires_at=datetime.fromtimestamp(claims["exp"], UTC))
    family_id = await tokens.family_of(token_hash=refresh_token_hash(body.refresh_token), user_id=user.id)
    if family_id is not None:
        await tokens.revoke_family(family_id=family_id, now=utc_now())
    return Response(status_code=204)


async def _issue(
    settings: Settings, tokens: TokenStore, *, user: User, family_id: str, new_family: bool = False
) -> TokenOut:
    """A new access token and a new refresh token of the family."""
    now = utc_now()
    access = issue_access_token(settings, user_id=user.id, role=user.role)
    refresh_token = new_refresh_token()
    await tokens.add(
        token=RefreshToken(
            token_hash=refresh_token_hash(refresh_token),
            user_id=user.id,
            family_id=family_id,
            issued_at=now,
            expires_at=now + timedelta(days=settings.refresh_token_days),
            access_jti=access.jti,
            access_expires_at=access.expires_at,
        ),
        new_family=new_family,
    )
    return TokenOut(access_token=access.token, expires_in=access.expires_in, refresh_token=refresh_token)


@router.get("/users/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)
