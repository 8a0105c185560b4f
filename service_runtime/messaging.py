"""Broker wiring: the topology, publishing events, consuming them idempotently, and RPC both ways."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from uuid import uuid4

import aio_pika
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue, RabbitResponse
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.helpers import RabbitDeclarer
from faststream.rabbit.schemas import QueueType
from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts import topology
from contracts.base import Command, Envelope, Event, RpcError, RpcReply, Timer
from contracts.commands import Page, Ping
from contracts.events import ALL_EVENTS
from service_runtime import broker_nodes, logs, metrics, tracing
from service_runtime.errors import (
    TRANSIENT,
    CommandRefused,
    PermanentFailure,
    RetryLater,
    ServiceUnavailable,
    until_up,
)
from service_runtime.locks import KeyedLock
from service_runtime.publishing import ConfirmedChannel
from service_runtime.settings import RuntimeSettings
from service_runtime.store import DECIDED_AFTER, deciding

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)

# `x-replay` of a copy replayed to rebuild a lost database (`pharmacy-ops rebuild`); other replays say True.
REBUILD = "rebuild"
# True while such a copy is handled: the handlers restore state and publish nothing (service.wrap).
rebuilding: ContextVar[bool] = ContextVar("rebuilding", default=False)
C = TypeVar("C", bound=Command)
T = TypeVar("T")

# Anything the broker or the store can throw at a caller while it is away or restarting.
UNREACHABLE: tuple[type[Exception], ...] = (*TRANSIENT, AMQPError)

ROUTING_KEYS: dict[str, str] = {e.TYPE: e.ROUTING_KEY for e in ALL_EVENTS}
TIMERS: dict[str, type[Timer]] = {e.TYPE: e for e in ALL_EVENTS if issubclass(e, Timer)}
COMMAND_OWNERS: dict[str, str] = {
    command.TYPE: service
    for service, commands in topology.ANSWERS.items()
    for command in commands
    if command.TYPE != "Ping"
}


# How long FastStream's stop waits for the handlers still running (after a partition's drain, if any).
GRACEFUL_STOP_SECONDS = 10.0


def make_broker(settings: RuntimeSettings) -> RabbitBroker:
    # on_return_raises: publisher confirms ack an unroutable message too; mandatory + this makes it an error.
    connection = broker_nodes.robust_connection_kwargs(settings.rabbitmq_url)
    broker = RabbitBroker(
        connection["url"],
        default_channel=Channel(prefetch_count=settings.prefetch_count, on_return_raises=True),
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
        graceful_timeout=GRACEFUL_STOP_SECONDS,
    )
    if "connection_class" in connection:
        # FastStream passes these to aio_pika.connect_robust and has no argument for the class.
        broker._connection_kwargs["connection_class"] = connection["connection_class"]
    return broker


class Topology:
    """Names and arguments of every exchange and queue, under one namespace."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.namespace = settings.broker_namespace
        self.delivery_limit = settings.delivery_limit
        self.rpc_ttl_ms = int(settings.rpc_timeout_seconds * 1000)
        self.partitions = settings.event_partitions
        # aiormq runs every delivery as its own task: this many messages of a partition are handled at
        # once, and the consumer keeps one aggregate's in order (EventConsumer.consume). FastStream caches
        # a declared queue with the channel that first declared it, so the topology is declared on it too.
        self.event_channel = Channel(prefetch_count=settings.event_prefetch, on_return_raises=True)
        self.events = RabbitExchange(
            f"{self.namespace}.{topology.EVENTS_EXCHANGE}", type=ExchangeType.TOPIC, durable=True
        )
        self.dead_letters = RabbitExchange(
            f"{self.namespace}.{topology.DEAD_LETTER_EXCHANGE}", type=ExchangeType.DIRECT, durable=True
        )

    def partition_exchange(self, service: str) -> RabbitExchange:
        """Spreads a service's events and writes over its partition queues by the aggregate they name."""
        return RabbitExchange(
            topology.partition_exchange(self.namespace, service),
            type=ExchangeType.X_CONSISTENT_HASH,
            durable=True,
            arguments={"hash-header": topology.PARTITION_HEADER},
        )

    def event_queue(self, service: str) -> RabbitQueue:
        """The first partition queue: where sweeps are queued, and the name its dead letters go by."""
        return self.partition_queue(service, 0)

    def partition_queues(self, service: str) -> list[RabbitQueue]:
        return [self.partition_queue(service, k) for k in range(self.partitions)]

    def partition_queue(self, service: str, partition: int) -> RabbitQueue:
        name = topology.partition_queue(self.namespace, service, partition)
        # Debian's RabbitMQ 3.10 sets no delivery limit by default: a poison message would loop forever.
        return RabbitQueue(
            name,
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": self.dead_letters.name,
                # Every partition's dead letters go to one queue of the service, named by the first.
                "x-dead-letter-routing-key": topology.event_queue(self.namespace, service),
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                # One writer per aggregate with any number of replicas: the broker delivers a partition
                # to one consumer at a time and fails over to the next when its connection goes.
                "x-single-active-consumer": True,
            },
        )

    def dead_letter_queue(self, queue: str) -> RabbitQueue:
        return RabbitQueue(topology.dead_letter_queue(queue), queue_type=QueueType.QUORUM, durable=True)

    def timer_queue(self, service: str) -> RabbitQueue:
        # Nobody consumes it: each timer waits out its own TTL, then the broker dead-letters it, at least
        # once, through the service's partition exchange into the partition of its aggregate (the header
        # travels along). TTLs expire at the head only, so a timer due sooner waits behind one published
        # before it that is due later.
        return RabbitQueue(
            topology.timer_queue(self.namespace, service),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={
                "x-dead-letter-exchange": topology.partition_exchange(self.namespace, service),
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )

    def rpc_queue(self, service: str) -> RabbitQueue:
        # A request nobody answered within the caller's timeout is worthless: let the broker drop it.
        return RabbitQueue(
            topology.rpc_queue(self.namespace, service),
            durable=True,
            arguments={"x-message-ttl": self.rpc_ttl_ms},
        )

    def work_queue(self, service: str, name: str, *, ttl_ms: int) -> RabbitQueue:
        """A queue of slow reads (Command.QUEUE); dropped, as RPCs are, once their caller gave up."""
        return RabbitQueue(
            topology.work_queue(self.namespace, service, name),
            durable=True,
            arguments={"x-message-ttl": ttl_ms},
        )

    def journal_queue(self) -> RabbitQueue:
        # As the archiver declares it (operations/journal.py), or the broker refuses the second declare.
        return RabbitQueue(topology.journal_queue(self.namespace), queue_type=QueueType.QUORUM, durable=True)

    async def declare(self, broker: RabbitBroker) -> None:
        """Declare every service's partitions with their bindings, dead-letter queue and timers.

        events (topic) -> <service>.partitions (consistent hash on x-partition-key) -> K quorum queues.
        A broker from before partitions had one event queue bound to the events exchange: it becomes
        the first partition, and its direct bindings are removed, so nothing arrives twice.
        """
        declarer: RabbitDeclarer = broker.config.declarer
        channel = self.event_channel
        events = await declarer.declare_exchange(self.events, channel=channel)
        dead_letters = await declarer.declare_exchange(self.dead_letters, channel=channel)
        for service, event_types in topology.SUBSCRIPTIONS.items():
            routed = [t.ROUTING_KEY for t in event_types if not issubclass(t, Timer)]
            partitions = await declarer.declare_exchange(self.partition_exchange(service), channel=channel)
            for routing_key in routed:
                await partitions.bind(events, routing_key=routing_key)
            for spec in self.partition_queues(service):
                queue = await declarer.declare_queue(spec, channel=channel)
                # The binding key of a consistent-hash exchange is the queue's weight on the ring.
                await queue.bind(partitions, routing_key="1")
                if spec.name == topology.event_queue(self.namespace, service):
                    for routing_key in routed:
                        await queue.unbind(events, routing_key=routing_key)
            first = topology.event_queue(self.namespace, service)
            dlq = await declarer.declare_queue(self.dead_letter_queue(first), channel=channel)
            await dlq.bind(dead_letters, routing_key=first)
            # A timer reaches its partition only when it is due, by way of the timer queue.
            timers = [t for t in event_types if issubclass(t, Timer)]
            if timers:
                timer_queue = await declarer.declare_queue(self.timer_queue(service), channel=channel)
                for timer in timers:
                    await timer_queue.bind(events, routing_key=timer.ROUTING_KEY)
                await self._retire_legacy_timer_queue(broker, service, timers)
        # Events no service takes are the journal's alone: its queue keeps them until the archiver reads.
        journal = await declarer.declare_queue(self.journal_queue(), channel=channel)
        for event in topology.JOURNALLED_ONLY:
            await journal.bind(events, routing_key=event.ROUTING_KEY)

    async def _retire_legacy_timer_queue(
        self, broker: RabbitBroker, service: str, timers: Sequence[type[Timer]]
    ) -> None:
        """Unbind the timer queue of the days before partitions, where one is left: its remaining timers
        still come due into the first partition, and new ones wait in the new timer queue."""
        # FastStream's own connection, for a throwaway channel.
        connection = broker._connection
        if connection is None:
            return
        # A passive declare of a missing queue closes the channel it was sent on: a channel of its own.
        channel = await connection.channel()
        try:
            legacy = await channel.declare_queue(
                topology.legacy_timer_queue(self.namespace, service), passive=True
            )
            exchange = await channel.get_exchange(self.events.name, ensure=False)
            for timer in timers:
                await legacy.unbind(exchange, routing_key=timer.ROUTING_KEY)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return  # none left: a broker that never had the old timer queue, or one already gone
        finally:
            if not channel.is_closed:
                await channel.close()


def _connection_of(broker: RabbitBroker) -> aio_pika.abc.AbstractConnection:
    """FastStream's robust connection, once the broker connected."""
    connection = broker._connection
    if connection is None:
        raise ConnectionError("the broker is not connected yet")
    return connection


class EventBus:
    """Publishes envelopes to the events exchange, persistent, mandatory, confirmed by the broker.

    On a channel of its own on the broker's connection, not FastStream's: a nack replaces it
    (publishing.ConfirmedChannel). The service's sweep requests go out on it too; dead letters (rare)
    and replies (to classic queues) still go out on FastStream's.
    """

    def __init__(self, broker: RabbitBroker, topo: Topology, publisher: str = "") -> None:
        self.broker = broker
        self.topology = topo
        # Named in every event's `x-publisher` header, for the journal and the people reading it.
        self.publisher = publisher
        self.channel = ConfirmedChannel(lambda: _connection_of(broker))

    @tracing.publishing
    async def publish(self, envelope: dict[str, Any]) -> None:
        kind = envelope["type"]
        tracing.destination(self.topology.events.name, ROUTING_KEYS[kind])
        message = aio_pika.Message(
            Envelope.model_validate(envelope).model_dump_json().encode(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            expiration=self._due_in(kind, envelope),
            message_id=envelope["event_id"],
            correlation_id=envelope["correlation_id"],
            type=kind,
            content_type="application/json",
            headers={
                "x-event-version": envelope["version"],
                "x-causation-id": envelope.get("causation_id") or "",
                "x-publisher": self.publisher,
                # Decided on a command right after its aggregate handled this event (see store.pending).
                "x-decided-after": envelope.get(DECIDED_AFTER) or "",
                # Every event is about its saga's aggregate: its partition, in each service, is that one.
                topology.PARTITION_HEADER: envelope["correlation_id"],
                **tracing.inject(),
            },
        )
        await self.channel.publish(
            message, exchange=self.topology.events.name, routing_key=ROUTING_KEYS[kind]
        )
        metrics.event_published(self.publisher, kind)

    @staticmethod
    def _due_in(kind: str, envelope: dict[str, Any]) -> timedelta | None:
        """How long the timer queue holds a Timer (nothing for one already due); None for other events."""
        timer = TIMERS.get(kind)
        if timer is None:
            return None
        fires_at = timer.model_validate(envelope["payload"]).fires_at
        return max(timedelta(0), fires_at - datetime.now(UTC))


EventHandler = Callable[[Any, Envelope], Awaitable[None]]


@dataclass(frozen=True)
class _EventRoute:
    model: type[Event]
    handler: EventHandler


class EventConsumer:
    """Takes one service's partition queues: validates, dispatches by type, acks after the work is stored.

    Messages of different aggregates are handled at once (the partition's prefetch); those of one
    aggregate (the partition key) one at a time, in the order they arrived. Bad messages (not an
    envelope, unknown type, invalid payload, PermanentFailure) go to the dead-letter queue at once with
    the reason in headers. Anything else is retried in place with backoff, never put back behind a later
    message of its aggregate, and dead-lettered with its last error when the delivery limit is reached.
    """

    def __init__(
        self,
        service: str,
        broker: RabbitBroker,
        topo: Topology,
        settings: RuntimeSettings,
        commands: CommandServer,
    ) -> None:
        self.service = service
        self.broker = broker
        self.topology = topo
        self.commands = commands
        # Messages (events, write commands) delivered to this consumer so far, whatever their outcome,
        # and those it is done with (acknowledged, dead-lettered, or left to the broker).
        self.taken = 0
        self.settled = 0
        # One aggregate's messages in the order they arrived; a lock is taken before the first await.
        self.in_order = KeyedLock()
        self.queue = topo.event_queue(service)
        self.backoff = settings.retry_backoff_seconds
        self.routes: dict[str, _EventRoute] = {}
        # The service's own events it applies again, only while its database is rebuilt from the journal.
        self.own: dict[str, _EventRoute] = {}

    def on(self, model: type[E]) -> Callable[[Callable[[E, Envelope], Awaitable[None]]], Any]:
        def register(handler: Callable[[E, Envelope], Awaitable[None]]) -> Any:
            timed = metrics.timed_handler(self.service, model.TYPE, handler)
            self.routes[model.TYPE] = _EventRoute(model, timed)
            return handler

        return register

    def on_own(self, model: type[E]) -> Callable[[Callable[[E, Envelope], Awaitable[None]]], Any]:
        """Restore what one of our own events recorded: a decision on a command, which no other event
        carries. Only copies replayed to rebuild the database reach it (`x-replay: rebuild`)."""

        def register(handler: Callable[[E, Envelope], Awaitable[None]]) -> Any:
            self.own[model.TYPE] = _EventRoute(model, handler)
            return handler

        return register

    def check_against_topology(self) -> None:
        expected = {e.TYPE for e in topology.SUBSCRIPTIONS.get(self.service, ())}
        if set(self.routes) != expected:
            raise RuntimeError(
                f"{self.service} handles {sorted(self.routes)} but the topology says {sorted(expected)}"
            )
        own = {e.TYPE for e in topology.REBUILT_FROM_OWN.get(self.service, ())}
        if set(self.own) != own:
            raise RuntimeError(
                f"{self.service} restores {sorted(self.own)} but the topology says {sorted(own)}"
            )

    @tracing.handling
    async def consume(self, message: RabbitMessage) -> None:
        self.taken += 1
        # aiormq starts one task per delivery in delivery order, and nothing between it and here awaits
        # (Service._take_event takes no argument for that): tasks queue on their aggregate's lock in
        # the order the partition delivered them.
        try:
            async with self.in_order.hold(partition_key(message)):
                await self._take(message)
        finally:
            self.settled += 1

    async def _take(self, message: RabbitMessage) -> None:
        kind = message.raw_message.type or ""
        if kind in self.commands.writes:
            await self._carry_out(message, kind)
            return
        try:
            envelope = Envelope.model_validate_json(message.body)
            rebuild = (message.headers or {}).get("x-replay") == REBUILD
            route = self.routes.get(envelope.type) or (self.own.get(envelope.type) if rebuild else None)
            if route is None:
                raise PermanentFailure(f"{self.service} has no handler for {envelope.type!r}")
            payload = route.model.model_validate(envelope.payload)
        except (ValidationError, PermanentFailure) as exc:
            await self._dead_letter(message, exc)
            return
        cid = logs.correlation_id.set(envelope.correlation_id)
        eid = logs.event_id.set(str(envelope.event_id))
        restoring = rebuilding.set(rebuild)
        log.debug("handling %s", envelope.type)
        try:
            if await self._retrying(message, lambda: route.handler(payload, envelope)):
                await self._settle(message.ack())
                metrics.message_handled(self.service, envelope.type, b"", "acked")
                log.debug("handled %s", envelope.type)
        finally:
            logs.correlation_id.reset(cid)
            logs.event_id.reset(eid)
            rebuilding.reset(restoring)

    async def _carry_out(self, message: RabbitMessage, kind: str) -> None:
        """A write command queued with the events: answer it here, in order, then ack it."""
        raw = message.raw_message
        reply_by = (message.headers or {}).get("x-reply-by")
        if isinstance(reply_by, int) and reply_by < _epoch_ms():
            # The caller has given up and told its client so: carrying it out now would surprise them.
            log.warning("dropping %s: its caller stopped waiting for the answer", kind)
            await self._settle(message.ack())
            metrics.message_handled(self.service, kind, b"", "expired")
            return
        placed = deciding.set(True)
        try:
            reply = await self.commands.dispatch(kind, message.body)
        finally:
            deciding.reset(placed)
        if raw.reply_to:
            # Not mandatory: a caller that gave up is gone, and a reply nobody waits for is no error.
            await self.broker.publish(
                reply.model_dump_json().encode(),
                routing_key=raw.reply_to,
                correlation_id=message.correlation_id,
                content_type="application/json",
                mandatory=False,
            )
        await self._settle(message.ack())
        metrics.message_handled(self.service, kind, b"", "acked")

    async def _patiently(self, message: RabbitMessage, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work`, retrying in place for as long as the store or the broker is unreachable.

        A nack would count against the delivery limit, so an outage of the store would dead-letter good
        messages. The message is held instead (the queue could not move on anyway). Once the channel it
        came on is closed, the broker has handed it to another consumer: this one stops writing.
        """
        return await until_up(
            f"{self.service} handling {message.message_id}",
            work,
            first_delay=self.backoff,
            still_wanted=lambda: _still_ours(message),
        )

    async def _settle(self, outcome: Awaitable[Any]) -> None:
        """Ack or nack; on a channel that closed meanwhile the broker has requeued the message already."""
        try:
            await outcome
        except UNREACHABLE as exc:
            log.warning("could not settle the message, the broker will redeliver it: %s", type(exc).__name__)

    async def _retrying(self, message: RabbitMessage, work: Callable[[], Awaitable[None]]) -> bool:
        """Run `work` until it succeeds (True), or dead-letter the message, or see it taken back (False).

        A failure is retried here, holding the message and its aggregate's place: put back in the
        queue it would be handled after the later messages of its aggregate this consumer holds already.
        Attempts count from the broker's redeliveries, so a crash loop still ends in the dead letters.
        """
        # Quorum queues count redeliveries in x-delivery-count (absent on the first delivery).
        attempt = int((message.headers or {}).get("x-delivery-count", 0)) + 1
        while True:
            try:
                await self._patiently(message, work)
            except PermanentFailure as exc:
                await self._dead_letter(message, exc)
                return False
            except Exception as exc:
                tracing.failed(exc)
                if not _still_ours(message):
                    log.warning("failed after the broker took it back: %s: %s", type(exc).__name__, exc)
                    metrics.message_handled(self.service, message.raw_message.type, message.body, "abandoned")
                    return False
                if attempt >= self.topology.delivery_limit:
                    await self._dead_letter(message, exc, attempts=attempt)
                    return False
                level = logging.INFO if isinstance(exc, RetryLater) else logging.WARNING
                log.log(level, "attempt %d failed, will retry: %s: %s", attempt, type(exc).__name__, exc)
                metrics.message_handled(self.service, message.raw_message.type, message.body, "retried")
                await asyncio.sleep(min(self.backoff * 2 ** min(attempt - 1, 6), 5.0))
                attempt += 1
            else:
                return True

    async def _dead_letter(self, message: RabbitMessage, exc: Exception, *, attempts: int = 1) -> None:
        tracing.failed(exc)
        log.error("dead-lettering message %s: %s: %s", message.message_id, type(exc).__name__, exc)
        raw = message.raw_message
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-error": str(exc)[:2000],
                "x-error-type": type(exc).__name__,
                "x-failed-service": self.service,
                # The dead-letter queue counts its own deliveries in x-delivery-count: keep ours apart.
                "x-attempts": attempts,
                "x-failed-at": datetime.now(UTC).isoformat(),
                "x-original-exchange": raw.exchange or "",
                "x-original-routing-key": raw.routing_key or "",
            }
        )
        await self.broker.publish(
            message.body,
            exchange=self.topology.dead_letters,
            routing_key=self.queue.name,
            persist=True,
            mandatory=True,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            message_type=raw.type,
            content_type=message.content_type,
            headers=headers,
        )
        await self._settle(message.ack())
        metrics.message_handled(self.service, raw.type, message.body, "dead_lettered")


def partition_key(message: RabbitMessage) -> str:
    """The aggregate a message is about: its partition header, else (a copy sent straight to one
    partition queue, as tools and older publishers do) its correlation id."""
    key = (message.headers or {}).get(topology.PARTITION_HEADER)
    # The property as sent: FastStream's own `correlation_id` makes one up from the message id.
    return str(key) if key else (message.raw_message.correlation_id or "")


def _epoch_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _still_ours(message: RabbitMessage) -> bool:
    """Whether the channel the message came on is open, so acking it still means something."""
    try:
        message.raw_message.channel  # noqa: B018 - the property raises once the channel is closed
    except ChannelInvalidStateError:
        return False
    return True


CommandHandler = Callable[[Any], Awaitable[Any]]


async def _no_report() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class _CommandRoute:
    model: type[Command]
    handler: CommandHandler


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value


class CommandServer:
    """Answers one service's RPC queue: every reply is an RpcReply, never an exception."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.routes: dict[str, _CommandRoute] = {}
        # Types of the commands that write: they arrive on the event queue, never on the RPC queue.
        self.writes: set[str] = set()
        # The service's readiness report (metrics.Readiness.report), sent along with every Ping's answer.
        self.readiness: Callable[[], Awaitable[dict[str, Any]]] = _no_report

    def on(self, model: type[C]) -> Callable[[Callable[[C], Awaitable[Any]]], Any]:
        def register(handler: Callable[[C], Awaitable[Any]]) -> Any:
            self.routes[model.TYPE] = _CommandRoute(model, handler)
            if model.WRITE:
                self.writes.add(model.TYPE)
            return handler

        return register

    @tracing.handling
    async def answer(self, message: RabbitMessage) -> RabbitResponse:
        kind = message.raw_message.type or ""
        if kind in self.writes:
            # Answering a write here would make a second writer beside the event queue's consumer.
            reply = RpcReply(
                error=RpcError(code="internal", detail=f"{kind} writes: send it to the event queue")
            )
        else:
            reply = await self.dispatch(kind, message.body)
        # Not mandatory: a caller that gave up is gone, and RabbitMQ 3.10 returns direct replies
        # published with `mandatory` even when it delivers them.
        return RabbitResponse(
            reply.model_dump_json().encode(), mandatory=False, content_type="application/json"
        )

    async def dispatch(self, kind: str, body: bytes) -> RpcReply:
        with metrics.command_timer(self.service, kind) as outcome:
            reply = await self._dispatch(kind, body)
            outcome(reply.error.code if reply.error else "ok")
        return reply

    async def _dispatch(self, kind: str, body: bytes) -> RpcReply:
        if kind == "Ping":
            # A ping learns whether this replica is ready (reaches its store), not only that it answers.
            return RpcReply(data={"service": self.service, **(await self.readiness())})
        route = self.routes.get(kind)
        if route is None:
            return RpcReply(
                error=RpcError(code="invalid", detail=f"{self.service} knows no command {kind!r}")
            )
        try:
            command = route.model.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            return RpcReply(error=RpcError(code="invalid", detail=first["msg"], field=field))
        try:
            return RpcReply(data=_to_jsonable(await route.handler(command)))
        except CommandRefused as exc:
            return RpcReply(
                error=RpcError(code=exc.code, detail=exc.detail, field=exc.field, errors=exc.errors)
            )
        except TRANSIENT as exc:
            log.warning("command %s failed, store or broker unreachable: %s", kind, type(exc).__name__)
            return RpcReply(
                error=RpcError(code="unavailable", detail=f"{self.service} cannot reach its store; try again")
            )
        except Exception:
            log.exception("command %s failed", kind)
            return RpcReply(
                error=RpcError(code="internal", detail="the service failed to carry out the command")
            )


async def answer_on(
    channel: aio_pika.abc.AbstractChannel, queue: aio_pika.abc.AbstractQueue, server: CommandServer
) -> None:
    """Answer a queue's requests with `server`, for a process that is not a FastStream service (the
    journal): each reply goes to the request's `reply_to` with its `correlation_id`, as AmqpRequester
    waits for it; then the request is acked, answered or not: one left unacked would hold one of the
    channel's prefetch slots for as long as the process runs."""

    async def on_request(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        kind = message.type or ""
        try:
            if kind in server.writes:
                reply = RpcReply(error=RpcError(code="internal", detail=f"{kind} writes: not answered here"))
            else:
                reply = await server.dispatch(kind, message.body)
            if message.reply_to:
                # Not mandatory, as CommandServer.answer replies: a caller that gave up is gone.
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        reply.model_dump_json().encode(),
                        correlation_id=message.correlation_id,
                        content_type="application/json",
                    ),
                    routing_key=message.reply_to,
                )
        except Exception:
            # Its caller times out; the next requests are answered all the same.
            log.exception("request %s not answered", kind)
        finally:
            await message.ack()

    await queue.consume(on_request)


class Requester(Protocol):
    """Sends one request body to a queue and returns the reply body, or raises TimeoutError.

    `queue`: a queue's name, through the default exchange; or with `exchange`, the routing key there.
    `partition_key`: the aggregate a write is about, for a partition exchange to route it by.
    `expire`: let the broker drop the request once the caller stopped waiting. Off for a queue that
    dead-letters what expires (an event queue); the request's `x-reply-by` header says the same there.
    """

    async def request(
        self,
        body: bytes,
        *,
        queue: str,
        message_type: str,
        timeout: float,
        expire: bool = True,
        exchange: str = "",
        partition_key: str | None = None,
    ) -> bytes: ...


class AmqpRequester:
    """Request/reply over RabbitMQ: one reply queue per caller, one future per request.

    Not FastStream's broker.request(): in 0.7.8 it holds one lock per broker for the whole round trip
    (ag2ai/faststream#1318), so the gateway ran one RPC at a time, and its timeout started only once
    the lock was held, so a request could wait far longer than RPC_TIMEOUT_SECONDS.
    """

    def __init__(self, rabbitmq_url: str, namespace: str) -> None:
        self.url = rabbitmq_url
        self.reply_queue_name = f"{namespace}.replies.{uuid4().hex}"
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        # Requests go out on a channel of their own, which a nack replaces; replies come on another.
        self._publisher = ConfirmedChannel(lambda: self._connection, declare=_partition_exchange)

    async def start(self) -> None:
        self._connection = await broker_nodes.connect_robust(self.url)
        self._replies = await self._connection.channel()
        replies = await self._replies.declare_queue(self.reply_queue_name, exclusive=True, auto_delete=True)
        await replies.consume(self._on_reply, no_ack=True)
        await self._publisher.channel()

    @property
    def renewed(self) -> int:
        """How many requests were nacked and sent again on a new channel (read by tests and the logs)."""
        return self._publisher.renewed

    async def stop(self) -> None:
        await self._publisher.close()
        await self._connection.close()

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now (a robust connection comes back by itself)."""
        return self._connection.connected.is_set()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        waiting = self._waiting.pop(message.correlation_id or "", None)
        if waiting is not None and not waiting.done():
            waiting.set_result(message.body)

    @tracing.requesting
    async def request(
        self,
        body: bytes,
        *,
        queue: str,
        message_type: str,
        timeout: float,
        expire: bool = True,
        exchange: str = "",
        partition_key: str | None = None,
    ) -> bytes:
        request_id = uuid4().hex
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = reply
        try:
            async with asyncio.timeout(timeout):
                message = aio_pika.Message(
                    body,
                    correlation_id=request_id,
                    reply_to=self.reply_queue_name,
                    type=message_type,
                    content_type="application/json",
                    # A request nobody took within the caller's timeout is dropped, not answered late.
                    expiration=timeout if expire else None,
                    # Whole milliseconds: AMQP tables carry a Python float as a 32-bit float, off by a minute.
                    headers={
                        "x-reply-by": _epoch_ms() + int(timeout * 1000),
                        **({topology.PARTITION_HEADER: partition_key} if partition_key else {}),
                        **tracing.inject(),
                    },
                )
                await self._publisher.publish(message, exchange=exchange, routing_key=queue)
                return await reply
        finally:
            self._waiting.pop(request_id, None)


async def _partition_exchange(
    channel: aio_pika.abc.AbstractChannel, name: str
) -> aio_pika.abc.AbstractExchange:
    """A partition exchange, declared as the services declare it: publishing to one missing would close
    the channel every request shares; with no queue bound yet, the publish is returned unroutable and
    this request alone fails."""
    return await channel.declare_exchange(
        name,
        aio_pika.ExchangeType.X_CONSISTENT_HASH,
        durable=True,
        arguments={"hash-header": topology.PARTITION_HEADER},
    )


class RpcClient:
    """Sends a command to the service that owns it and waits for the answer."""

    def __init__(self, requester: Requester, settings: RuntimeSettings) -> None:
        self.requester = requester
        self.namespace = settings.broker_namespace
        self.timeout = settings.rpc_timeout_seconds

    async def ask(
        self, command: Command, answer: Any, *, service: str | None = None, timeout: float | None = None
    ) -> Any:
        """Send `command`; return its data validated as `answer` (a type or a type expression).

        Raises CommandRefused with the service's code, or ServiceUnavailable when nobody answers.
        """
        owner = service or COMMAND_OWNERS[command.TYPE]
        if command.WRITE and command.request_id is None:
            command = command.model_copy(update={"request_id": uuid4().hex})
        # A write queues on the partition of the aggregate it changes, behind that aggregate's events.
        partition = str(getattr(command, command.PARTITION_BY)) if command.WRITE else None
        try:
            body = await self.requester.request(
                command.model_dump_json().encode(),
                queue="" if command.WRITE else self._queue(command, owner),
                exchange=topology.partition_exchange(self.namespace, owner) if command.WRITE else "",
                partition_key=partition,
                message_type=command.TYPE,
                timeout=timeout or (command.QUEUE_SECONDS if command.QUEUE else self.timeout),
                expire=not command.WRITE,
            )
        except UNREACHABLE as exc:
            raise ServiceUnavailable(f"{owner} did not answer {command.TYPE}") from exc
        reply = RpcReply.model_validate_json(body)
        if reply.error is not None:
            raise CommandRefused(reply.error.code, reply.error.detail, reply.error.field, reply.error.errors)
        return TypeAdapter(answer).validate_python(reply.data)

    async def ask_every_page(
        self,
        command: Callable[[Page], Command],
        item: Any,
        *,
        page_size: int = 200,
        max_pages: int | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """Every item of a paged list, `command(page)` asked page after page until one comes back short
        (or after `max_pages`); each item validated as `item`."""
        found: list[Any] = []
        pages = 0
        while max_pages is None or pages < max_pages:
            batch = await self.ask(
                command(Page(limit=page_size, offset=len(found))), list[item], timeout=timeout
            )
            found += batch
            pages += 1
            if len(batch) < page_size:
                break
        return found

    def _queue(self, command: Command, owner: str) -> str:
        if command.QUEUE is not None:
            return topology.work_queue(self.namespace, owner, command.QUEUE)
        return topology.rpc_queue(self.namespace, owner)

    async def readiness(self, service: str) -> dict[str, Any] | None:
        """What a service (one replica) reports of its readiness when pinged; None when none answers."""
        try:
            answer: dict[str, Any] = await self.ask(Ping(), dict, service=service, timeout=2.0)
        except (ServiceUnavailable, CommandRefused):
            return None
        return answer

    async def ping(self, service: str) -> bool:
        try:
            await self.ask(Ping(), dict, service=service, timeout=2.0)
        except (ServiceUnavailable, CommandRefused):
            return False
        return True
