"""FastAPI dependencies as Annotated aliases: what a route needs, named once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import OAuth2PasswordBearer

from contracts.commands import Page
from service_runtime.messaging import RpcClient
from user_service.domain import DISPATCHERS, STAFF, Role, User
from user_service.security import read_access_token
from user_service.settings import Settings
from user_service.store import UserStore
from user_service.throttle import SignInThrottle

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_rpc(request: Request) -> RpcClient:
    rpc: RpcClient = request.app.state.rpc
    return rpc


def get_users(request: Request) -> UserStore:
    users: UserStore = request.app.state.users
    return users


def get_throttle(request: Request) -> SignInThrottle:
    throttle: SignInThrottle = request.app.state.throttle
    return throttle


SettingsDep = Annotated[Settings, Depends(get_settings)]
Throttle = Annotated[SignInThrottle, Depends(get_throttle)]
Rpc = Annotated[RpcClient, Depends(get_rpc)]
Users = Annotated[UserStore, Depends(get_users)]


async def current_user(
    token: Annotated[str | None, Depends(_bearer)], settings: SettingsDep, users: Users
) -> User:
    if token is None:
        raise HTTPException(401, "sign in first: send a bearer access token", headers=_CHALLENGE)
    claims = read_access_token(settings, token)
    # The role is read from the store, not the token: a revoked role takes effect at once.
    user = await users.by_id(user_id=claims["sub"]) if claims else None
    if user is None:
        raise HTTPException(401, "the access token is invalid or expired", headers=_CHALLENGE)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def role_in(*roles: Role) -> Callable[[User], User]:
    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
        return user

    return check


Staff = Annotated[User, Depends(role_in(*sorted(STAFF)))]
Dispatcher = Annotated[User, Depends(role_in(*sorted(DISPATCHERS)))]
Admin = Annotated[User, Depends(role_in("admin"))]
Patient = Annotated[User, Depends(role_in("patient"))]


def paging(
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=100_000)] = 0
) -> Page:
    return Page(limit=limit, offset=offset)


Paging = Annotated[Page, Depends(paging)]
UserFilter = Annotated[str | None, Query(description="staff only: whose records to list")]
