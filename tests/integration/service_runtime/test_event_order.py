"""A service handles the events of its queue one at a time, in the order they were published.

The saga relies on it (StockReserved before OrderCancelled for one order must not race), and it is
easy to lose: aiormq runs each delivery as a task, so only a prefetch of one on the consuming
channel keeps them apart.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import EventProbe, Namespace

from contracts.base import Envelope, Event
from contracts.events import PaymentRefunded
from contracts.topology import REBUILT_FROM_OWN, SUBSCRIPTIONS
from order_service.app import Settings
from service_runtime.service import Service

pytestmark = pytest.mark.integration


async def test_events_of_one_queue_are_handled_one_at_a_time_in_order(
    namespace: Namespace, running: Any, probe: EventProbe
) -> None:
    service = Service("order_service", namespace.settings(Settings))
    handled: list[str] = []
    in_flight = 0
    most_at_once = 0
    done = asyncio.Event()

    async def record(event: Event, envelope: Envelope) -> None:
        nonlocal in_flight, most_at_once
        in_flight += 1
        most_at_once = max(most_at_once, in_flight)
        await asyncio.sleep(0.02)  # long enough for a second delivery to overlap, were it allowed
        handled.append(envelope.correlation_id)
        in_flight -= 1
        if len(handled) == 20:
            done.set()

    for event_type in SUBSCRIPTIONS["order_service"]:
        service.events.on(event_type)(record)
    for event_type in REBUILT_FROM_OWN["order_service"]:
        service.events.on_own(event_type)(record)
    await running(service)

    sent = [f"order-{i:02d}" for i in range(20)]
    for correlation_id in sent:
        refund = PaymentRefunded(payment_id="p", order_id=correlation_id, amount_cents=1, reason="test")
        await probe.publish(refund, correlation_id=correlation_id)
    await asyncio.wait_for(done.wait(), 20)

    assert most_at_once == 1
    assert handled == sent
