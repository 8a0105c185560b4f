"""Prometheus metrics of every process, and the operator's port of a back-end service.

The metrics live in the process's default registry, labelled with the service: a process runs one
service (tests run several in one process, and compare figures before and after). The operator's
port answers GET /metrics, /health/live and /health/ready from the service's own event loop, so an
answer from /health/live also says the loop is not stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import uvicorn
from faststream.rabbit import Channel, RabbitBroker
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import topology
from contracts.base import Timer
from contracts.commands import SweepOutbox
from contracts.events import ALL_EVENTS, OrderCancelled, OrderConfirmed, OrderRejected
from service_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# A `_created` twin of every counter doubles the series and tells an operator nothing here.
disable_created_metrics()  # type: ignore[no-untyped-call]

MESSAGES_HANDLED = Counter(
    "pharmacy_messages_handled",
    "Messages taken from a service's event queue (events and write commands), by type and outcome: "
    "acked, retried, dead_lettered, expired (a write whose caller gave up), abandoned (the channel "
    "closed mid-work; the broker delivers it again)",
    ["service", "type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "pharmacy_handler_duration_seconds",
    "Time in an event handler, each attempt, by event type",
    ["service", "type"],
)
DUPLICATES_SKIPPED = Counter(
    "pharmacy_duplicates_skipped",
    "Events delivered again whose change the aggregate had already applied, acknowledged only",
    ["service", "type"],
)
COMMANDS_ANSWERED = Counter(
    "pharmacy_commands_answered",
    "Commands answered (RPC reads and queued writes), by type and outcome: ok or the error code",
    ["service", "type", "outcome"],
)
COMMAND_SECONDS = Histogram(
    "pharmacy_command_duration_seconds", "Time to answer a command, by type", ["service", "type"]
)
EVENTS_PUBLISHED = Counter(
    "pharmacy_events_published",
    "Events the broker confirmed, by type (at least once: an outbox publish cut short goes out again)",
    ["service", "type"],
)
SAGA_OUTCOMES = Counter(
    "pharmacy_saga_outcomes",
    "Sagas ended, by saga and outcome, counted when the event that ends one is published",
    ["service", "saga", "outcome"],
)
OUTBOX_BACKLOG = Gauge(
    "pharmacy_outbox_backlog_events",
    "Events this process saw waiting in outboxes, not yet published (after a failed publish, or "
    "found by a sweep); refreshed by every flush and sweep, no count query",
    ["service"],
)
OUTBOX_SWEPT = Counter(
    "pharmacy_outbox_swept_events",
    "Events the outbox sweep published: left behind by a failed publish or a crash",
    ["service"],
)
QUEUE_READY = Gauge(
    "pharmacy_queue_messages_ready",
    "Messages ready in a queue of this service, as the broker counted them at the last scrape",
    ["service", "queue"],
)
QUEUE_CONSUMERS = Gauge(
    "pharmacy_queue_consumers",
    "Consumers of a queue of this service, as the broker counted them at the last scrape",
    ["service", "queue"],
)
HTTP_REQUESTS = Counter(
    "pharmacy_http_requests",
    "HTTP requests answered by the gateway, by route template, method and status",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "pharmacy_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["service", "method", "route"],
)

# Labels take only the types the contracts name, so a stray publisher cannot grow the series.
KNOWN_TYPES: frozenset[str] = frozenset(
    {e.TYPE for e in ALL_EVENTS}
    | {c.TYPE for commands in topology.ANSWERS.values() for c in commands}
    | {SweepOutbox.TYPE}
)
# The order saga ends with one of these, published by order_service.
SAGA_ENDINGS: Mapping[str, tuple[str, str]] = {
    OrderConfirmed.TYPE: ("order", "confirmed"),
    OrderRejected.TYPE: ("order", "rejected"),
    OrderCancelled.TYPE: ("order", "cancelled"),
}


def message_type(declared: str | None, body: bytes) -> str:
    """The type label of a message: its declared type, else its envelope's, else "unknown"."""
    if declared is not None and declared in KNOWN_TYPES:
        return declared
    try:
        kind = json.loads(body).get("type")
    except (ValueError, AttributeError):
        return "unknown"
    return kind if isinstance(kind, str) and kind in KNOWN_TYPES else "unknown"


