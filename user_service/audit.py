"""The audit log: who read or changed which prescription, order, payment, stock or role, and how it ended.

Append-only: `AuditLog` offers `record` and `query` and nothing else, and no code path updates or
deletes an entry. An entry holds ids only, never a name, a medication line or card data.

A route is audited by naming its action in its decorator:
`dependencies=[audited("prescription.read", subject="prescription_id")]`. That opens the entry as soon
as the caller is known; `AuditTrail` completes it with the response's status and writes it before the
response leaves, so a refused or failed request is recorded as such, role checks included.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import uuid4

from fastapi import Depends, Request
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_runtime.clock import utc_now
from user_service.deps import CurrentUser
from user_service.domain import Role, User
from user_service.problems import problem

log = logging.getLogger(__name__)

Outcome = Literal["ok", "denied", "not_found", "throttled", "refused", "failed"]
# A request id a client or a proxy in front sent, to find the request in their own logs too.
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 200  # what is kept of it: a client must not fill the log through a header


def outcome_of(status: int) -> Outcome:
    """How a request ended, from its HTTP status: what an admin filters attacks and faults by."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status == 404:
        return "not_found"
    if status == 429:
        return "throttled"
    return "refused" if status < 500 else "failed"


class AuditNote(BaseModel):
    """An entry in the making: opened when the caller is known; a route may name what it created."""

    action: str
    actor_id: str | None
    actor_role: Role | None
    subject_type: str | None
    subject_id: str | None
    details: dict[str, str] = Field(default_factory=dict)


class AuditEntry(AuditNote):
    id: str
    at: datetime
    outcome: Outcome
    status: int
    client: str | None
    request_id: str | None


class AuditLog:
    """The gateway's `audit_log` collection. Append-only: entries are inserted and read, never changed."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.entries: AsyncCollection[dict[str, Any]] = db["audit_log"]

    async def ensure_indexes(self) -> None:
        # The id is the document's _id, unique by itself; one index per filter, newest first.
        await self.entries.create_index([("at", DESCENDING)])
        for field in ("actor_id", "action", "subject_id"):
            await self.entries.create_index([(field, ASCENDING), ("at", DESCENDING)])

    async def record(self, *, entry: AuditEntry) -> None:
        doc = entry.model_dump(exclude={"id"})
        doc["_id"] = entry.id
        await self.entries.insert_one(doc)

    async def query(
        self,
        *,
        actor_id: str | None = None,
        action: str | None = None,
        subject_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int,
        offset: int,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, newest first; `since` inclusive, `until` exclusive."""
        wanted = {"actor_id": actor_id, "action": action, "subject_id": subject_id}
        query: dict[str, Any] = {field: value for field, value in wanted.items() if value is not None}
        if since is not None or until is not None:
            query["at"] = {
                op: moment for op, moment in (("$gte", since), ("$lt", until)) if moment is not None
            }
        cursor = self.entries.find(
            query, sort=[("at", DESCENDING), ("_id", DESCENDING)], skip=offset, limit=limit
        )
        return [AuditEntry.model_validate({**doc, "id": doc["_id"]}) async for doc in cursor]


def audited(action: str, *, subject: str | None = None) -> Any:
    """Audit a route as `action`; `subject` is the path or query parameter naming what it acts on.

    The subject's type is that parameter's name without `_id`. A route that creates its subject sets
    `subject_id` on its `Audit` note once the id is known.
    """

    async def open_entry(request: Request, user: CurrentUser) -> None:
        open_note(request, user, action, subject)

    return Depends(open_entry)


def open_note(request: Request, user: User, action: str, subject: str | None) -> None:
    """Open the request's entry for this caller (an API route's, or a web page's)."""
    named = request.path_params.get(subject) or request.query_params.get(subject) if subject else None
    request.state.audit = AuditNote(
        action=action,
        actor_id=user.id,
        actor_role=user.role,
        subject_type=subject.removesuffix("_id") if subject else None,
        subject_id=named,
    )


def withdraw_note(request: Request) -> None:
    """No entry for this request after all: for a poll that answers "nothing changed" (204), which
    shows no record; the read that showed the list was audited when it was sent."""
    request.scope.get("state", {}).pop("audit", None)


async def open_sign_in(request: Request) -> None:
    """A sign-in's entry, before anyone is signed in; the route names the account tried, if it exists."""
    request.state.audit = AuditNote(
        action="auth.sign_in", actor_id=None, actor_role=None, subject_type="user", subject_id=None
    )


async def audit_note(request: Request) -> AuditNote:
    note: AuditNote = request.state.audit
    return note


Audit = Annotated[AuditNote, Depends(audit_note)]


async def get_audit_log(request: Request) -> AuditLog:
    audit_log: AuditLog = request.app.state.audit_log
    return audit_log


AuditLogDep = Annotated[AuditLog, Depends(get_audit_log)]


class AuditTrail:
    """ASGI middleware: writes an audited request's entry once its status is known, before answering.

    If the write fails, a read (GET) answers 503 instead: nothing may be read unaudited. A write has
    already happened by then, so refusing to answer would only hide its outcome from the client (who
    might repeat it): the failure is logged as an error and the answer goes out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        withheld = False

        async def send_recorded(message: Message) -> None:
            nonlocal withheld
            if message["type"] == "http.response.start" and not await self._recorded(
                scope, message["status"]
            ):
                withheld = True
                answer = problem(
                    503, "the audit log is unavailable; try again shortly", headers={"Retry-After": "5"}
                )
                await answer(scope, receive, send)
            if not withheld:
                await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except Exception:
            # Unhandled: the server answers 500 further out, unless the answer had already started.
            await self._recorded(scope, 500)
            raise

    async def _recorded(self, scope: Scope, status: int) -> bool:
        """Record the request's entry, if it is audited; False when a read must not be answered."""
        note: AuditNote | None = scope.get("state", {}).pop("audit", None)
        if note is None:
            return True
        request_id = dict(scope["headers"]).get(REQUEST_ID_HEADER)
        entry = AuditEntry(
            **note.model_dump(),
            id=str(uuid4()),
            at=utc_now(),
            outcome=outcome_of(status),
            status=status,
            client=scope["client"][0] if scope.get("client") else None,
            request_id=None if request_id is None else request_id.decode("latin-1")[:MAX_REQUEST_ID],
        )
        try:
            await scope["app"].state.audit_log.record(entry=entry)
        except Exception:
            if scope["method"] in ("GET", "HEAD"):
                log.exception("audit entry not written: %s refused", note.action)
                return False
            log.error(
                "audit entry not written after %s: %s", note.action, entry.model_dump_json(), exc_info=True
            )
        return True
