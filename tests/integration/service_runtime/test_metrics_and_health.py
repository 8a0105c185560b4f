"""Metrics and health on the real broker and store: the five services as processes count what they
handled and how each order ended; a service in this process goes unready while its store is cut off,
and counts a dead-lettered message in its failures and its dead-letter queue's depth."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    DECLINED_CARD,
    GOOD_CARD,
    Api,
    Backing,
    EventProbe,
    Namespace,
    add_card,
    eventually,
    gate_to,
    open_shop,
    rpc_client,
    started_platform,
    upload,
)
from prometheus_client.parser import text_string_to_metric_families

from contracts import topology
from contracts.events import PrescriptionUploaded
from order_service.app import Settings, build
from service_runtime.launcher import SERVICES, Platform
from service_runtime.messaging import ROUTING_KEYS
from service_runtime.service import Service

pytestmark = pytest.mark.integration

BACKENDS = [s for s in SERVICES if s != "user_service"]
TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}


def figure(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`; 0 when there is none."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def series(text: str, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


@pytest.fixture
def metrics_platform(backing: Backing) -> Iterator[Platform]:
    with started_platform(backing, "metrics") as platform:
        yield platform


def scraped_until(url: str, holds: Callable[[str], bool], what: str, timeout: float = 20) -> str:
    """Scrape `url` until `holds` is true of the text; fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(url, timeout=5).text
        if holds(text) or time.monotonic() > deadline:
            assert holds(text), f"timed out waiting for {what} at {url}"
            return text
        time.sleep(0.2)


