"""Metrics and readiness without a broker or a store: type labels, saga outcomes, readiness reports,
the outbox backlog the relay keeps, the launcher's ports and the gateway's HTTP middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from contracts.base import Envelope
from contracts.events import OrderConfirmed, OrderCreated
from service_runtime import metrics
from service_runtime.crypto import FieldCipher
from service_runtime.launcher import Platform
from service_runtime.messaging import CommandServer, EventBus
from service_runtime.outbox import OutboxRelay
from service_runtime.store import pending


def figure(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_message_is_labelled_with_its_declared_type_or_its_envelopes() -> None:
    envelope = b'{"type": "OrderCreated", "payload": {}}'

    assert metrics.message_type("PaymentApproved", b"") == "PaymentApproved"
    assert metrics.message_type(None, envelope) == "OrderCreated"
    assert metrics.message_type("NoSuchType", envelope) == "OrderCreated"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"type": "SomethingMadeUp"}', b'{"type": 7}'])
def test_a_message_of_no_known_type_is_labelled_unknown_so_labels_stay_few(body: bytes) -> None:
    assert metrics.message_type("AlsoMadeUp", body) == "unknown"


def test_publishing_the_event_that_ends_an_order_counts_the_sagas_outcome() -> None:
    before = figure("pharmacy_saga_outcomes_total", service="unit", saga="order", outcome="confirmed")
    created = figure("pharmacy_events_published_total", service="unit", type=OrderCreated.TYPE)

    metrics.event_published("unit", OrderConfirmed.TYPE)
    metrics.event_published("unit", OrderCreated.TYPE)

    assert figure("pharmacy_saga_outcomes_total", service="unit", saga="order", outcome="confirmed") == (
        before + 1
    )
    assert figure("pharmacy_events_published_total", service="unit", type=OrderCreated.TYPE) == created + 1


async def test_commands_are_counted_by_outcome_and_pings_carry_the_readiness_report() -> None:
    server = CommandServer("unit_commands")

    async def report() -> dict[str, Any]:
        return {"status": "not ready", "checks": {"store": "down"}}

    server.readiness = report
    ping = await server.dispatch("Ping", b"")
    await server.dispatch("ShipToMars", b"{}")

    assert ping.data == {"service": "unit_commands", "status": "not ready", "checks": {"store": "down"}}
    assert figure("pharmacy_commands_answered_total", service="unit_commands", type="Ping", outcome="ok") == 1
    unknown = {"service": "unit_commands", "type": "unknown", "outcome": "invalid"}
    assert figure("pharmacy_commands_answered_total", **unknown) == 1


async def test_readiness_names_each_failed_check_and_why() -> None:
    async def up() -> str | None:
        return None

    async def refuses() -> str | None:
        return "not connected to RabbitMQ"

    async def raises() -> str | None:
        raise ConnectionRefusedError("store gone")

    async def hangs() -> str | None:
        await asyncio.sleep(10)
        return None

    checks = {"started": up, "broker": refuses, "store": raises, "journal": hangs}
    report = await metrics.Readiness("unit", checks, timeout=0.05).report()

    assert report == {
        "service": "unit",
        "status": "not ready",
        "checks": {"started": "up", "broker": "down", "store": "down", "journal": "down"},
        "failed": {
            "broker": "not connected to RabbitMQ",
            "store": "ConnectionRefusedError: store gone",
            "journal": "no answer within 0.05 s",
        },
    }
    assert await metrics.Readiness("unit", {"started": up}, timeout=1).report() == {
        "service": "unit",
        "status": "ready",
        "checks": {"started": "up"},
    }


class FakeOutboxes:
    """Just enough of a collection for the relay: documents with an outbox, and a sweep's query."""

    name = "orders"

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs

    async def find_one(self, query: dict[str, Any], projection: Any = None) -> dict[str, Any] | None:
        return self.docs.get(query["_id"])

    async def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> None:
        doc = self.docs[query["_id"]]
        for field in update.get("$unset", {}):
            if field.startswith("outbox."):
                doc["outbox"].pop(field.removeprefix("outbox."), None)

    def find(self, query: dict[str, Any], projection: Any = None) -> AsyncIterator[dict[str, Any]]:
        async def found() -> AsyncIterator[dict[str, Any]]:
            for doc_id, doc in self.docs.items():
                if doc.get("outbox"):
                    yield {"_id": doc_id}

        return found()


