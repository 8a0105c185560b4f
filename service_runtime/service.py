"""A back-end service: a broker, its own database, an event consumer, a command server and a relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from faststream.middlewares import AckPolicy
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from contracts.base import Envelope, Event
from service_runtime.aggregate import Aggregate
from service_runtime.errors import ConcurrentModification, RetryLater
from service_runtime.locks import KeyedLock
from service_runtime.logs import setup_logging
from service_runtime.messaging import CommandServer, EventBus, EventConsumer, Topology, make_broker
from service_runtime.outbox import OutboxRelay
from service_runtime.settings import RuntimeSettings
from service_runtime.store import Document, Repository, connect

log = logging.getLogger(__name__)
A = TypeVar("A", bound=Aggregate)


class Service:
    """Everything one back-end service needs, wired once. `app.py` of each service builds one."""

    def __init__(self, name: str, settings: RuntimeSettings) -> None:
        self.name = name
        self.settings = settings
        self.broker = make_broker(settings)
        self.topology = Topology(settings)
        self.client = connect(settings)
        self.db: AsyncDatabase[Document] = self.client[settings.mongodb_database]
        self.bus = EventBus(self.broker, self.topology)
        self.relay = OutboxRelay(
            self.bus, sweep_seconds=settings.outbox_sweep_seconds, retry_seconds=settings.outbox_retry_seconds
        )
        self.events = EventConsumer(name, self.broker, self.topology, settings)
        self.commands = CommandServer(name)
        self.locks = KeyedLock()
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def repository(self, collection: str, model: type[A]) -> Repository[A]:
        coll: AsyncCollection[Document] = self.db[collection]
        self.relay.watch(coll)
        return Repository(coll, model)

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        self._on_start.append(hook)
        return hook

    async def publish_pending(self, repository: Repository[Any], aggregate_id: str) -> None:
        """Fast path of the outbox: publish what the last write appended, right away."""
        await self.relay.flush(repository.collection, aggregate_id)

    async def change(
        self,
        repository: Repository[A],
        aggregate_id: str,
        decide: Callable[[A], Sequence[Event]],
        *,
        cause: Envelope | None,
        correlation_id: str | None = None,
    ) -> A:
        """Apply one decision to one aggregate, at most once per causing event, and publish its events.

        Holds the aggregate's lock, skips a cause already applied (redelivery), retries on a concurrent
        write, and raises RetryLater while the aggregate does not exist yet.
        """
        # Publish at once what this change added, or what a crashed attempt left behind. A change that
        # caused no event has nothing to publish; older leftovers are the sweeper's.
        publish = True
        async with self.locks.hold(f"{repository.collection.name}/{aggregate_id}"):
            for _ in range(5):
                aggregate = await repository.get(aggregate_id)
                if aggregate is None:
                    raise RetryLater(f"{repository.collection.name}/{aggregate_id} does not exist (yet)")
                if cause is not None and aggregate.has_processed(str(cause.event_id)):
                    log.info("%s already applied to %s: acknowledging only", cause.type, aggregate_id)
                    break
                events = decide(aggregate)
                envelopes = wrap(
                    events, cause, correlation_id or (cause.correlation_id if cause else aggregate_id)
                )
                try:
                    await repository.save(
                        aggregate, envelopes, caused_by=str(cause.event_id) if cause else None
                    )
                except ConcurrentModification:
                    continue
                publish = bool(envelopes)
                break
            else:
                raise ConcurrentModification(f"{aggregate_id}: too many concurrent writers")
        if publish:
            await self.publish_pending(repository, aggregate_id)
        return aggregate

    async def start(self) -> None:
        self.events.check_against_topology()
        for hook in self._on_start:
            await hook()
        await self.broker.connect()
        await self.topology.declare(self.broker)
        if self.events.routes:
            self.broker.subscriber(
                self.topology.event_queue(self.name),
                ack_policy=AckPolicy.MANUAL,
                channel=self.topology.event_channel,
            )(self.events.consume)
        self.broker.subscriber(self.topology.rpc_queue(self.name), ack_policy=AckPolicy.ACK)(
            self.commands.answer
        )
        await self.broker.start()
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox"))
        # Events a previous run saved but did not publish go out now, not after the first sweep.
        await self.relay.sweep(older_than=timedelta(0))
        log.info("%s started (namespace %s, database %s)", self.name, self.topology.namespace, self.db.name)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.broker.stop()
        await self.client.close()
        log.info("%s stopped", self.name)

    async def run_forever(self) -> None:
        setup_logging(self.name, self.settings.log_level)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop()


def wrap(events: Sequence[Event], cause: Envelope | None, correlation_id: str) -> list[Envelope]:
    """Envelopes for the events a change caused, carrying the saga's correlation and the cause's id."""
    causation = str(cause.event_id) if cause else None
    return [Envelope.wrap(e, correlation_id=correlation_id, causation_id=causation) for e in events]
