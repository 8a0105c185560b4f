"""One caller's requests are answered side by side, not one after another.

FastStream 0.7.8's broker.request() holds a broker-wide lock for the whole round trip, so a gateway
built on it ran one RPC at a time; AmqpRequester must not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import Namespace

from contracts.base import Envelope, Event
from contracts.commands import GetOrder
from contracts.topology import REBUILT_FROM_OWN, SUBSCRIPTIONS
from order_service.app import Settings
from service_runtime.messaging import AmqpRequester, RpcClient
from service_runtime.service import Service

pytestmark = pytest.mark.integration


async def test_one_callers_requests_are_served_concurrently(namespace: Namespace, running: Any) -> None:
    settings = namespace.settings(Settings)
    service = Service("order_service", settings)
    in_flight = 0
    most_at_once = 0

    async def ignore(event: Event, envelope: Envelope) -> None:
        return None

    for event_type in SUBSCRIPTIONS["order_service"]:
        service.events.on(event_type)(ignore)
    for event_type in REBUILT_FROM_OWN["order_service"]:
        service.events.on_own(event_type)(ignore)

    @service.commands.on(GetOrder)
    async def get_order(command: GetOrder) -> dict[str, str]:
        nonlocal in_flight, most_at_once
        in_flight += 1
        most_at_once = max(most_at_once, in_flight)
        await asyncio.sleep(0.2)  # a slow answer: the other requests must not wait behind it
        in_flight -= 1
        return {"order_id": command.order_id}

    await running(service)
    requester = AmqpRequester(settings.rabbitmq_url, settings.broker_namespace)
    await requester.start()
    try:
        rpc = RpcClient(requester, settings)
        answers = await asyncio.gather(
            *(rpc.ask(GetOrder(owner_id=None, order_id=f"o-{i}"), dict) for i in range(8))
        )
    finally:
        await requester.stop()

    assert answers == [{"order_id": f"o-{i}"} for i in range(8)]
    assert most_at_once > 1
