"""The audit log, for admins: who did what to which record, and how it ended."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BeforeValidator

from user_service.audit import AuditEntry, AuditLogDep, audited
from user_service.deps import Admin, Paging
from user_service.schemas import Page

router = APIRouter(tags=["audit"])
Filter = Annotated[str | None, Query(max_length=200)]


def _written_out(value: object) -> object:
    # Pydantic would read "0.5" as seconds since 1970: the document promises an RFC 3339 date-time.
    if isinstance(value, str) and "T" not in value.upper():
        raise ValueError("a date-time with its offset, as 2026-11-27T09:30:00Z")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_written_out)]


@router.get("/audit", response_model=Page[AuditEntry], dependencies=[audited("audit.read")])
async def read_audit_log(
    admin: Admin,
    audit_log: AuditLogDep,
    page: Paging,
    actor_id: Filter = None,
    action: Filter = None,
    subject_id: Filter = None,
    since: Annotated[Moment | None, Query(description="from this moment on, inclusive")] = None,
    until: Annotated[Moment | None, Query(description="before this moment")] = None,
) -> Page[AuditEntry]:
    """Audit entries matching every filter given, newest first. Reading the log is audited too."""
    found = await audit_log.query(
        actor_id=actor_id,
        action=action,
        subject_id=subject_id,
        since=since,
        until=until,
        limit=page.limit,
        offset=page.offset,
    )
    return Page(items=found, limit=page.limit, offset=page.offset)
