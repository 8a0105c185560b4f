"""Administering users: list them and grant roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from user_service.audit import Audit, audited
from user_service.deps import Admin, Paging, ResourceId, Users
from user_service.domain import Role
from user_service.schemas import Page, RoleIn, UserOut, UserSearchIn

router = APIRouter(tags=["users"])


@router.get("/users", response_model=Page[UserOut], dependencies=[audited("user.list")])
async def list_users(
    admin: Admin,
    users: Users,
    page: Paging,
    role: Annotated[Role | None, Query(description="only the users of this role")] = None,
) -> Page[UserOut]:
    """Every user (or every one of a role), oldest first."""
    found = await users.list(limit=page.limit, offset=page.offset, role=role)
    return Page(items=[UserOut.of(u) for u in found], limit=page.limit, offset=page.offset)


@router.post("/users/search", response_model=Page[UserOut], dependencies=[audited("user.search")])
async def search_users(body: UserSearchIn, admin: Admin, users: Users) -> Page[UserOut]:
    """The user with this email (none or one: an email names one account). Emails are kept sealed and
    found by a keyed hash of the whole address, so only an exact email is found."""
    found = await users.by_email(email=body.email)
    return Page(items=[] if found is None else [UserOut.of(found)], limit=1, offset=0)


@router.patch(
    "/users/{user_id}", response_model=UserOut, dependencies=[audited("user.role_change", subject="user_id")]
)
async def grant_role(user_id: ResourceId, body: RoleIn, admin: Admin, users: Users, audit: Audit) -> UserOut:
    """Give a user the role patient, pharmacist, courier or admin.

    Not one's own: an admin cannot lock the platform out of its last admin, nor raise themselves.
    """
    if user_id == admin.id:
        raise HTTPException(403, "an admin cannot change their own role; ask another admin")
    before = await users.by_id(user_id=user_id)
    user = await users.set_role(user_id=user_id, role=body.role)
    if before is None or user is None:
        raise HTTPException(404, f"user {user_id} not found")
    audit.details = {"old_role": before.role, "new_role": user.role}
    return UserOut.of(user)
