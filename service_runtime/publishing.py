"""Publishing with confirms through a broker node's outage: a channel of its own, replaced on a nack.

RabbitMQ 3.10 keeps, per channel, the state of its publishing to each quorum queue. After the node
leading one stopped, a channel can go on nacking every publish to that queue until the node is back
(80-90 s in make cluster-test), though the queue has a new leader and a new channel publishes to it at
once. So a nacked message is sent once more on a new channel, which the publishes after it use too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError, PublishError

log = logging.getLogger(__name__)

# How an exchange is had on a new channel: looked up by default (the topology declared it at start).
Declare = Callable[[AbstractChannel, str], Awaitable[AbstractExchange]]


async def _existing(channel: AbstractChannel, name: str) -> AbstractExchange:
    return await channel.get_exchange(name, ensure=False)


class ConfirmedChannel:
    """Publishes messages mandatory and confirmed, on a publishing channel of its own.

    A nack replaces the channel (once, however many publishes were nacked on it together) and the nacked
    message goes out again on the new one; a second nack raises DeliveryError, as an unroutable message
    raises PublishError at once. The old channel is closed after `linger` seconds, once the publishes
    still waiting for its confirms are done.
    """

    def __init__(
        self,
        connection: Callable[[], AbstractConnection],
        *,
        declare: Declare = _existing,
        linger: float = 30.0,
    ) -> None:
        self._connection = connection
        self._declare = declare
        self.linger = linger
        self._channel: AbstractChannel | None = None
        # The exchanges had on the channel now in use, by name ("" is the default exchange).
        self._exchanges: dict[str, AbstractExchange] = {}
        self._renewing = asyncio.Lock()
        # Channels given up after a nack and still lingering, each with the task that closes it.
        self._retiring: dict[AbstractChannel, asyncio.Task[None]] = {}
        # How many messages were nacked and sent again on a new channel (read by tests and the logs).
        self.renewed = 0

    async def _open(self) -> AbstractChannel:
        # Confirms and returns: a message no queue takes fails at once, not at a timeout.
        return await self._connection().channel(publisher_confirms=True, on_return_raises=True)

    async def channel(self) -> AbstractChannel:
        """The publishing channel now in use, opened on first use."""
        if self._channel is None:
            async with self._renewing:
                if self._channel is None:
                    self._channel = await self._open()
        return self._channel

    async def publish(self, message: aio_pika.Message, *, exchange: str, routing_key: str) -> None:
        """Publish, mandatory and confirmed; a message the broker nacks is sent once more on a new channel."""
        try:
            await self._publish(message, exchange=exchange, routing_key=routing_key)
        except Exception as exc:
            if type(exc) is not Exception:
                raise
            # aiormq fails the confirms a closing channel still waits for with a bare Exception: it is
            # the channel going away (a stop, a retired channel), which callers know to wait out.
            raise ChannelInvalidStateError(f"the channel closed before the broker confirmed: {exc}") from exc

    async def _publish(self, message: aio_pika.Message, *, exchange: str, routing_key: str) -> None:
        channel = await self.channel()
        try:
            await (await self._exchange(channel, exchange)).publish(
                message, routing_key=routing_key, mandatory=True
            )
        except PublishError:
            raise  # returned unroutable: no channel would route it
        except DeliveryError as exc:
            if not isinstance(exc.frame, aiormq.spec.Basic.Nack):
                raise
            log.warning(
                "%s to %s was nacked; sending it again on a new channel",
                message.type,
                exchange or routing_key,
            )
            channel = await self._renew(channel)
            self.renewed += 1
            await (await self._exchange(channel, exchange)).publish(
                message, routing_key=routing_key, mandatory=True
            )

    async def _exchange(self, channel: AbstractChannel, name: str) -> AbstractExchange:
        if not name:
            return channel.default_exchange
        if channel is self._channel and name in self._exchanges:
            return self._exchanges[name]
        declared = await self._declare(channel, name)
        # Cached only if its channel is still the one in use: a renewal during the declare emptied
        # the cache, and an exchange of the retired channel must not come back into it.
        if channel is self._channel:
            self._exchanges[name] = declared
        return declared

    async def _renew(self, nacked: AbstractChannel) -> AbstractChannel:
        async with self._renewing:  # publishes nacked together open one channel, not one each
            if self._channel is nacked:
                self._channel = await self._open()
                self._exchanges = {}
                self._retiring[nacked] = asyncio.create_task(self._retire(nacked))
            assert self._channel is not None
            return self._channel

    async def _retire(self, channel: AbstractChannel) -> None:
        await asyncio.sleep(self.linger)
        self._retiring.pop(channel, None)
        with contextlib.suppress(Exception):
            await channel.close()

    async def close(self) -> None:
        """Close the channel in use and those lingering after a renewal, now."""
        async with self._renewing:  # no renewal opens a channel after this one was closed
            channels = [self._channel, *self._retiring]
            for task in self._retiring.values():
                task.cancel()
            self._channel, self._exchanges, self._retiring = None, {}, {}
        for channel in channels:
            if channel is not None:
                # Closed also while the connection is away: a robust channel would come back with it.
                with contextlib.suppress(Exception):
                    await channel.close()
