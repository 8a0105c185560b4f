"""Wiring of the gateway: settings, broker (RPC client), the users store, routes, problem+json."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import uuid4

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from pymongo.asynchronous.database import AsyncDatabase

from contracts.documents import DOCUMENT_MAX_BYTES
from service_runtime import metrics, tracing
from service_runtime.clock import utc_now
from service_runtime.crypto import FieldCipher
from service_runtime.errors import until_up
from service_runtime.messaging import AmqpRequester, RpcClient
from service_runtime.store import Document, connect
from user_service import edge, problems
from user_service.audit import AuditLog, AuditTrail
from user_service.domain import User
from user_service.routes import (
    audit,
    auth,
    catalogue,
    deliveries,
    documents,
    health,
    operations,
    orders,
    payments,
    prescriptions,
    staff,
    users,
    verifications,
)
from user_service.security import hash_password
from user_service.settings import Settings
from user_service.store import UserStore
from user_service.throttle import SignInThrottle
from user_service.token_store import TokenStore
from user_service.web import (
    account,
    cards,
    catalogue_pages,
    common,
    courier_pages,
    new_order,
    operator_operations,
    operator_pages,
    order_pages,
    pharmacist_pages,
    pharmacist_pharmacies,
    prescription_pages,
    scan_pages,
)
from user_service.web import documents as web_documents
from user_service.web.sessions import WebSessions

log = logging.getLogger(__name__)


async def ensure_first_admin(store: UserStore, settings: Settings) -> None:
    """Create the admin named by ADMIN_EMAIL / ADMIN_PASSWORD when that account does not exist yet."""
    if not settings.admin_email or settings.admin_password is None:
        return
    email = settings.admin_email.casefold()
    if await store.by_email(email=email) is not None:
        return
    admin = User(
        id=str(uuid4()),
        email=email,
        full_name="Administrator",
        role="admin",
        password_hash=hash_password(settings.admin_password.get_secret_value()),
        created_at=utc_now(),
    )
    await store.add(user=admin)
    log.info("created the first admin %s", email)


async def _broker_down(requester: AmqpRequester) -> str | None:
    return None if requester.connected else "not connected to RabbitMQ"


async def _store_down(db: AsyncDatabase[Document]) -> str | None:
    await db.command("ping")
    return None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        requester = AmqpRequester(settings.rabbitmq_url, settings.broker_namespace)
        client = connect(settings)
        app.state.settings = settings
        app.state.db = client[settings.mongodb_database]
        app.state.users = UserStore(
            app.state.db,
            cipher=FieldCipher.from_settings(settings),
            email_index_key=settings.email_index_key.get_secret_value().encode(),
        )
        app.state.audit_log = AuditLog(app.state.db)
        app.state.tokens = TokenStore(
            app.state.db, revocations_refresh_seconds=settings.revocations_refresh_seconds
        )
        app.state.throttle = SignInThrottle(
            app.state.db,
            account_key=app.state.users.email_index,
            per_account=settings.sign_in_failures_per_account,
            per_address=settings.sign_in_failures_per_address,
            window=timedelta(seconds=settings.sign_in_window_seconds),
        )
        app.state.web_sessions = WebSessions(
            app.state.db, lifetime=timedelta(hours=settings.web_session_hours)
        )
        app.state.rpc = RpcClient(requester, settings)
        app.state.readiness = metrics.Readiness(
            "user_service",
            {"broker": lambda: _broker_down(requester), "store": lambda: _store_down(app.state.db)},
            timeout=settings.health_timeout_seconds,
        )

        async def prepare_store() -> None:
            await app.state.users.ensure_indexes()
            await app.state.audit_log.ensure_indexes()
            await app.state.tokens.ensure_indexes()
            await app.state.web_sessions.ensure_indexes()
            await ensure_first_admin(app.state.users, settings)

        # Start in any order: wait for the store and the broker rather than exit.
        await until_up("the user store", prepare_store)
        await until_up("RabbitMQ", requester.start)
        sweeping = asyncio.create_task(
            app.state.tokens.keep_sweeping(
                every=settings.expired_tokens_sweep_seconds, also=app.state.web_sessions.remove_expired
            )
        )
        try:
            yield
        finally:
            sweeping.cancel()
            await requester.stop()
            await client.close()

    app = FastAPI(
        title="Online pharmacy",
        version="1.0.0",
        description=(
            "Upload a prescription; the platform finds stock near you, takes payment and confirms the order."
        ),
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        # FastAPI's own spans start a trace apart from ours and name a route without its /api/v1 prefix.
        telemetry={"tracing": False},
    )
    problems.install(app)
    # Innermost: the metrics and spans see the 503 it answers when a read cannot be audited.
    app.add_middleware(AuditTrail)
    # One span per request instead. Load balancers ask for health every few seconds: left untraced.
    app.add_middleware(tracing.HttpServerSpans, untraced_paths={"/api/v1/health"})
    app.add_middleware(metrics.HttpMetrics, service="user_service")
    # A scanned prescription may be 10 MiB; every other body stays small.
    # (The web UI's scan page too: its form carries the same file.)
    scan_limit = DOCUMENT_MAX_BYTES + documents.MULTIPART_OVERHEAD_BYTES
    scans = {"/api/v1" + documents.SCAN_PATH: scan_limit, documents.SCAN_PATH: scan_limit}
    app.add_middleware(edge.BodyLimit, max_bytes=settings.max_request_bytes, larger=scans)
    if settings.cors_allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After"],
        )
    # Outermost: an answer made by a middleware within (a CORS preflight, the audit's 503) gets them too.
    docs = {path for path in (app.docs_url, app.swagger_ui_oauth2_redirect_url) if path}
    app.add_middleware(
        edge.SecurityHeaders, docs_paths=docs, hsts_max_age_seconds=settings.hsts_max_age_seconds
    )
    for module in (
        auth,
        users,
        catalogue,
        staff,
        payments,
        documents,
        prescriptions,
        verifications,
        orders,
        deliveries,
        audit,
        operations,
        health,
    ):
        app.include_router(module.router, prefix="/api/v1", responses=problems.RESPONSES)
    openapi = app.openapi

    def openapi_with_bodies_read_by_hand() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = prescriptions.with_upload_schemas(openapi())
        return app.openapi_schema

    app.openapi = openapi_with_bodies_read_by_hand  # type: ignore[method-assign]
    app.add_route("/metrics", lambda _: metrics.metrics_response(), include_in_schema=False)
    # The web UI: its pages, and its static files (htmx copied in at set-up, see scripts/web-assets.sh).
    # scan_pages and prescription_pages after new_order: /prescriptions/new and /scan are no ids.
    for screens in (
        account,
        order_pages,
        cards,
        new_order,
        scan_pages,
        prescription_pages,
        web_documents,
        pharmacist_pages,
        pharmacist_pharmacies,
        catalogue_pages,
        courier_pages,
        operator_pages,
        operator_operations,
    ):
        app.include_router(screens.router)
    app.mount("/static", StaticFiles(directory=common.HERE / "static"), name="static")
    return app
