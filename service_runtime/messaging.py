"""Broker wiring: the topology, publishing events, consuming them idempotently, and RPC both ways."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
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
from contracts.commands import Ping
from contracts.events import ALL_EVENTS
from service_runtime import logs, metrics, tracing
from service_runtime.errors import (
    TRANSIENT,
    CommandRefused,
    PermanentFailure,
    RetryLater,
    ServiceUnavailable,
    until_up,
)
from service_runtime.settings import RuntimeSettings
from service_runtime.store import DECIDED_AFTER, decided_after

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
    for service, commands in topology.COMMANDS.items()
    for command in commands
    if command.TYPE != "Ping"
}


def make_broker(settings: RuntimeSettings) -> RabbitBroker:
    # on_return_raises: publisher confirms ack an unroutable message too; mandatory + this makes it an error.
    return RabbitBroker(
        settings.rabbitmq_url,
        default_channel=Channel(prefetch_count=settings.prefetch_count, on_return_raises=True),
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
        graceful_timeout=10.0,
    )


class Topology:
    """Names and arguments of every exchange and queue, under one namespace."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.namespace = settings.broker_namespace
        self.delivery_limit = settings.delivery_limit
        self.rpc_ttl_ms = int(settings.rpc_timeout_seconds * 1000)
        # aiormq runs every delivery as its own task: a prefetch of one is what keeps the events of a
        # queue handled one at a time, in the order they were published. FastStream caches a declared
        # queue with the channel that first declared it, so the topology is declared on this channel too.
        self.event_channel = Channel(prefetch_count=1, on_return_raises=True)
        self.events = RabbitExchange(
            f"{self.namespace}.{topology.EVENTS_EXCHANGE}", type=ExchangeType.TOPIC, durable=True
        )
        self.dead_letters = RabbitExchange(
            f"{self.namespace}.{topology.DEAD_LETTER_EXCHANGE}", type=ExchangeType.DIRECT, durable=True
        )

    def event_queue(self, service: str) -> RabbitQueue:
        name = topology.event_queue(self.namespace, service)
        # Debian's RabbitMQ 3.10 sets no delivery limit by default: a poison message would loop forever.
        return RabbitQueue(
            name,
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": self.dead_letters.name,
                "x-dead-letter-routing-key": name,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                # One writer per aggregate with any number of replicas: the broker delivers this queue
                # to one consumer at a time and fails over to the next when its connection goes.
                "x-single-active-consumer": True,
            },
        )

    def dead_letter_queue(self, queue: str) -> RabbitQueue:
        return RabbitQueue(topology.dead_letter_queue(queue), queue_type=QueueType.QUORUM, durable=True)

    def timer_queue(self, service: str) -> RabbitQueue:
        # Nobody consumes it: each timer waits out its own TTL, then the broker dead-letters it, at least
        # once, through the default exchange into the service's event queue. TTLs expire at the head
        # only, so a timer due sooner waits behind one published before it that is due later.
        return RabbitQueue(
            topology.timer_queue(self.namespace, service),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": topology.event_queue(self.namespace, service),
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

    async def declare(self, broker: RabbitBroker) -> None:
        """Declare every event queue of the platform with its bindings and dead-letter queue."""
        declarer: RabbitDeclarer = broker.config.declarer
        channel = self.event_channel
        events = await declarer.declare_exchange(self.events, channel=channel)
        dead_letters = await declarer.declare_exchange(self.dead_letters, channel=channel)
        for service, event_types in topology.SUBSCRIPTIONS.items():
            spec = self.event_queue(service)
            queue = await declarer.declare_queue(spec, channel=channel)
            for event_type in event_types:
                if not issubclass(event_type, Timer):
                    await queue.bind(events, routing_key=event_type.ROUTING_KEY)
            dlq = await declarer.declare_queue(self.dead_letter_queue(spec.name), channel=channel)
            await dlq.bind(dead_letters, routing_key=spec.name)
            # A timer reaches the event queue only when it is due, by way of the timer queue.
            timers = [t for t in event_types if issubclass(t, Timer)]
            if timers:
                timer_queue = await declarer.declare_queue(self.timer_queue(service), channel=channel)
                for timer in timers:
                    await timer_queue.bind(events, routing_key=timer.ROUTING_KEY)


class EventBus:
    """Publishes envelopes to the events exchange, persistent, mandatory, confirmed by the broker."""

    def __init__(self, broker: RabbitBroker, topo: Topology, publisher: str = "") -> None:
        self.broker = broker
        self.topology = topo
        # Named in every event's `x-publisher` header, for the journal and the people reading it.
        self.publisher = publisher

    @tracing.publishing
    async def publish(self, envelope: dict[str, Any]) -> None:
        kind = envelope["type"]
        tracing.destination(self.topology.events.name, ROUTING_KEYS[kind])
        await self.broker.publish(
            Envelope.model_validate(envelope).model_dump_json().encode(),
            exchange=self.topology.events,
            routing_key=ROUTING_KEYS[kind],
            persist=True,
            mandatory=True,
            expiration=self._due_in(kind, envelope),
            message_id=envelope["event_id"],
            correlation_id=envelope["correlation_id"],
            message_type=kind,
            content_type="application/json",
            headers={
                "x-event-version": envelope["version"],
                "x-causation-id": envelope.get("causation_id") or "",
                "x-publisher": self.publisher,
                # Decided on a command right after handling this event (see store.decided_after).
                "x-decided-after": envelope.get(DECIDED_AFTER) or "",
                **tracing.inject(),
            },
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
    """Takes one service's event queue: validates, dispatches by type, acks after the work is stored.

    Bad messages (not an envelope, unknown type, invalid payload, PermanentFailure) go to the dead-letter
    queue at once with the reason in headers. Anything else is retried with backoff, and dead-lettered
    with its last error when the delivery limit is reached, so the queue behind it keeps flowing.
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
        # Messages (events, write commands) delivered to this consumer so far, whatever their outcome.
        self.taken = 0
        # The last event handled here that was not a replayed copy: write commands are decided after it.
        self.last_event: str | None = None
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
            await self._patiently(message, lambda: route.handler(payload, envelope))
        except PermanentFailure as exc:
            await self._dead_letter(message, exc)
        except Exception as exc:
            await self._retry_or_dead_letter(message, exc)
        else:
            if not (message.headers or {}).get("x-replay"):
                self.last_event = str(envelope.event_id)
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
        placed = decided_after.set(self.last_event)
        try:
            reply = await self.commands.dispatch(kind, message.body)
        finally:
            decided_after.reset(placed)
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

    async def _retry_or_dead_letter(self, message: RabbitMessage, exc: Exception) -> None:
        tracing.failed(exc)
        if not _still_ours(message):
            log.warning("failed after the broker took the message back: %s: %s", type(exc).__name__, exc)
            metrics.message_handled(self.service, message.raw_message.type, message.body, "abandoned")
            return
        # Quorum queues count redeliveries in x-delivery-count (absent on the first delivery).
        attempt = int((message.headers or {}).get("x-delivery-count", 0)) + 1
        if attempt >= self.topology.delivery_limit:
            await self._dead_letter(message, exc, attempts=attempt)
            return
        level = logging.INFO if isinstance(exc, RetryLater) else logging.WARNING
        log.log(level, "attempt %d failed, will retry: %s: %s", attempt, type(exc).__name__, exc)
        await asyncio.sleep(min(self.backoff * 2 ** min(attempt - 1, 6), 5.0))
        await self._settle(message.nack(requeue=True))
        metrics.message_handled(self.service, message.raw_message.type, message.body, "retried")

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
            return RpcReply(error=RpcError(code=exc.code, detail=exc.detail, field=exc.field))
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


class Requester(Protocol):
    """Sends one request body to a queue and returns the reply body, or raises TimeoutError.

    `expire`: let the broker drop the request once the caller stopped waiting. Off for a queue that
    dead-letters what expires (an event queue); the request's `x-reply-by` header says the same there.
    """

    async def request(
        self, body: bytes, *, queue: str, message_type: str, timeout: float, expire: bool = True
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

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url)
        # Confirms and returns: a request to a queue nobody declared fails at once, not at the timeout.
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        replies = await self._channel.declare_queue(self.reply_queue_name, exclusive=True, auto_delete=True)
        await replies.consume(self._on_reply, no_ack=True)

    async def stop(self) -> None:
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
        self, body: bytes, *, queue: str, message_type: str, timeout: float, expire: bool = True
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
                    headers={"x-reply-by": _epoch_ms() + int(timeout * 1000), **tracing.inject()},
                )
                await self._channel.default_exchange.publish(message, routing_key=queue, mandatory=True)
                return await reply
        finally:
            self._waiting.pop(request_id, None)


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
        try:
            body = await self.requester.request(
                command.model_dump_json().encode(),
                queue=topology.command_queue(self.namespace, owner, type(command)),
                message_type=command.TYPE,
                timeout=timeout or self.timeout,
                expire=not command.WRITE,
            )
        except UNREACHABLE as exc:
            raise ServiceUnavailable(f"{owner} did not answer {command.TYPE}") from exc
        reply = RpcReply.model_validate_json(body)
        if reply.error is not None:
            raise CommandRefused(reply.error.code, reply.error.detail, reply.error.field)
        return TypeAdapter(answer).validate_python(reply.data)

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