def message_handled(service: str, declared: str | None, body: bytes, outcome: str) -> None:
    MESSAGES_HANDLED.labels(service, message_type(declared, body), outcome).inc()


def timed_handler(service: str, kind: str, handler: F) -> F:
    """The handler, observed in the latency histogram at every call, failed or not."""
    histogram = HANDLER_SECONDS.labels(service, kind)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        with histogram.time():
            return await handler(*args, **kwargs)

    return timed  # type: ignore[return-value]


@contextlib.contextmanager
def command_timer(service: str, kind: str) -> Iterator[Callable[[str], None]]:
    """Times one command; call what it yields with the outcome (ok or the error code)."""
    label = kind if kind in KNOWN_TYPES else "unknown"
    outcome = ["internal"]
    started = time.perf_counter()
    try:
        yield lambda code: outcome.__setitem__(0, code)
    finally:
        COMMAND_SECONDS.labels(service, label).observe(time.perf_counter() - started)
        COMMANDS_ANSWERED.labels(service, label, outcome[0]).inc()


def event_published(service: str, kind: str) -> None:
    EVENTS_PUBLISHED.labels(service, kind).inc()
    if ending := SAGA_ENDINGS.get(kind):
        SAGA_OUTCOMES.labels(service, *ending).inc()


def queues_of(namespace: str, service: str, partitions: int = 1) -> list[str]:
    """The queues a back-end service owns: its partitions, their dead letters, RPC, and timers if any."""
    events = [topology.partition_queue(namespace, service, k) for k in range(partitions)]
    dead_letters = topology.dead_letter_queue(topology.event_queue(namespace, service))
    owned = [*events, dead_letters, topology.rpc_queue(namespace, service)]
    if any(issubclass(e, Timer) for e in topology.SUBSCRIPTIONS.get(service, ())):
        owned.append(topology.timer_queue(namespace, service))
    return owned


# A channel of its own: a passive declare of a missing queue closes the channel it was sent on.
_CENSUS_CHANNEL = Channel(publisher_confirms=False)


async def count_queues(broker: RabbitBroker, service: str, queues: Sequence[str]) -> None:
    """Ask the broker how many messages wait in each queue (a passive declare: nothing changes)."""
    channel = await broker.config.channel_manager.get_channel(_CENSUS_CHANNEL)
    for name in queues:
        queue = await channel.declare_queue(name, passive=True, robust=False)
        counted = queue.declaration_result
        QUEUE_READY.labels(service, name).set(counted.message_count or 0)
        QUEUE_CONSUMERS.labels(service, name).set(counted.consumer_count or 0)


# One check of readiness: None when what it checks is up, else why not.
Check = Callable[[], Awaitable[str | None]]


