"""The gateway's requests through a nack: RabbitMQ 3.10 can go on nacking, on one channel, every publish
to a quorum queue whose leader's node stopped, until that node is back (80-90 s in make cluster-test),
while a new channel publishes to the queue's new leader at once. A nacked request is sent again on a new
channel, which the requests after it use too."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiormq.exceptions import DeliveryError, PublishError
from pamqp.commands import Basic

from service_runtime.messaging import AmqpRequester


class Exchange:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def publish(self, message: Any, *, routing_key: str, mandatory: bool) -> None:
        self.channel.published.append(message.correlation_id)
        if self.channel.refusal is not None:
            raise self.channel.refusal
        # The service answers at once.
        answer = SimpleNamespace(correlation_id=message.correlation_id, body=b"ok")
        await self.channel.requester._on_reply(answer)  # type: ignore[arg-type]


class Channel:
    def __init__(self, requester: AmqpRequester, refusal: Exception | None) -> None:
        self.requester = requester
        self.refusal = refusal
        self.published: list[str] = []
        self.closed = False
        self.default_exchange = Exchange(self)

    async def close(self) -> None:
        self.closed = True


class Connection:
    """Opens channels that refuse with the next of `refusals` (None: accepts)."""

    def __init__(self, requester: AmqpRequester, refusals: list[Exception | None]) -> None:
        self.requester = requester
        self.refusals = refusals
        self.opened: list[Channel] = []

    async def channel(self, **_: Any) -> Channel:
        opened = Channel(self.requester, self.refusals.pop(0))
        self.opened.append(opened)
        return opened


def requester_on(refusals: list[Exception | None]) -> tuple[AmqpRequester, Connection]:
    requester = AmqpRequester("amqp://unused/", "unit")
    connection = Connection(requester, refusals)
    requester._connection = connection  # type: ignore[assignment]
    return requester, connection


NACK = DeliveryError(None, Basic.Nack(delivery_tag=1, multiple=True))


async def ask(requester: AmqpRequester) -> bytes:
    return await requester.request(b"{}", queue="q", message_type="PickUpDelivery", timeout=1.0)


async def test_a_nacked_request_is_sent_again_on_a_new_channel_which_the_next_requests_use() -> None:
    requester, connection = requester_on([NACK, None])
    requester._channel = await requester._publishing_channel()
    stuck = connection.opened[0]

    assert await ask(requester) == b"ok"
    assert await ask(requester) == b"ok"

    fresh = connection.opened[1]
    assert len(stuck.published) == 1
    assert len(fresh.published) == 2
    assert requester.renewed == 1
    await requester._close_later(cast(Any, stuck), 0)  # what the retirement does once the lingering is over
    assert stuck.closed


async def test_a_request_nacked_on_the_new_channel_too_fails_as_unreachable() -> None:
    requester, connection = requester_on([NACK, NACK])
    requester._channel = await requester._publishing_channel()

    with pytest.raises(DeliveryError):
        await ask(requester)
    assert [len(c.published) for c in connection.opened] == [1, 1]


async def test_a_returned_request_is_not_sent_again() -> None:
    returned = PublishError.__new__(PublishError)
    requester, connection = requester_on([returned, None])
    requester._channel = await requester._publishing_channel()

    with pytest.raises(PublishError):
        await ask(requester)
    assert len(connection.opened) == 1
