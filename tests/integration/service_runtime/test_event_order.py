"""A service handles one order's events one at a time, in the order they were published, and different
orders' events at the same time.

The saga relies on the first (StockReserved before OrderCancelled for one order must not race), and it
is easy to lose: aiormq runs each delivery as a task, so only the consumer's lock per partition key
keeps one order's events apart while the partition's prefetch lets others through.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from conftest import EventProbe, Namespace

from contracts.base import Envelope, Event
from contracts.events import PaymentRefunded
from contracts.topology import REBUILT_FROM_OWN, SUBSCRIPTIONS
from order_service.app import Settings
from service_runtime.service import Service

pytestmark = pytest.mark.integration

ORDERS = 20
EVENTS_EACH = 30


async def test_one_orders_events_are_handled_in_order_one_at_a_time_and_other_orders_meanwhile(
    namespace: Namespace, running: Any, probe: EventProbe
) -> None:
    service = Service("order_service", namespace.settings(Settings))
    handled: dict[str, list[int]] = defaultdict(list)
    in_flight: dict[str, int] = defaultdict(int)
    overlaps = 0
    most_at_once = 0
    done = asyncio.Event()

    async def record(event: Event, envelope: Envelope) -> None:
        nonlocal overlaps, most_at_once
        order_id = envelope.correlation_id
        in_flight[order_id] += 1
        overlaps += in_flight[order_id] > 1
        most_at_once = max(most_at_once, sum(in_flight.values()))
        # Long enough for a second delivery of the same order to overlap, were it allowed; the first
        # events of an order take longest, so a later one would overtake them if it could.
        assert isinstance(event, PaymentRefunded)
        await asyncio.sleep(0.002 * (EVENTS_EACH - event.amount_cents))
        handled[order_id].append(event.amount_cents)
        in_flight[order_id] -= 1
        if sum(map(len, handled.values())) == ORDERS * EVENTS_EACH:
            done.set()

    for event_type in SUBSCRIPTIONS["order_service"]:
        service.events.on(event_type)(record)
    for event_type in REBUILT_FROM_OWN["order_service"]:
        service.events.on_own(event_type)(record)
    # The events wait in the partitions before the service takes them: it is handed a burst of a
    # prefetch's worth at once, as after a restart, which is where order was lost once.
    await service.broker.connect()
    await service.topology.declare(service.broker)
    orders = [f"order-{i:02d}" for i in range(ORDERS)]
    for n in range(EVENTS_EACH):
        for order_id in orders:
            refund = PaymentRefunded(payment_id="p", order_id=order_id, amount_cents=n, reason="test")
            await probe.publish(refund, correlation_id=order_id)
    await running(service)
    await asyncio.wait_for(done.wait(), 60)

    assert overlaps == 0
    assert handled == {order_id: list(range(EVENTS_EACH)) for order_id in orders}
    # Orders on different partitions, and different orders within one, were handled side by side.
    assert most_at_once > 1
