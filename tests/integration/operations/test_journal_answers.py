"""The journal's process answers the operator over RabbitMQ (its RPC queue), on the real broker and
store: the saga the CLI prints, dead letters, a refusal for what it does not know, and its readiness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, dead_letters, eventually, prescription_uploaded, rpc_client

from contracts import commands as c
from contracts import topology
from contracts.base import RpcReply
from contracts.events import OrderCreated, PrescriptionUploaded
from operations.journal import Archiver, JournalSettings
from order_service.app import Settings, build
from service_runtime.errors import CommandRefused
from service_runtime.messaging import AmqpRequester, CommandServer, answer_on
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]


@pytest_asyncio.fixture
async def archiver(namespace: Namespace) -> AsyncIterator[Archiver]:
    # One request at a time: one the journal left unacknowledged would hold up every one after it.
    settings = namespace.settings(
        JournalSettings, journal_database=f"{namespace.name}_journal", prefetch_count=1
    )
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


async def test_a_redrive_failing_halfway_says_what_it_sent_and_what_it_did_not(
    namespace: Namespace,
    probe: EventProbe,
    running: Start,
    archiver: Archiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three uploads dead-lettered while the service had no handler for them; then the fix is deployed.
    service = await running(build(namespace.settings(Settings)))
    route = service.events.routes.pop(PrescriptionUploaded.TYPE)
    uploads = [prescription_uploaded() for _ in range(3)]
    for upload in uploads:
        await probe.publish(upload, correlation_id=upload.order_id)
    queue = topology.event_queue(namespace.name, "order_service")
    letters = await eventually(
        lambda: dead_letters(namespace.backing.rabbitmq_url, queue), lambda f: len(f) == 3, what="3"
    )
    service.events.routes[PrescriptionUploaded.TYPE] = route
    ids = [str(m.message_id) for m in letters]
    publish = aio_pika.Exchange.publish

    async def failing_on_the_second(
        self: aio_pika.Exchange, message: aio_pika.abc.AbstractMessage, *a: Any, **k: Any
    ) -> Any:
        if message.message_id == ids[1]:
            raise ConnectionError("the broker went away")
        return await publish(self, message, *a, **k)

    monkeypatch.setattr(aio_pika.Exchange, "publish", failing_on_the_second)
    async with rpc_client(archiver.settings) as rpc:
        done = await rpc.ask(
            c.RedriveDeadLetters(service="order_service", message_ids=tuple(ids), dry_run=False),
            c.RedriveView,
        )

    assert [r.message_id for r in done.redriven] == [ids[0], ids[2]]
    [failed] = done.failed
    assert (failed.message_id, failed.service, failed.queue) == (ids[1], "order_service", queue)
    assert "ConnectionError: the broker went away" in failed.reason
    assert "still a dead letter" in failed.reason
    assert done.not_found == ()
    assert [m.message_id for m in await dead_letters(namespace.backing.rabbitmq_url, queue)] == [ids[1]]


async def test_the_journal_refuses_a_malformed_request_and_a_write_and_drops_one_nobody_waits_for(
    namespace: Namespace, archiver: Archiver
) -> None:
    queue = topology.rpc_queue(namespace.name, topology.JOURNAL)
    requester = AmqpRequester(archiver.settings.rabbitmq_url, namespace.name)
    await requester.start()
    try:
        malformed = await requester.request(
            b"{not json", queue=queue, message_type=c.GetSagaTimeline.TYPE, timeout=10
        )
        write = await requester.request(
            c.CancelOrder(owner_id=None, order_id="o-1").model_dump_json().encode(),
            queue=queue,
            message_type=c.CancelOrder.TYPE,
            timeout=10,
        )
        # No reply_to: nobody to answer, and the request is acked all the same.
        await (await requester._publisher.channel()).default_exchange.publish(
            aio_pika.Message(b"{}", type="Ping"), routing_key=queue
        )
        async with rpc_client(archiver.settings) as rpc:
            ready = await rpc.readiness(topology.JOURNAL)  # answered: nothing holds the one prefetch slot
    finally:
        await requester.stop()

    invalid = RpcReply.model_validate_json(malformed).error
    assert invalid is not None
    assert invalid.code == "invalid"
    refused = RpcReply.model_validate_json(write).error
    assert refused is not None
    assert (refused.code, refused.detail) == ("invalid", "journal knows no command 'CancelOrder'")
    assert ready is not None
    assert ready["status"] == "ready"


async def test_a_request_whose_reply_cannot_be_sent_does_not_hold_up_the_next(namespace: Namespace) -> None:
    server = CommandServer("test")

    @server.on(c.ListDeadLetters)
    async def unsendable(command: c.ListDeadLetters) -> Any:
        return object()  # no JSON for it: the reply fails to be made

    @server.on(c.CancelOrder)
    async def cancel(command: c.CancelOrder) -> Any:
        raise AssertionError("a write is never answered on an RPC queue")

    connection = await aio_pika.connect(namespace.backing.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)
        queue = await channel.declare_queue(f"{namespace.name}.test.rpc", auto_delete=True)
        await answer_on(channel, queue, server)
        requester = AmqpRequester(namespace.backing.rabbitmq_url, namespace.name)
        await requester.start()
        try:
            with pytest.raises(TimeoutError):
                await requester.request(
                    b"{}", queue=queue.name, message_type=c.ListDeadLetters.TYPE, timeout=2
                )
            pinged = await requester.request(b"{}", queue=queue.name, message_type="Ping", timeout=10)
            write = await requester.request(
                c.CancelOrder(owner_id=None, order_id="o-1").model_dump_json().encode(),
                queue=queue.name,
                message_type=c.CancelOrder.TYPE,
                timeout=10,
            )
        finally:
            await requester.stop()

    assert RpcReply.model_validate_json(pinged).data == {"service": "test"}
    refused = RpcReply.model_validate_json(write).error
    assert refused is not None
    assert (refused.code, refused.detail) == ("internal", "CancelOrder writes: not answered here")
