"""The audit trail at the gateway: nothing is read unaudited, and failures are recorded as failures."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from user_service import problems
from user_service.audit import AuditEntry, AuditTrail, audited
from user_service.deps import Admin, CurrentUser, current_user
from user_service.domain import User

PATIENT = User(
    id="patient-1",
    email="pat@example.com",
    full_name="Pat Ient",
    role="patient",
    password_hash="not used",
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


class FakeAuditLog:
    def __init__(self, *, fails: bool = False) -> None:
        self.fails = fails
        self.entries: list[AuditEntry] = []

    async def record(self, *, entry: AuditEntry) -> None:
        if self.fails:
            raise ConnectionError("the store went away")
        self.entries.append(entry)


def gateway(audit_log: FakeAuditLog) -> FastAPI:
    """A gateway with one audited route of each kind, signed in as a patient."""
    app = FastAPI()
    problems.install(app)
    app.add_middleware(AuditTrail)
    app.state.audit_log = audit_log
    app.dependency_overrides[current_user] = lambda: PATIENT

    @app.get("/records/{record_id}", dependencies=[audited("record.read", subject="record_id")])
    async def read(record_id: str, user: CurrentUser) -> dict[str, str]:
        return {"diagnosis": "confidential"}

    @app.post("/records", status_code=201, dependencies=[audited("record.create", subject="record_id")])
    async def create(user: CurrentUser) -> dict[str, str]:
        return {"id": "record-2"}

    @app.get("/admin", dependencies=[audited("admin.read")])
    async def admin_only(admin: Admin) -> None:
        return None

    @app.get("/broken", dependencies=[audited("record.list")])
    async def broken(user: CurrentUser) -> None:
        raise RuntimeError("a bug")

    return app


async def call(app: FastAPI, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.request(method, path)


async def test_a_read_is_not_answered_when_its_audit_entry_cannot_be_written() -> None:
    answer = await call(gateway(FakeAuditLog(fails=True)), "GET", "/records/record-1")

    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert answer.headers["content-type"] == "application/problem+json"
    assert "confidential" not in answer.text


async def test_a_change_that_happened_is_answered_when_its_entry_cannot_be_written_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="user_service.audit"):
        answer = await call(gateway(FakeAuditLog(fails=True)), "POST", "/records")

    assert answer.status_code == 201
    assert any("record.create" in r.getMessage() for r in caplog.records)


async def test_refusals_and_errors_are_recorded_with_their_status() -> None:
    audit_log = FakeAuditLog()
    app = gateway(audit_log)

    read = await call(app, "GET", "/records/record-1")
    denied = await call(app, "GET", "/admin")
    failed = await call(app, "GET", "/broken")

    assert (read.status_code, denied.status_code, failed.status_code) == (200, 403, 500)
    assert [(e.action, e.subject_id, e.outcome, e.status) for e in audit_log.entries] == [
        ("record.read", "record-1", "ok", 200),
        ("admin.read", None, "denied", 403),
        ("record.list", None, "failed", 500),
    ]
    assert {(e.actor_id, e.actor_role) for e in audit_log.entries} == {("patient-1", "patient")}
