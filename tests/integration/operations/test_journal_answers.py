"""The journal's process answers the operator over RabbitMQ (its RPC queue), on the real broker and
store: the saga the CLI prints, dead letters, a refusal for what it does not know, and its readiness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, prescription_uploaded, rpc_client

from contracts import commands as c
from contracts import topology
from contracts.events import OrderCreated
from operations.journal import Archiver, JournalSettings
from order_service.app import Settings, build
from service_runtime.errors import CommandRefused
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]


@pytest_asyncio.fixture
async def archiver(namespace: Namespace) -> AsyncIterator[Archiver]:
    settings = namespace.settings(JournalSettings, journal_database=f"{namespace.name}_journal")
    running = Archiver(settings)
    await running.start()
    yield running
    await running.stop()


async def test_the_journal_answers_a_sagas_timeline_and_its_readiness_over_rabbitmq(
    namespace: Namespace, probe: EventProbe, running: Start, archiver: Archiver
) -> None:
    await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    await probe.publish(upload, correlation_id=upload.order_id)
    await probe.wait_for(OrderCreated, correlation_id=upload.order_id)
    await eventually(
        lambda: archiver.journal.find(correlation_id=upload.order_id), lambda f: len(f) == 2, what="both"
    )

    async with rpc_client(archiver.settings) as rpc:
        saga = await rpc.ask(c.GetSagaTimeline(order_id=upload.order_id), c.SagaTimelineView)
        letters = await rpc.ask(c.ListDeadLetters(service="order_service"), list[c.DeadLetterView])
        ready = await rpc.readiness(topology.JOURNAL)
        with pytest.raises(CommandRefused) as unknown:
            await rpc.ask(c.GetSagaTimeline(order_id="no-such-order"), c.SagaTimelineView)
        with pytest.raises(CommandRefused) as missing:
            await rpc.ask(
                c.GetDeadLetter(service="order_service", message_id="nowhere"), c.DeadLetterDetailView
            )

    assert [s.type for s in saga.steps] == ["PrescriptionUploaded", "OrderCreated"]
    assert saga.steps[1].publisher == "order_service"
    assert (saga.ended, saga.waiting) == (None, None)
    assert letters == []
    assert ready == {"service": "journal", "status": "ready", "checks": {"broker": "up", "store": "up"}}
    assert unknown.value.code == "not_found"
    assert missing.value.code == "not_found"
