"""Replicas nobody numbered (a Kubernetes Deployment's pods) share the partitions as they come and go.

One replica takes every partition; a second one joining gets half of them, handed over by the first;
when the first stops, the second takes them all back; a third that crashes (no goodbye) is left out
once its lease runs out. Through all of it every order is decided once, none lost, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, rpc_client
from integration.service_runtime.test_replicas import HERE, order_for

from contracts.base import Envelope
from contracts.commands import CreateMedication, CreatePharmacy, SetStock, StockView
from contracts.events import OrderCreated, StockReservationFailed, StockReserved
from inventory_service.app import build
from inventory_service.handlers import InventorySettings
from inventory_service.store import stores
from service_runtime.membership import collection_of
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]
ALL = {0, 1, 2, 3}


async def _decided(probe: EventProbe) -> int:
    return len(probe.of_type(StockReserved)) + len(probe.of_type(StockReservationFailed))


async def test_unnumbered_replicas_hand_partitions_over_as_they_join_stop_and_crash(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    settings = namespace.settings(
        InventorySettings,
        event_partitions=4,
        partition_tick_seconds=0.3,
        partition_lease_seconds=2.0,
    )
    assert settings.replica_index is None

    first = await running(build(settings))
    assert first.consuming == ALL  # alone: every partition at once, no lease to wait for

    async with rpc_client(settings) as rpc:
        pharmacy = await rpc.ask(CreatePharmacy(name="Centrale", address="1 Rue", location=HERE), dict)
        medication = (
            await rpc.ask(
                CreateMedication(
                    name="Shared", strength="5 mg", form="tablet", price_cents=300, prescription_only=False
                ),
                dict,
            )
        )["id"]
        await rpc.ask(
            SetStock(
                pharmacy_id=pharmacy["id"], medication_id=medication, quantity=1000, actor_is_admin=True
            ),
            StockView,
        )
        orders = [order_for(medication) for _ in range(90)]

        # A second replica joins while orders arrive: the first gives it half, nothing is lost meanwhile.
        for order in orders[:10]:
            await probe.publish(order, correlation_id=order.order_id)
        second = await running(build(settings))
        for order in orders[10:30]:
            await probe.publish(order, correlation_id=order.order_id)
        await eventually(
            lambda: _split(first, second), lambda split: split, what="the partitions shared", timeout=15
        )
        assert first.consuming | second.consuming == ALL
        assert not first.consuming & second.consuming
        taken_before = second.events.taken
        for order in orders[30:50]:
            await probe.publish(order, correlation_id=order.order_id)
        await eventually(lambda: _decided(probe), lambda found: found >= 50, what="50 decisions", timeout=30)
        assert second.events.taken > taken_before
        assert first.events.taken > 0

        # The first stops cleanly: the second takes its partitions at its next tick.
        await first.stop()
        await eventually(
            lambda: _consuming(second), lambda parts: parts == ALL, what="all partitions on the second"
        )
        for order in orders[50:70]:
            await probe.publish(order, correlation_id=order.order_id)
        await eventually(lambda: _decided(probe), lambda found: found >= 70, what="70 decisions", timeout=30)

        # A third joins, takes its share, then crashes: no goodbye, its heartbeat just stops.
        third = build(settings)
        await third.start()
        try:
            await eventually(
                lambda: _split(second, third), lambda split: split, what="the partitions shared", timeout=15
            )
            for task in third._tasks:
                task.cancel()
            await third.broker.stop()  # its connection gone: what it held goes back to its queues
            for order in orders[70:]:
                await probe.publish(order, correlation_id=order.order_id)
            await eventually(
                lambda: _consuming(second), lambda parts: parts == ALL, what="the crashed one's partitions"
            )
            await eventually(
                lambda: _decided(probe), lambda found: found >= 90, what="90 decisions", timeout=30
            )
        finally:
            with contextlib.suppress(Exception):
                await third.stop()

    # Every order decided once: as many decisions as orders, each order's once.
    decided = [e.correlation_id for e in probe.of_type(StockReserved)]
    decided += [e.correlation_id for e in probe.of_type(StockReservationFailed)]
    assert sorted(decided) == sorted(o.order_id for o in orders)
    failed = [(e.correlation_id, e.payload) for e in probe.of_type(StockReservationFailed)]
    assert failed == []
    stored = await stores(second).pharmacies.get(pharmacy["id"])
    assert stored is not None
    assert (stored.stock[medication].available, len(stored.holds)) == (1000 - 90, 90)
    # A replica that stopped says goodbye: its member document is gone; the one at work keeps its own.
    members = [doc["_id"] async for doc in second.db[collection_of(second.name)].find({})]
    assert second.membership is not None
    assert first.membership is not None
    assert second.membership.id in members
    assert first.membership.id not in members


async def test_a_replica_draining_a_partition_it_gives_up_stays_live_and_keeps_it_claimed(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    # The drain outlasts the lease several times over: only a heartbeat apart from the handover keeps
    # the others from taking the replica for gone, and the partitions it drains with it.
    settings = namespace.settings(
        InventorySettings,
        event_partitions=4,
        partition_tick_seconds=0.2,
        partition_lease_seconds=2.0,
        partition_drain_seconds=12.0,
    )
    first = await running(build(settings))
    gate = asyncio.Event()
    route = first.events.routes[OrderCreated.TYPE]
    arrived: list[str] = []

    async def held(payload: Any, envelope: Envelope) -> None:
        arrived.append(envelope.correlation_id)
        await gate.wait()
        await route.handler(payload, envelope)

    first.events.routes[OrderCreated.TYPE] = dataclasses.replace(route, handler=held)
    # Spread over the partitions by their order ids: some land in those the first will give up.
    orders = [order_for("med-unknown") for _ in range(12)]
    for order in orders:
        await probe.publish(order, correlation_id=order.order_id)
    await eventually(
        lambda: _count(arrived), lambda held: held == len(orders), what="every order held", timeout=30
    )

    second = await running(build(settings))
    # While the first drains, for two leases: it stays live, and the second takes nothing.
    assert first.membership is not None
    assert second.membership is not None
    watched_until = time.monotonic() + 2 * settings.partition_lease_seconds
    while time.monotonic() < watched_until:
        live = [m.id for m in await second.membership.live()]
        assert first.membership.id in live, "the draining replica was taken for gone"
        assert not second.consuming, f"took {second.consuming} while the first still drained them"
        await asyncio.sleep(0.1)
    assert first.consuming == ALL  # still claimed: what it holds is not handled yet

    gate.set()
    await eventually(
        lambda: _split(first, second), lambda split: split, what="the partitions handed over", timeout=15
    )
    await eventually(lambda: _decided(probe), lambda found: found >= len(orders), what="every order decided")
    decided = [e.correlation_id for e in probe.of_type(StockReservationFailed)]
    assert sorted(decided) == sorted(o.order_id for o in orders)  # each once


async def _count(items: list[str]) -> int:
    await asyncio.sleep(0)
    return len(items)


async def _split(a: Service, b: Service) -> bool:
    await asyncio.sleep(0)
    return len(a.consuming) == 2 and len(b.consuming) == 2 and a.consuming | b.consuming == ALL


async def _consuming(service: Service) -> set[int]:
    await asyncio.sleep(0)
    return set(service.consuming)
