"""Two replicas of one service on a real broker and store: still one writer per aggregate.

FerretDB does not make a read-modify-write atomic between connections, so two replicas applying
messages about one pharmacy at once would lose updates. The event queue has a single active consumer,
and write commands queue with the events, so every write to the pharmacy happens in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, rpc_client

from contracts.commands import CreateMedication, CreatePharmacy, SetStock, StockView
from contracts.events import Location, OrderCreated, PrescribedLine, StockReserved
from inventory_service.app import build
from inventory_service.handlers import InventorySettings
from inventory_service.store import stores
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]
HERE = Location(latitude=48.8566, longitude=2.3522)
ORDERS = 40
SHELF = 500


def order_for(medication_id: str) -> OrderCreated:
    return OrderCreated(
        order_id=str(uuid4()),
        prescription_id=str(uuid4()),
        patient_id=f"patient-{uuid4().hex[:8]}",
        lines=(PrescribedLine(medication_id=medication_id, quantity=1),),
        delivery_location=HERE,
        payment_method_id="pm-1",
    )


async def test_two_replicas_apply_events_and_writes_to_one_pharmacy_one_at_a_time(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    settings = namespace.settings(InventorySettings)
    replicas = [await running(build(settings)), await running(build(settings))]
    async with rpc_client(settings) as rpc:
        pharmacy = await rpc.ask(CreatePharmacy(name="Centrale", address="1 Rue", location=HERE), dict)
        reserved_one, restocked = [
            (
                await rpc.ask(
                    CreateMedication(
                        name=name, strength="5 mg", form="tablet", price_cents=300, prescription_only=False
                    ),
                    dict,
                )
            )["id"]
            for name in ("Reserved", "Restocked")
        ]
        await rpc.ask(
            SetStock(pharmacy_id=pharmacy["id"], medication_id=reserved_one, quantity=SHELF), StockView
        )
        orders = [order_for(reserved_one) for _ in range(ORDERS)]

        # Reservations (events) and restocking (write commands) of one pharmacy document, interleaved.
        for n, order in enumerate(orders):
            await probe.publish(order, correlation_id=order.order_id)
            if n % 4 == 0:
                await rpc.ask(
                    SetStock(pharmacy_id=pharmacy["id"], medication_id=restocked, quantity=n), StockView
                )
            if n == ORDERS // 2:
                # Only one replica has taken anything: the broker gives the queue to one at a time.
                active = [r for r in replicas if r.events.taken > 0]
                assert len(active) == 1, [r.events.taken for r in replicas]
                await active[0].stop()  # the other replica takes over where it left off
        standby = next(r for r in replicas if r is not active[0])

        await eventually(
            lambda: _count(probe),
            lambda found: found >= ORDERS,
            what=f"{ORDERS} StockReserved",
            timeout=30,
        )
    assert standby.events.taken > 0
    stored = await stores(standby).pharmacies.get(pharmacy["id"])
    assert stored is not None
    level = stored.stock[reserved_one]
    assert (level.available, level.reserved, len(stored.holds)) == (SHELF - ORDERS, ORDERS, ORDERS)
    assert stored.stock[restocked].available == max(n for n in range(ORDERS) if n % 4 == 0)
    assert sorted(e.correlation_id for e in probe.of_type(StockReserved)) == sorted(
        o.order_id for o in orders
    )


async def _count(probe: EventProbe) -> int:
    return len(probe.of_type(StockReserved))
