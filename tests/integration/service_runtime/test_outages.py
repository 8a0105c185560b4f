"""The broker or the store goes away and comes back: services wait, reconnect and lose nothing.

A TcpGate stands between the service and the real RabbitMQ or FerretDB; shutting it cuts every
connection through it and refuses new ones, as a restart of the server would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, TcpGate, eventually, gate_to, prescription_uploaded

from contracts.events import OrderCancelled, OrderCreated
from order_service import domain
from order_service.app import Settings, build
from order_service.store import orders as orders_of
from service_runtime.clock import utc_now
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]


def refusals(gate: TcpGate) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        return gate.refused

    return read


async def test_a_service_started_before_its_store_and_broker_waits_for_them(
    namespace: Namespace, probe: EventProbe
) -> None:
    async with (
        gate_to(namespace.backing.rabbitmq_url) as (broker_gate, rabbitmq_url),
        gate_to(namespace.backing.mongodb_url) as (store_gate, mongodb_url),
    ):
        broker_gate.shut()
        store_gate.shut()
        service = build(namespace.settings(Settings, rabbitmq_url=rabbitmq_url, mongodb_url=mongodb_url))
        starting = asyncio.create_task(service.start())
        try:
            await eventually(refusals(store_gate), lambda n: n > 0, what="the service trying its store")
            store_gate.open()
            await eventually(
                refusals(broker_gate), lambda n: n > 0, what="the service trying RabbitMQ", timeout=20
            )
            assert not starting.done()
            broker_gate.open()
            await asyncio.wait_for(starting, 30)

            uploaded = prescription_uploaded()
            await probe.publish(uploaded, correlation_id=uploaded.order_id)
            await probe.wait_for(OrderCreated, correlation_id=uploaded.order_id)
        finally:
            if not starting.done():
                starting.cancel()
            await service.stop()


async def test_events_saved_while_the_broker_is_away_are_published_once_it_is_back(
    namespace: Namespace, probe: EventProbe
) -> None:
    async with gate_to(namespace.backing.rabbitmq_url) as (broker_gate, rabbitmq_url):
        service = build(namespace.settings(Settings, rabbitmq_url=rabbitmq_url, outbox_retry_seconds=0.2))
        await service.start()
        try:
            uploaded = prescription_uploaded()
            await probe.publish(uploaded, correlation_id=uploaded.order_id)
            await probe.wait_for(OrderCreated, correlation_id=uploaded.order_id)
            await eventually(
                lambda: service.db["orders"].find_one({"_id": uploaded.order_id}),
                lambda doc: not doc.get("outbox"),
                what="OrderCreated cleared from the outbox",
            )

            broker_gate.shut()
            orders = orders_of(service)
            # The change is stored with its event; publishing it fails, and the change still succeeds.
            await service.change(
                orders, uploaded.order_id, lambda o: domain.cancel(o, "outage test", utc_now()), cause=None
            )
            stored = await service.db["orders"].find_one({"_id": uploaded.order_id})
            assert stored is not None
            assert stored["status"] == "CANCELLED"
            assert [e["type"] for e in stored["outbox"].values()] == [OrderCancelled.TYPE]

            broker_gate.open()
            await probe.wait_for(OrderCancelled, correlation_id=uploaded.order_id, timeout=30)
            await eventually(
                lambda: service.db["orders"].find_one({"_id": uploaded.order_id}),
                lambda doc: not doc.get("outbox"),
                what="the outbox emptied by the sweep",
            )
        finally:
            await service.stop()
