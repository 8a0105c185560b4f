"""Two replicas of one service on a real broker and store: both at work, and no update lost.

Each replica is the active consumer of its own partitions and stands by for the other's. Orders are
spread over the partitions by their id, so both replicas reserve at one pharmacy at the same time:
the store's conditional update of the pharmacy's document is what keeps its stock right.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, rpc_client

from contracts.commands import CreateMedication, CreatePharmacy, SetStock, StockView
from contracts.events import Location, OrderCreated, PrescribedLine, StockReservationFailed, StockReserved
from inventory_service.app import build
from inventory_service.handlers import InventorySettings
from inventory_service.store import stores
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]
HERE = Location(latitude=48.8566, longitude=2.3522)
ORDERS = 60
# Fewer units than orders: the last ones are raced for, and each may be held once.
SHELF = 25


def order_for(medication_id: str) -> OrderCreated:
    return OrderCreated(
        order_id=str(uuid4()),
        prescription_id=str(uuid4()),
        patient_id=f"patient-{uuid4().hex[:8]}",
        lines=(PrescribedLine(medication_id=medication_id, quantity=1),),
        delivery_location=HERE,
        payment_method_id="pm-1",
    )


async def test_two_replicas_race_for_the_last_units_and_neither_oversells_nor_loses_one(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    def replica(index: int) -> InventorySettings:
        return namespace.settings(
            InventorySettings, replica_index=index, replica_count=2, standby_after_seconds=2.0
        )

    replicas = [await running(build(replica(0))), await running(build(replica(1)))]
    settings = replica(0)
    async with rpc_client(settings) as rpc:
        pharmacy = await rpc.ask(CreatePharmacy(name="Centrale", address="1 Rue", location=HERE), dict)
        raced, restocked = [
            (
                await rpc.ask(
                    CreateMedication(
                        name=name, strength="5 mg", form="tablet", price_cents=300, prescription_only=False
                    ),
                    dict,
                )
            )["id"]
            for name in ("Raced", "Restocked")
        ]
        await rpc.ask(
            SetStock(pharmacy_id=pharmacy["id"], medication_id=raced, quantity=SHELF, actor_is_admin=True),
            StockView,
        )
        orders = [order_for(raced) for _ in range(ORDERS)]
        # The standby consumers are in place once both replicas had their time to take their own.
        await asyncio.sleep(2.5)

        # Reservations (events on every partition) and restocking (writes on the pharmacy's), at once.
        half = ORDERS // 2
        for n, order in enumerate(orders[:half]):
            await probe.publish(order, correlation_id=order.order_id)
            if n % 4 == 0:
                await rpc.ask(
                    SetStock(
                        pharmacy_id=pharmacy["id"], medication_id=restocked, quantity=n, actor_is_admin=True
                    ),
                    StockView,
                )
        await eventually(lambda: _decided(probe), lambda found: found >= half, what=f"{half} decisions")
        # Both replicas were at work, each on its own partitions.
        assert all(r.events.taken > 0 for r in replicas), [r.events.taken for r in replicas]

        # The first replica stops: the second takes its partitions over where it left off.
        await replicas[0].stop()
        for n, order in enumerate(orders[half:], start=half):
            await probe.publish(order, correlation_id=order.order_id)
            if n % 4 == 0:
                await rpc.ask(
                    SetStock(
                        pharmacy_id=pharmacy["id"], medication_id=restocked, quantity=n, actor_is_admin=True
                    ),
                    StockView,
                )
        await eventually(
            lambda: _decided(probe), lambda found: found >= ORDERS, what=f"{ORDERS} decisions", timeout=30
        )

    survivor = replicas[1]
    stored = await stores(survivor).pharmacies.get(pharmacy["id"])
    assert stored is not None
    level = stored.stock[raced]
    # Every unit held once, none twice, none lost; every hold is a reservation announced.
    assert (level.available, level.reserved, len(stored.holds)) == (0, SHELF, SHELF)
    reserved = {e.correlation_id for e in probe.of_type(StockReserved)}
    failed = {e.correlation_id for e in probe.of_type(StockReservationFailed)}
    assert (len(reserved), len(failed)) == (SHELF, ORDERS - SHELF)
    assert reserved | failed == {o.order_id for o in orders}
    assert set(stored.holds) == reserved
    # The restocking writes of the same document were not lost between the reservations either.
    assert stored.stock[restocked].available == max(n for n in range(ORDERS) if n % 4 == 0)
    states = [r.state for r in await stores(survivor).reservations.find({})]
    assert sorted(states) == sorted(["RESERVED"] * SHELF + ["FAILED"] * (ORDERS - SHELF))


async def _decided(probe: EventProbe) -> int:
    return len(probe.of_type(StockReserved)) + len(probe.of_type(StockReservationFailed))