class FlakyBus:
    def __init__(self) -> None:
        self.up = False
        self.published: list[str] = []

    async def publish(self, envelope: dict[str, Any]) -> None:
        if not self.up:
            raise ConnectionError("broker away")
        self.published.append(envelope["event_id"])


CIPHER = FieldCipher({"unit": bytes(32)}, "unit")


def outbox(doc_id: str, *events: OrderCreated) -> dict[str, Any]:
    wrapped = [Envelope.wrap(e, correlation_id=e.order_id) for e in events]
    return pending(wrapped, CIPHER, collection=FakeOutboxes.name, doc_id=doc_id)


async def no_sweep(older_than: timedelta) -> None:
    return None


async def test_the_outbox_backlog_counts_what_a_failed_publish_left_until_a_flush_or_sweep_clears_it() -> (
    None
):
    created = OrderCreated.model_validate(
        {
            "order_id": "o-1",
            "prescription_id": "p-1",
            "patient_id": "pa-1",
            "lines": [{"medication_id": "m-1", "quantity": 1}],
            "delivery_location": {"latitude": 1.0, "longitude": 2.0},
            "payment_method_id": "pm-1",
        }
    )
    docs = {
        "o-1": {"outbox": outbox("o-1", created, created.model_copy())},
        "o-2": {"outbox": outbox("o-2", created)},
    }
    collection = FakeOutboxes(docs)
    bus = FlakyBus()
    relay = OutboxRelay(cast(EventBus, bus), no_sweep, CIPHER, sweep_seconds=60, retry_seconds=1)
    relay.watch(cast(Any, collection))

    for doc_id in ("o-1", "o-2"):
        with pytest.raises(ConnectionError):
            await relay.flush(cast(Any, collection), doc_id)
    assert relay.backlog() == 3

    bus.up = True
    await relay.flush(cast(Any, collection), "o-1")
    assert relay.backlog() == 1

    docs["o-2"]["outbox"].clear()  # published by another replica meanwhile
    await relay.sweep(timedelta(0))
    assert relay.backlog() == 0


def test_the_launcher_gives_every_back_end_process_a_metrics_port_of_its_own() -> None:
    platform = Platform(port=8000, metrics_base_port=9100, replicas={"order_service": 2}, env={})

    ports = {name: platform._metrics_env(name).get("METRICS_PORT") for name in platform.process_names()}

    assert ports == {
        "journal": None,
        "inventory_service": "9100",
        "payment_service": "9101",
        "order_service": "9102",
        "order_service.2": "9103",
        "prescription_service": "9104",
        "delivery_service": "9105",
        "user_service": None,
    }
    assert platform._metrics_env("order_service.2") == {"METRICS_PORT": "9103"}  # kept on a restart
    assert platform.metrics_url("order_service.2") == "http://127.0.0.1:9103/metrics"
    assert platform.health_url("order_service", "live") == "http://127.0.0.1:9102/health/live"
    assert platform.metrics_url("user_service") == "http://127.0.0.1:8000/metrics"
    assert Platform(metrics_base_port=None, env={})._metrics_env("order_service") == {}


async def test_http_requests_are_counted_under_their_route_template_not_their_path() -> None:
    async def order(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["order_id"])

    app = Starlette(routes=[Route("/orders/{order_id}", order)])
    instrumented = metrics.HttpMetrics(app, service="unit_http")
    labels = {"service": "unit_http", "method": "GET", "route": "/orders/{order_id}", "status": "200"}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=instrumented), base_url="http://t"
    ) as http:
        assert (await http.get("/orders/o-1")).text == "o-1"
        await http.get("/orders/o-2")
        await http.get("/nowhere")

    assert figure("pharmacy_http_requests_total", **labels) == 2
    assert (
        figure(
            "pharmacy_http_requests_total", service="unit_http", method="GET", route="unmatched", status="404"
        )
        == 1
    )
    count = {"service": "unit_http", "method": "GET", "route": "/orders/{order_id}"}
    assert figure("pharmacy_http_request_duration_seconds_count", **count) == 2
