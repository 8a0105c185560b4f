"""FastAPI dependencies as Annotated aliases: what a route needs, named once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer

from contracts.commands import Page
from service_runtime.messaging import RpcClient
from user_service.domain import DISPATCHERS, STAFF, Role, User
from user_service.security import read_access_token
from user_service.settings import Settings
from user_service.store import UserStore
from user_service.throttle import SignInThrottle
from user_service.token_store import TokenStore

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# Every dependency is `async def`, though none but the store's awaits anything: FastAPI runs a plain
# `def` one in a worker thread, a thread hop per dependency per request.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_rpc(request: Request) -> RpcClient:
    rpc: RpcClient = request.app.state.rpc
    return rpc


async def get_users(request: Request) -> UserStore:
    users: UserStore = request.app.state.users
    return users


async def get_throttle(request: Request) -> SignInThrottle:
    throttle: SignInThrottle = request.app.state.throttle
    return throttle


async def get_tokens(request: Request) -> TokenStore:
    tokens: TokenStore = request.app.state.tokens
    return tokens


SettingsDep = Annotated[Settings, Depends(get_settings)]
Throttle = Annotated[SignInThrottle, Depends(get_throttle)]
Rpc = Annotated[RpcClient, Depends(get_rpc)]
Users = Annotated[UserStore, Depends(get_users)]
Tokens = Annotated[TokenStore, Depends(get_tokens)]


async def access_claims(
    token: Annotated[str | None, Depends(_bearer)], settings: SettingsDep, tokens: Tokens
) -> dict[str, Any]:
    """The claims of a valid access token that was not revoked by a sign-out."""
    if token is None:
        raise HTTPException(401, "sign in first: send a bearer access token", headers=_CHALLENGE)
    claims = read_access_token(settings, token)
    if claims is None or await tokens.access_revoked(jti=claims["jti"]):
        raise HTTPException(401, "the access token is invalid or expired", headers=_CHALLENGE)
    return claims


AccessClaims = Annotated[dict[str, Any], Depends(access_claims)]


async def current_user(claims: AccessClaims, users: Users) -> User:
    # The role is read from the store, not the token: a revoked role takes effect at once.
    user = await users.by_id(user_id=claims["sub"])
    if user is None:
        raise HTTPException(401, "the access token is invalid or expired", headers=_CHALLENGE)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def role_in(*roles: Role) -> Callable[[User], Awaitable[User]]:
    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
        return user

    return check


Staff = Annotated[User, Depends(role_in(*sorted(STAFF)))]
Dispatcher = Annotated[User, Depends(role_in(*sorted(DISPATCHERS)))]
Admin = Annotated[User, Depends(role_in("admin"))]
Patient = Annotated[User, Depends(role_in("patient"))]


async def paging(
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=100_000)] = 0
) -> Page:
    return Page(limit=limit, offset=offset)


Paging = Annotated[Page, Depends(paging)]
# Ids the platform makes are UUIDs: a longer one is refused (422) before it reaches a store or an RPC.
MAX_ID_LENGTH = 64
ResourceId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]
UserFilter = Annotated[
    str | None, Query(max_length=MAX_ID_LENGTH, description="staff only: whose records to list")
]
# The IETF draft "The Idempotency-Key HTTP Header Field": the client's key for one request it may retry.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[ -~]+$",
        description="a key of your choice (1 to 255 printable ASCII characters) for this one request: "
        "sent again with the same key, the request is not carried out twice but answered as the first "
        "time; the same key with a different body is refused (422)",
    ),
]
