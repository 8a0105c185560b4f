"""Publishing through a nack: RabbitMQ 3.10 can go on nacking, on one channel, every publish to a quorum
queue whose leader's node stopped, until that node is back (80-90 s in make cluster-test), while a new
channel publishes to the queue's new leader at once. A nacked message is sent again on a new channel,
which the publishes after it use too: the gateway's requests and the services' events alike."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import aio_pika
import pytest
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError, PublishError
from conftest import RecordingConnection
from faststream.rabbit import RabbitBroker
from pamqp.commands import Basic

from contracts.base import Envelope
from contracts.events import PaymentRefunded
from service_runtime.messaging import AmqpRequester, EventBus, Topology
from service_runtime.publishing import ConfirmedChannel
from service_runtime.settings import RuntimeSettings

SETTINGS = RuntimeSettings(broker_namespace="unit")
NACK = DeliveryError(None, Basic.Nack(delivery_tag=1, multiple=True))
REFUND = PaymentRefunded(payment_id="pay-1", order_id="order-1", amount_cents=1039, reason="cancelled")


def requester_on(refusals: list[Exception | None]) -> tuple[AmqpRequester, RecordingConnection]:
    requester = AmqpRequester("amqp://unused/", "unit")

    async def answer(message: aio_pika.Message) -> None:  # the service answers at once
        reply = SimpleNamespace(correlation_id=message.correlation_id, body=b"ok")
        await requester._on_reply(cast(Any, reply))

    connection = RecordingConnection(refusals, answer)
    requester._connection = cast(Any, connection)
    return requester, connection


async def ask(requester: AmqpRequester) -> bytes:
    return await requester.request(b"{}", queue="q", message_type="PickUpDelivery", timeout=1.0)


async def test_a_nacked_request_is_sent_again_on_a_new_channel_which_the_next_requests_use() -> None:
    requester, connection = requester_on([NACK, None])
    requester._publisher.linger = 0.01

    assert await ask(requester) == b"ok"
    assert await ask(requester) == b"ok"

    stuck, fresh = connection.opened
    assert len(stuck.published) == 1
    assert len(fresh.published) == 2
    assert requester.renewed == 1
    await asyncio.sleep(0.05)  # the lingering is over: the nacking channel is closed
    assert stuck.closed
    assert not fresh.closed


async def test_a_request_nacked_on_the_new_channel_too_fails_as_unreachable() -> None:
    requester, connection = requester_on([NACK, NACK])

    with pytest.raises(DeliveryError):
        await ask(requester)
    assert [len(c.published) for c in connection.opened] == [1, 1]


async def test_a_returned_request_is_not_sent_again() -> None:
    returned = PublishError.__new__(PublishError)
    requester, connection = requester_on([returned, None])

    with pytest.raises(PublishError):
        await ask(requester)
    assert len(connection.opened) == 1


async def test_requests_nacked_together_open_one_new_channel() -> None:
    requester, connection = requester_on([NACK, None])

    answers = await asyncio.gather(ask(requester), ask(requester), ask(requester))

    assert list(answers) == [b"ok"] * 3
    # All three went out on the first channel and were nacked there; one renewal, all three sent again.
    assert [len(c.published) for c in connection.opened] == [3, 3]
    assert requester.renewed == 3


async def test_an_exchange_declared_across_a_renewal_is_not_cached_for_the_new_channel() -> None:
    connection = RecordingConnection([None, None])
    answered = asyncio.Event()

    async def slow_declare(channel: Any, name: str) -> Any:
        await answered.wait()  # the broker's answer to the declare comes late
        return await channel.declare_exchange(name)

    publisher = ConfirmedChannel(lambda: cast(Any, connection), declare=slow_declare)
    old = await publisher.channel()
    declaring = asyncio.create_task(publisher._exchange(old, "x.partitions"))
    await asyncio.sleep(0)  # the declare is on its way on the old channel...
    new = await publisher._renew(old)  # ...when another publish is nacked and the channel renewed
    answered.set()
    await declaring

    exchange = await publisher._exchange(new, "x.partitions")

    assert cast(Any, exchange).channel is new


async def test_a_confirm_failed_by_a_closing_channel_is_the_channel_gone_not_a_crash() -> None:
    closing = Exception(None)  # what aiormq fails a closing channel's pending confirms with
    publisher = ConfirmedChannel(lambda: cast(Any, RecordingConnection([closing])))

    with pytest.raises(ChannelInvalidStateError):
        await publisher.publish(aio_pika.Message(b"{}"), exchange="", routing_key="q")


async def test_closing_closes_the_lingering_channels_too() -> None:
    connection = RecordingConnection([NACK, None])
    publisher = ConfirmedChannel(lambda: cast(Any, connection))
    await publisher.publish(aio_pika.Message(b"{}"), exchange="", routing_key="q")

    await publisher.close()

    assert [c.closed for c in connection.opened] == [True, True]


async def test_a_nacked_event_is_published_again_on_a_new_channel_of_the_services_connection() -> None:
    connection = RecordingConnection([NACK, None])
    bus = EventBus(
        cast(RabbitBroker, SimpleNamespace(_connection=connection)), Topology(SETTINGS), "payment_service"
    )
    envelope = Envelope.wrap(REFUND, correlation_id="order-1").model_dump(mode="json")

    await bus.publish(envelope)
    await bus.publish(envelope)

    stuck, fresh = connection.opened
    assert [(e, k) for e, k, _ in stuck.published] == [("unit.events", "payment.refunded")]
    assert len(fresh.published) == 2
    assert bus.channel.renewed == 1
    message = fresh.published[0][2]
    assert (message.message_id, message.correlation_id, message.type) == (
        envelope["event_id"],
        "order-1",
        "PaymentRefunded",
    )
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.headers["x-partition-key"] == "order-1"
    assert message.headers["x-publisher"] == "payment_service"
    await bus.channel.close()
    assert fresh.closed


async def test_publishing_before_the_broker_connected_is_unreachable_for_now() -> None:
    bus = EventBus(cast(RabbitBroker, SimpleNamespace(_connection=None)), Topology(SETTINGS))

    with pytest.raises(ConnectionError):
        await bus.publish(Envelope.wrap(REFUND, correlation_id="order-1").model_dump(mode="json"))
