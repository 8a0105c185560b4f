"""A pharmacy's staff: the pharmacists who may change its stock. Admins add and remove them."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import JSONResponse

from contracts import commands as c
from user_service.audit import Audit, audited
from user_service.deps import Admin, Paging, ResourceId, Rpc, Staff, Users
from user_service.domain import Forbidden
from user_service.problems import field_error
from user_service.schemas import Page, StaffMemberOut

router = APIRouter(tags=["pharmacies and medications"])


@router.put(
    "/pharmacies/{pharmacy_id}/staff/{user_id}",
    response_model=StaffMemberOut,
    dependencies=[audited("pharmacy.staff_add", subject="pharmacy_id")],
)
async def add_staff(
    pharmacy_id: ResourceId, user_id: ResourceId, admin: Admin, users: Users, rpc: Rpc, audit: Audit
) -> StaffMemberOut | JSONResponse:
    """Put a pharmacist on the pharmacy's staff: from then on they may change its stock.

    Only a user whose role is pharmacist joins a staff; adding one already on it changes nothing.
    """
    audit.details = {"user_id": user_id}
    user = await users.by_id(user_id=user_id)
    if user is None:
        raise HTTPException(404, f"user {user_id} not found")
    if user.role != "pharmacist":
        return field_error(
            "user_id", f"only a pharmacist joins a pharmacy's staff; this user is a {user.role}"
        )
    command = c.AddPharmacyStaff(pharmacy_id=pharmacy_id, user_id=user_id, actor_id=admin.id)
    await rpc.ask(command, c.PharmacyStaffView)
    return StaffMemberOut(pharmacy_id=pharmacy_id, user_id=user_id)


@router.delete(
    "/pharmacies/{pharmacy_id}/staff/{user_id}",
    status_code=204,
    dependencies=[audited("pharmacy.staff_remove", subject="pharmacy_id")],
)
async def remove_staff(
    pharmacy_id: ResourceId, user_id: ResourceId, admin: Admin, rpc: Rpc, audit: Audit
) -> Response:
    """Take a user off the pharmacy's staff: they may no longer change its stock. Idempotent."""
    audit.details = {"user_id": user_id}
    command = c.RemovePharmacyStaff(pharmacy_id=pharmacy_id, user_id=user_id, actor_id=admin.id)
    await rpc.ask(command, c.PharmacyStaffView)
    return Response(status_code=204)


@router.get(
    "/pharmacies/{pharmacy_id}/staff",
    response_model=Page[StaffMemberOut],
    dependencies=[audited("pharmacy.staff_list", subject="pharmacy_id")],
)
async def list_staff(pharmacy_id: ResourceId, user: Staff, rpc: Rpc, page: Paging) -> Page[StaffMemberOut]:
    """The pharmacy's staff, in the order they joined: for admins and for that pharmacy's own staff."""
    found = await rpc.ask(c.ListPharmacyStaff(pharmacy_id=pharmacy_id), c.PharmacyStaffView)
    if user.role != "admin" and user.id not in found.staff:
        raise Forbidden("only an admin or this pharmacy's own staff may see its staff")
    shown = found.staff[page.offset : page.offset + page.limit]
    return Page(
        items=[StaffMemberOut(pharmacy_id=pharmacy_id, user_id=u) for u in shown],
        limit=page.limit,
        offset=page.offset,
    )