class Readiness:
    """Runs a service's checks at once, each within `timeout`; says which failed and why."""

    def __init__(self, service: str, checks: Mapping[str, Check], *, timeout: float) -> None:
        self.service = service
        self.checks = dict(checks)
        self.timeout = timeout

    async def _run(self, name: str, check: Check) -> tuple[str, str | None]:
        try:
            async with asyncio.timeout(self.timeout):
                return name, await check()
        except TimeoutError:
            return name, f"no answer within {self.timeout:g} s"
        except Exception as exc:
            return name, f"{type(exc).__name__}: {exc}"[:300]

    async def report(self) -> dict[str, Any]:
        """{"status": "ready" | "not ready", "checks": {name: "up" | "down"}, "failed": {name: why}}."""
        results = await asyncio.gather(*(self._run(name, check) for name, check in self.checks.items()))
        failed = {name: why for name, why in results if why is not None}
        report: dict[str, Any] = {
            "service": self.service,
            "status": "not ready" if failed else "ready",
            "checks": {name: "down" if name in failed else "up" for name in self.checks},
        }
        if failed:
            report["failed"] = failed
        return report


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class _OwnSignals(uvicorn.Server):
    """uvicorn inside a service's loop: the service handles SIGTERM and stops this server itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OpsServer:
    """GET /metrics, /health/live and /health/ready of one back-end service process.

    `before_scrape` (reading queue depths from the broker) runs at most every `refresh_seconds`, so
    scrapers, however many, never hammer the broker; when it fails, the last figures stay.
    """

    def __init__(
        self,
        service: str,
        readiness: Readiness,
        *,
        host: str,
        port: int,
        before_scrape: Callable[[], Awaitable[None]] | None = None,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.service = service
        self.readiness = readiness
        self.host = host
        self.requested_port = port
        self.before_scrape = before_scrape
        self.refresh_seconds = refresh_seconds
        self._refreshed_at = -float("inf")
        self._refresh_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/metrics", self._metrics),
                Route("/health/live", self._live),
                Route("/health/ready", self._ready),
            ]
        )

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        # Bound here, not by uvicorn: a port in use fails the start with OSError, and port 0 works.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((self.host, self.requested_port))
        except OSError:
            self._socket.close()
            raise
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = _OwnSignals(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name=f"{self.service}-ops"
        )
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError(f"{self.service}'s operator port stopped while starting")
            await asyncio.sleep(0.01)
        log.info("%s serves /metrics and /health on %s:%d", self.service, self.host, self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._socket.close()

    async def _metrics(self, request: Request) -> Response:
        await self._refresh()
        return metrics_response()

    async def _refresh(self) -> None:
        if self.before_scrape is None:
            return
        async with self._refresh_lock:
            if time.monotonic() - self._refreshed_at < self.refresh_seconds:
                return
            self._refreshed_at = time.monotonic()
            try:
                async with asyncio.timeout(self.readiness.timeout):
                    await self.before_scrape()
            except Exception as exc:
                log.warning("could not read queue depths from the broker: %s: %s", type(exc).__name__, exc)

    async def _live(self, request: Request) -> Response:
        return JSONResponse({"service": self.service, "status": "alive"})

    async def _ready(self, request: Request) -> Response:
        report = await self.readiness.report()
        return JSONResponse(report, status_code=200 if report["status"] == "ready" else 503)


def _route_template(scope: Scope) -> str:
    """/api/v1/orders/{order_id}, never the path itself: ids in labels would grow the series forever.

    Rebuilt from the path and its parameters, as FastAPI's included routers keep their prefix apart.
    """
    if scope.get("route") is None:
        return "unmatched"
    names = {str(value): f"{{{name}}}" for name, value in (scope.get("path_params") or {}).items()}
    return "/".join(names.get(segment, segment) for segment in str(scope["path"]).split("/"))


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceHealth:
    """A back-end service's readiness (started, broker, store), its operator's port and its gauges."""

    def __init__(
        self,
        service: str,
        settings: RuntimeSettings,
        broker: RabbitBroker,
        db: AsyncDatabase[dict[str, Any]],
        *,
        outbox_backlog: Callable[[], int],
    ) -> None:
        self.service = service
        self.broker = broker
        self.db = db
        self.timeout = settings.health_timeout_seconds
        # Set by the service once it consumes its queues; cleared as it stops.
        self.started = False
        self.readiness = Readiness(
            service,
            {"started": self._started, "broker": self._broker, "store": self._store},
            timeout=self.timeout,
        )
        OUTBOX_BACKLOG.labels(service).set_function(outbox_backlog)
        queues = queues_of(settings.broker_namespace, service, settings.event_partitions)
        self.server = (
            None
            if settings.metrics_port is None
            else OpsServer(
                service,
                self.readiness,
                host=settings.metrics_host,
                port=settings.metrics_port,
                before_scrape=lambda: count_queues(broker, service, queues),
                refresh_seconds=settings.queue_depth_refresh_seconds,
            )
        )

    async def _started(self) -> str | None:
        return None if self.started else "not started: waiting for its store or the broker, or stopping"

    async def _broker(self) -> str | None:
        return None if await self.broker.ping(timeout=self.timeout / 2) else "not connected to RabbitMQ"

    async def _store(self) -> str | None:
        await self.db.command("ping")
        return None

    async def start(self) -> None:
        """Serve the operator's port first, so /health/live answers while the service waits for others."""
        if self.server is not None:
            await self.server.start()

    async def stop(self) -> None:
        self.started = False
        if self.server is not None:
            await self.server.stop()


class HttpMetrics:
    """ASGI middleware of the gateway: counts and times each request under its route's template."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = _route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_SECONDS.labels(self.service, method, route).observe(time.perf_counter() - started)
