"""A back-end service: a broker, its own database, an event consumer, a command server and a relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import uuid4

import aio_pika
from aiormq.exceptions import DeliveryError
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitQueue, RabbitResponse
from faststream.rabbit.subscriber import RabbitSubscriber
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from contracts.base import Command, Envelope, Event
from contracts.commands import SweepOutbox
from service_runtime import metrics, tracing
from service_runtime.aggregate import Aggregate
from service_runtime.crypto import FieldCipher
from service_runtime.errors import TRANSIENT, ConcurrentModification, RetryLater, until_up
from service_runtime.locks import KeyedLock
from service_runtime.logs import setup_logging
from service_runtime.membership import Membership, plan
from service_runtime.messaging import (
    CommandServer,
    EventBus,
    EventConsumer,
    Topology,
    make_broker,
    rebuilding,
)
from service_runtime.outbox import OutboxRelay
from service_runtime.settings import RuntimeSettings
from service_runtime.store import Document, Repository, connect

log = logging.getLogger(__name__)
# What leaves a stored change's events in its outbox for the sweep rather than failing the change.
NOT_PUBLISHED_NOW: tuple[type[Exception], ...] = (*TRANSIENT, DeliveryError)
A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Worker:
    server: CommandServer
    concurrency: int
    wait_seconds: float


class Service:
    """Everything one back-end service needs, wired once. `app.py` of each service builds one."""

    def __init__(self, name: str, settings: RuntimeSettings) -> None:
        self.name = name
        self.settings = settings
        self.broker = make_broker(settings)
        self.topology = Topology(settings)
        self.client = connect(settings)
        self.db: AsyncDatabase[Document] = self.client[settings.mongodb_database]
        self.bus = EventBus(self.broker, self.topology, publisher=name)
        self.cipher = FieldCipher.from_settings(settings)
        self.locks = KeyedLock()
        self.relay = OutboxRelay(
            self.bus,
            self._ask_for_sweep,
            self.cipher,
            sweep_seconds=settings.outbox_sweep_seconds,
            retry_seconds=settings.outbox_retry_seconds,
            locks=self.locks,
        )
        self.commands = CommandServer(name)
        self.events = EventConsumer(name, self.broker, self.topology, settings, self.commands)
        self.commands.on(SweepOutbox)(self._sweep)
        self.health = metrics.ServiceHealth(
            name, settings, self.broker, self.db, outbox_backlog=self.relay.backlog
        )
        self.commands.readiness = self.health.readiness.report
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: dict[str, Worker] = {}
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._subscribers: dict[str, RabbitSubscriber] = {}
        self._in_flight: dict[str, int] = {}
        self._idle: dict[str, asyncio.Event] = {}
        # Unnumbered replicas (REPLICA_INDEX unset) share the partitions through their store.
        self.membership = (
            Membership(self.db, name, lease_seconds=settings.partition_lease_seconds)
            if settings.replica_index is None
            else None
        )
        self.consuming: set[int] = set()
        # A heartbeat says which partitions this replica consumes as of its writing: one at a time.
        self._beating = asyncio.Lock()
        self._leaving = False

    def repository(self, collection: str, model: type[A], *, sealed: Sequence[str] = ()) -> Repository[A]:
        """The repository of one collection; `sealed`: the fields of patients' data, kept encrypted."""
        coll: AsyncCollection[Document] = self.db[collection]
        self.relay.watch(coll)
        return Repository(coll, model, self.cipher, sealed=sealed)

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        self._on_start.append(hook)
        return hook

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        self._on_stop.append(hook)
        return hook

    @property
    def workers(self) -> dict[str, CommandServer]:
        """The server of each queue of slow reads, by the queue's name (Command.QUEUE)."""
        return {queue: worker.server for queue, worker in self._workers.items()}

    def worker(self, command: type[Command], *, concurrency: int) -> CommandServer:
        """The server of the queue of a slow read (Command.QUEUE): its own consumer, channel and prefetch
        (`concurrency` at a time per replica), so a slow one never holds the RPC queue or the events.
        A request waits at most the command's QUEUE_SECONDS before the broker drops it."""
        assert command.QUEUE is not None, f"{command.TYPE} has no queue of its own"
        if command.QUEUE not in self._workers:
            self._workers[command.QUEUE] = Worker(
                CommandServer(self.name), concurrency, command.QUEUE_SECONDS
            )
        return self._workers[command.QUEUE].server

    async def publish_pending(self, repository: Repository[Any], aggregate_id: str) -> None:
        """Fast path of the outbox: publish what the last write appended, right away.

        The change is stored with its events by now. If the broker is away, or refuses the publish
        (a nack: a quorum queue between leaders does that), the events wait in the outbox for the sweep
        the relay asks for, and the change still succeeded.
        """
        try:
            await self.relay.flush(
                repository.collection, aggregate_id, repository.written.pop(aggregate_id, None)
            )
        except NOT_PUBLISHED_NOW as exc:
            log.warning("events of %s wait in its outbox: %s: %s", aggregate_id, type(exc).__name__, exc)

    async def _ask_for_sweep(self, older_than: timedelta) -> None:
        """Queue a sweep on this service's first partition, for whichever replica consumes it."""
        # On the events' channel: a sweep is asked for when publishing failed, so likely during a nack.
        sweep = SweepOutbox(older_than_seconds=older_than.total_seconds())
        # An id of its own, as FastStream gave it: the consumer keys its order on it, apart from others.
        request = uuid4().hex
        await self.bus.channel.publish(
            aio_pika.Message(
                sweep.model_dump_json().encode(),
                type=SweepOutbox.TYPE,
                message_id=request,
                correlation_id=request,
                content_type="application/json",
            ),
            exchange="",
            routing_key=self.topology.event_queue(self.name).name,
        )

    async def _sweep(self, command: SweepOutbox) -> None:
        if count := await self.relay.sweep(timedelta(seconds=command.older_than_seconds)):
            log.info("outbox sweep published %d leftover events", count)
            metrics.OUTBOX_SWEPT.labels(self.name).inc(count)

    async def change(
        self,
        repository: Repository[A],
        aggregate_id: str,
        decide: Callable[[A], Sequence[Event]],
        *,
        cause: Envelope | None,
        correlation_id: str | None = None,
        at: datetime | None = None,
    ) -> A:
        """Apply one decision to one aggregate, at most once per causing event, and publish its events.

        Holds the aggregate's lock, skips a cause already applied (redelivery), retries on a concurrent
        write, and raises RetryLater while the aggregate does not exist yet. `at`: when the events
        happened, when the decision stamped the aggregate with the same time (default: now).
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
                    metrics.DUPLICATES_SKIPPED.labels(self.name, cause.type).inc()
                    break
                events = decide(aggregate)
                envelopes = wrap(
                    events, cause, correlation_id or (cause.correlation_id if cause else aggregate_id), at=at
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
        await self.health.start()

        async def prepare_store() -> None:
            await self.relay.ensure_indexes()
            for hook in self._on_start:
                await hook()

        async def connect_broker() -> None:
            await self.broker.connect()
            await self.topology.declare(self.broker)

        # Start in any order: wait for the store and the broker rather than exit.
        await until_up(f"{self.name}'s store", prepare_store)
        await until_up("RabbitMQ", connect_broker)
        # Events and write commands: each partition to one consumer at a time across replicas (single
        # active consumer). This replica's own partitions first; it stands by for the others later.
        own, others = self.partitions()
        if self.membership is None:
            for queue in own:
                self._subscriber(queue)
        self.broker.subscriber(self.topology.rpc_queue(self.name), ack_policy=AckPolicy.ACK)(self._answer)
        for name, worker in self._workers.items():
            self.broker.subscriber(
                self.topology.work_queue(self.name, name, ttl_ms=int(worker.wait_seconds * 1000)),
                ack_policy=AckPolicy.ACK,
                channel=Channel(prefetch_count=worker.concurrency),
            )(self._answerer(worker.server))
        await self.broker.start()
        if self.membership is not None:
            # Unnumbered (a Deployment's pod): take this replica's share now, then follow the members.
            await until_up(f"{self.name}'s partitions", self._rebalance)
            self._tasks.append(asyncio.create_task(self._follow_members(), name=f"{self.name}-members"))
            self._tasks.append(asyncio.create_task(self._heartbeat(), name=f"{self.name}-heartbeat"))
        if others:
            self._tasks.append(asyncio.create_task(self._stand_by(others), name=f"{self.name}-standby"))
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox"))
        # Events a crashed run saved but did not publish go out soon, not after the first periodic sweep.
        await until_up("RabbitMQ", lambda: self._ask_for_sweep(timedelta(0)))
        self.health.started = True
        log.info("%s started (namespace %s, database %s)", self.name, self.topology.namespace, self.db.name)

    def partitions(self) -> tuple[list[RabbitQueue], list[RabbitQueue]]:
        """This replica's partition queues, and the others', which it takes over when theirs is gone.

        The broker makes the first consumer of a queue its active one: replicas started together take
        their own partitions first, so each is active on a share, and standby on the rest.
        """
        queues = self.topology.partition_queues(self.name)
        index, count = self.settings.replica_index, self.settings.replica_count
        if index is None:
            return [], []  # the members' document decides (_rebalance)
        if count == 1:
            return queues, []
        own = [q for k, q in enumerate(queues) if k % count == index % count]
        return own, [q for q in queues if q not in own]

    def _subscriber(self, queue: RabbitQueue) -> RabbitSubscriber:
        """The one subscriber of a partition queue in this process (made once: stopped and started
        again as the partition leaves and comes back)."""
        if queue.name not in self._subscribers:
            subscriber = self.broker.subscriber(
                queue,
                ack_policy=AckPolicy.MANUAL,
                channel=self.topology.event_channel,
                # The consumer answers write commands itself; FastStream would add an empty second reply.
                no_reply=True,
            )
            subscriber(self._taker(queue.name))
            self._subscribers[queue.name] = subscriber
            self._in_flight[queue.name] = 0
            self._idle[queue.name] = asyncio.Event()
        return self._subscribers[queue.name]

    def _taker(self, queue: str) -> Callable[[], Awaitable[None]]:
        async def take() -> None:
            self._in_flight[queue] += 1
            try:
                await self._take_event()
            finally:
                self._in_flight[queue] -= 1
                if not self._in_flight[queue]:
                    self._idle[queue].set()

        return take

    async def _follow_members(self) -> None:
        """Every tick: take or give up partitions as members come and go. An outage of the store or
        broker is waited out; the partitions held are kept meanwhile."""
        while True:
            await asyncio.sleep(self.settings.partition_tick_seconds)
            try:
                await self._rebalance()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("%s: partitions not rebalanced this tick", self.name, exc_info=True)

    async def _heartbeat(self) -> None:
        """Every tick, apart from rebalancing: renew the heartbeat, so a replica draining a partition it
        gives up (PARTITION_DRAIN_SECONDS) is never taken for gone meanwhile; and forget members whose
        documents a crash left behind."""
        assert self.membership is not None
        while True:
            await asyncio.sleep(self.settings.partition_tick_seconds)
            try:
                await self._beat()
                await self.membership.forget_expired()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: heartbeat not renewed this tick: %s: %s", self.name, type(exc).__name__, exc)

    async def _beat(self) -> None:
        assert self.membership is not None
        async with self._beating:  # the partitions as they are when written, not when the beat began
            if not self._leaving:  # a beat after leave() would bring the document back
                await self.membership.beat(self.consuming)

    async def _rebalance(self) -> None:
        membership = self.membership
        assert membership is not None
        await self._beat()
        members = await membership.live()
        release, take = plan(members, membership.id, self.settings.event_partitions, self.consuming)
        queues = self.topology.partition_queues(self.name)
        failed = await self._give_up(release)
        if release:
            await self._beat()  # said before anyone may take them
        if failed:
            raise failed[0]  # the rest stays claimed, and is given up at a later tick
        for k in sorted(take):
            await self._subscriber(queues[k]).start()
            self.consuming.add(k)
        if release or take:
            await self._beat()
            log.info(
                "%s: took %s, released %s: now consumes partitions %s (%d live members)",
                self.name, sorted(take), sorted(release), sorted(self.consuming), len(members),
            )  # fmt: skip
        if len(members) == 1 and not self.consuming and not release:
            log.debug("%s: waiting for partitions still held by a member that left", self.name)

    async def _give_up(self, partitions: set[int]) -> list[BaseException]:
        """Release these partitions together (drained one after another, they could outlast the
        lease): those given up leave `consuming`, the others stay claimed. What failed, if anything."""
        queues = self.topology.partition_queues(self.name)
        order = sorted(partitions)
        results = await asyncio.gather(*(self._release(queues[k]) for k in order), return_exceptions=True)
        self.consuming -= {k for k, result in zip(order, results, strict=True) if result is None}
        return [result for result in results if isinstance(result, BaseException)]

    async def _release(self, queue: RabbitQueue) -> None:
        """Stop taking a partition: cancel the consumer at the broker (no new deliveries), let the
        handlers of what was delivered finish and ack, then stop the subscriber. Stopping it first
        would drop, unacked, what arrives between the two."""
        subscriber = self._subscribers[queue.name]
        # FastStream's subscriber.stop() marks itself stopped before cancelling: deliveries in between
        # would be ignored and left unacknowledged on the channel. So cancel first, by the tag it holds.
        queue_obj, tag = subscriber._queue_obj, subscriber._consumer_tag
        if queue_obj is not None and tag is not None:
            if queue_obj.channel.is_closed:
                # Not given up while the broker is away: the robust channel would bring the consumer
                # back on reconnect, unseen. The tick fails and the partition stays claimed.
                raise ConnectionError(f"{queue.name}: the broker is away; kept for now")
            await queue_obj.cancel(tag)
            subscriber._consumer_tag = None
        if self._in_flight[queue.name]:
            idle = self._idle[queue.name]
            idle.clear()
            try:
                await asyncio.wait_for(idle.wait(), self.settings.partition_drain_seconds)
            except TimeoutError:
                log.warning("%s: %s given up with messages still being handled", self.name, queue.name)
        await subscriber.stop()

    async def _cancel_task(self, name: str) -> None:
        for task in self._tasks:
            if task.get_name() == name:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _answer(self) -> RabbitResponse:
        # As _take_event: no argument for fast_depends to resolve in a task group on every request.
        return await self.commands.answer(self.broker.context.get_local("message"))

    def _answerer(self, server: CommandServer) -> Callable[[], Awaitable[RabbitResponse]]:
        async def answer() -> RabbitResponse:
            return await server.answer(self.broker.context.get_local("message"))

        return answer

    async def _take_event(self) -> None:
        # The delivery from FastStream's context, not a `message: RabbitMessage` argument: fast_depends
        # resolves that in an anyio task group whose exit yields to the loop, and a later delivery of
        # the same aggregate could then take its lock first (seen: 17 of 3000 out of order).
        await self.events.consume(self.broker.context.get_local("message"))

    async def _stand_by(self, queues: Sequence[RabbitQueue]) -> None:
        """After the other replicas had their time to take their own partitions, queue up behind them."""
        await asyncio.sleep(self.settings.standby_after_seconds)
        for queue in queues:
            await until_up(f"standing by on {queue.name}", self._subscriber(queue).start)

    async def stop(self) -> None:
        await self.health.stop()
        if self.membership is not None:
            # No more rebalancing; the heartbeat goes on while the partitions are given up, then stops
            # before leaving (a beat after it would bring the document back). The others take this
            # replica's partitions at their next tick after it left.
            await self._cancel_task(f"{self.name}-members")
            # Give every partition up as a handover does (cancelled at the broker, what is being
            # handled finished), then leave: no delivery is dropped unacked by the subscribers' stop.
            for failed in await self._give_up(set(self.consuming)):
                log.warning("%s: a partition not given up cleanly at stop: %s", self.name, failed)
            self.consuming.clear()
            # Not cancelled mid-write: a beat the store had taken could land after the delete.
            async with self._beating:
                self._leaving = True
            await self._cancel_task(f"{self.name}-heartbeat")
            with contextlib.suppress(Exception):
                await self.membership.leave()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # The broker first: no handler is left running that the hooks' resources still serve.
        await self.broker.stop()
        # After the broker: its handlers, finished by its graceful stop, publish on this channel.
        await self.bus.channel.close()
        for hook in self._on_stop:
            try:
                await hook()
            except Exception:
                log.exception("%s: a stop hook failed", self.name)
        await self.client.close()
        log.info("%s stopped", self.name)

    async def run_forever(self) -> None:
        setup_logging(self.name, self.settings.log_level)
        tracing.setup(self.name, self.settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop()


def wrap(
    events: Sequence[Event], cause: Envelope | None, correlation_id: str, *, at: datetime | None = None
) -> list[Envelope]:
    """Envelopes for the events a change caused, carrying the saga's correlation and the cause's id.

    None while the database is being rebuilt from the journal: what the change would announce was
    announced when it first happened, and is in the journal already.
    """
    if rebuilding.get():
        return []
    causation = str(cause.event_id) if cause else None
    return [
        Envelope.wrap(e, correlation_id=correlation_id, causation_id=causation, occurred_at=at)
        for e in events
    ]