def test_each_process_counts_what_it_handled_and_how_each_order_ended(metrics_platform: Platform) -> None:
    platform = metrics_platform
    api = Api(platform.url)
    admin = api.token(ADMIN_EMAIL, ADMIN_PASSWORD)
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    good, declined = add_card(api, patient, GOOD_CARD), add_card(api, patient, DECLINED_CARD)

    orders = [
        upload(api, patient, shop, good, quantity=1)["order_id"],
        upload(api, patient, shop, good, quantity=2)["order_id"],
        upload(api, patient, shop, declined, quantity=1)["order_id"],
        upload(api, patient, shop, good, quantity=50)["order_id"],  # more than the shop has
    ]
    ended = Counter(api.wait_for_status(o, patient, TERMINAL)["status"] for o in orders)
    assert ended == {"CONFIRMED": 2, "CANCELLED": 1, "REJECTED": 1}

    def handled(kind: str) -> Callable[[str], float]:
        return lambda text: figure(text, "pharmacy_messages_handled_total", type=kind, outcome="acked")

    order = scraped_until(
        platform.metrics_url("order_service"),
        lambda text: handled("PaymentDeclined")(text) == 1 and handled("PaymentApproved")(text) == 2,
        "order_service to ack both payment outcomes",
    )
    assert handled("PrescriptionUploaded")(order) == 4
    assert figure(order, "pharmacy_events_published_total", type="OrderCreated") == 4
    for outcome, count in (("confirmed", 2), ("cancelled", 1), ("rejected", 1)):
        assert figure(order, "pharmacy_saga_outcomes_total", saga="order", outcome=outcome) == count, outcome
    assert figure(order, "pharmacy_handler_duration_seconds_count", type="PrescriptionUploaded") >= 4
    assert figure(order, "pharmacy_messages_handled_total", outcome="dead_lettered") == 0

    inventory = scraped_until(
        platform.metrics_url("inventory_service"), lambda t: handled("OrderCreated")(t) == 4, "inventory"
    )
    assert figure(inventory, "pharmacy_events_published_total", type="StockReserved") == 3
    assert figure(inventory, "pharmacy_events_published_total", type="StockReservationFailed") == 1
    assert figure(inventory, "pharmacy_commands_answered_total", type="CreateMedication", outcome="ok") == 1
    payment = scraped_until(
        platform.metrics_url("payment_service"), lambda t: handled("StockReserved")(t) == 3, "payment"
    )
    assert figure(payment, "pharmacy_events_published_total", type="PaymentApproved") == 2
    assert figure(payment, "pharmacy_events_published_total", type="PaymentDeclined") == 1

    for name in BACKENDS:
        text = httpx.get(platform.metrics_url(name), timeout=5).text
        events = topology.event_queue(platform.namespace, name)
        depths = {labels["queue"] for labels in series(text, "pharmacy_queue_messages_ready")}
        assert {events, topology.dead_letter_queue(events)} <= depths, name
        assert figure(text, "pharmacy_queue_consumers", queue=events) == 1, name
        assert figure(text, "pharmacy_queue_messages_ready", queue=topology.dead_letter_queue(events)) == 0
        assert series(text, "pharmacy_outbox_backlog_events") == [{"service": name}]
        assert figure(text, "pharmacy_outbox_backlog_events") == 0, name
        ready = httpx.get(platform.health_url(name), timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"started": "up", "broker": "up", "store": "up"}
        assert httpx.get(platform.health_url(name, "live"), timeout=5).status_code == 200

    gateway = httpx.get(platform.metrics_url("user_service"), timeout=5).text
    uploads = {"method": "POST", "route": "/api/v1/prescriptions", "status": "202"}
    assert figure(gateway, "pharmacy_http_requests_total", service="user_service", **uploads) == 4
    health = httpx.get(f"{platform.url}/api/v1/health", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert {s: r["status"] for s, r in health.json()["services"].items()} == dict.fromkeys(
        sorted(topology.ANSWERS), "ready"
    )
    assert httpx.get(platform.health_url("user_service"), timeout=5).status_code == 200
    assert httpx.get(platform.health_url("user_service", "live"), timeout=5).status_code == 200


async def test_readiness_names_the_store_while_it_is_cut_off_and_recovers_with_it(
    namespace: Namespace,
) -> None:
    async with gate_to(namespace.backing.mongodb_url) as (store_gate, mongodb_url):
        service = build(namespace.settings(Settings, mongodb_url=mongodb_url, metrics_port=0))
        await service.start()
        try:
            assert service.health.server is not None
            url = f"http://127.0.0.1:{service.health.server.port}"
            async with (
                httpx.AsyncClient(base_url=url, timeout=10) as http,
                rpc_client(service.settings) as rpc,
            ):
                assert (await http.get("/health/ready")).status_code == 200

                store_gate.shut()
                unready = await http.get("/health/ready")
                pinged = await rpc.readiness("order_service")
                live = await http.get("/health/live")

                assert unready.status_code == 503, unready.text
                assert unready.json()["checks"] == {"started": "up", "broker": "up", "store": "down"}
                assert list(unready.json()["failed"]) == ["store"]
                assert pinged is not None
                assert (pinged["status"], list(pinged["failed"])) == ("not ready", ["store"])
                assert live.status_code == 200

                store_gate.open()
                await eventually(
                    lambda: http.get("/health/ready"),
                    lambda answer: answer.status_code == 200,
                    what="readiness once the store is back",
                    timeout=30,
                )
        finally:
            await service.stop()


async def test_a_dead_lettered_message_shows_in_the_failures_and_the_dead_letter_queue_depth(
    namespace: Namespace, probe: EventProbe, running: Callable[[Service], Any]
) -> None:
    settings = namespace.settings(Settings, metrics_port=0, queue_depth_refresh_seconds=0)
    service: Service = await running(build(settings))
    assert service.health.server is not None
    url = f"http://127.0.0.1:{service.health.server.port}/metrics"
    dlq = topology.dead_letter_queue(topology.event_queue(namespace.name, "order_service"))
    failed = {"service": "order_service", "type": "unknown", "outcome": "dead_lettered"}

    async with httpx.AsyncClient(timeout=10) as http:

        async def scrape() -> str:
            return (await http.get(url)).text

        before = figure(await scrape(), "pharmacy_messages_handled_total", **failed)
        await probe.publish_raw(b"not an envelope", ROUTING_KEYS[PrescriptionUploaded.TYPE])

        after = await eventually(
            scrape,
            lambda text: figure(text, "pharmacy_queue_messages_ready", queue=dlq) == 1,
            what="the dead letter counted in its queue's depth",
        )
    assert figure(after, "pharmacy_messages_handled_total", **failed) == before + 1
