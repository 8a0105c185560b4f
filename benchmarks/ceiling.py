"""The ceiling: the broker traffic of the saga with no handler work, the most the saga could reach.

The same queues (declared by the platform's own Topology, and the journal's by the archiver's code),
the same publishes (persistent, mandatory, confirmed, routed as EventBus routes them), the same
deliveries to every subscribing queue and the journal's, the same RPC round trips per order from the
gateway (by the gateway's own AmqpRequester), with the same prefetch. Each consumer only acks, after
publishing the events the real service publishes on that message: a chain, like the saga's. The
chain (who publishes what on which message, how often) is learned from a real warm-up's events, the
round trips from the platform's /metrics: when the saga changes, so does the ceiling.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import uuid4

import aio_pika

from benchmarks.load import Results, Seen, TerminalEvents, finish
from benchmarks.traffic import WRITES, Traffic
from contracts import topology
from operations.journal import JOURNAL_PREFETCH, declare_journal_queue
from service_runtime.launcher import delete_namespace
from service_runtime.messaging import ROUTING_KEYS, AmqpRequester, Topology, make_broker
from service_runtime.settings import RuntimeSettings

RPC_TIMEOUT = 30.0


@dataclass(frozen=True)
class Step:
    """On taking `trigger` from its event queue, `service` publishes `copies` of `publishes`."""

    service: str
    trigger: str
    publishes: str
    copies: int


@dataclass
class Chain:
    """One order's broker traffic: the gateway's round trips, then the events that follow."""

    reads: list[tuple[str, str]]  # (service, command) round trips on RPC queues, before the write
    write: tuple[str, str]  # (service, command) queued on the service's event queue
    steps: list[Step]
    samples: dict[str, Seen] = field(default_factory=dict)  # a real message of each event type

    def after(self, service: str) -> dict[str, list[Step]]:
        found: dict[str, list[Step]] = {}
        for step in self.steps:
            if step.service == service:
                found.setdefault(step.trigger, []).append(step)
        return found


def learn(seen: Iterable[Seen], traffic: Traffic, orders: int) -> Chain:
    """The chain per order: events and their causes as a warm-up saw them, round trips as measured."""
    events = list(seen)
    types = {e.event_id: e.type for e in events}
    writes = traffic.writes()
    write = max(writes, key=lambda k: writes[k])
    sagas = max(1, len({e.correlation_id for e in events}))
    caused: Counter[tuple[str, str, str]] = Counter()
    for e in events:
        # An event no other event caused was decided on the write command (the upload).
        trigger = types.get(e.causation_id or "", write[1])
        caused[(e.publisher, trigger, e.type)] += 1
    steps = [Step(s, t, p, round(n / sagas)) for (s, t, p), n in caused.items() if round(n / sagas)]
    reads = [key for key, n in sorted(traffic.reads().items()) for _ in range(round(n / orders))]
    return Chain(reads, write, steps, {e.type: e for e in events})


def route(
    topo: Topology, sample: Seen, *, order: str, cause: str, publisher: str
) -> tuple[str, str, aio_pika.Message]:
    """Exchange, routing key and message of an event, as EventBus.publish sends it.

    Kept in one place, to change with EventBus when its routing does, as NoWorkService.start changes
    with Topology's queues: the events exchange, and the partition header each service hashes on.
    """
    envelope = json.loads(sample.body)
    envelope.update(event_id=str(uuid4()), correlation_id=order, causation_id=cause)
    message = aio_pika.Message(
        json.dumps(envelope).encode(),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        expiration=sample.expiration,
        message_id=envelope["event_id"],
        correlation_id=order,
        type=sample.type,
        content_type="application/json",
        headers={
            "x-event-version": envelope["version"],
            "x-causation-id": cause,
            "x-publisher": publisher,
            "x-decided-after": "",
            topology.PARTITION_HEADER: order,
        },
    )
    return topo.events.name, ROUTING_KEYS[sample.type], message


class NoWorkService:
    """Takes a service's event and RPC queues like the service, and does nothing but the chain."""

    def __init__(self, service: str, chain: Chain, topo: Topology, settings: RuntimeSettings) -> None:
        self.service = service
        self.chain = chain
        self.steps = chain.after(service)
        self.topo = topo
        self.settings = settings
        self.taken: Counter[str] = Counter()

    async def start(self) -> None:
        self.connection = await aio_pika.connect_robust(self.settings.rabbitmq_url)
        self.publisher = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        if self.service in topology.SUBSCRIPTIONS or self.service == self.chain.write[0]:
            events = await self.connection.channel()
            await events.set_qos(prefetch_count=self.topo.event_channel.prefetch_count or 0)
            for partition in self.topo.partition_queues(self.service):
                queue = await events.get_queue(partition.name, ensure=False)
                await queue.consume(self._on_event)
        if self.service in topology.COMMANDS:
            reads = await self.connection.channel()
            await reads.set_qos(prefetch_count=self.settings.prefetch_count)
            queue = await reads.get_queue(self.topo.rpc_queue(self.service).name, ensure=False)
            await queue.consume(self._on_read)

    async def _on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        kind = message.type or ""
        # A queued write names its order in its body; events carry it as their correlation id.
        order = message.body.decode() if kind in WRITES else message.correlation_id or ""
        cause = message.message_id or ""
        for step in self.steps.get(kind, ()):
            sample = self.chain.samples[step.publishes]
            for _ in range(step.copies):
                name, routing_key, event = route(
                    self.topo, sample, order=order, cause=cause, publisher=self.service
                )
                if name not in self.exchanges:
                    self.exchanges[name] = await self.publisher.get_exchange(name, ensure=False)
                await self.exchanges[name].publish(event, routing_key=routing_key, mandatory=True)
        if message.reply_to:
            await self._reply(message)
        await message.ack()
        self.taken[kind] += 1

    async def _on_read(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await self._reply(message)
        await message.ack()

    async def _reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        reply = aio_pika.Message(b'{"data": null}', correlation_id=message.correlation_id)
        exchange = self.publisher.default_exchange
        await exchange.publish(reply, routing_key=message.reply_to or "", mandatory=False)

    async def stop(self) -> None:
        await self.connection.close()


class NoWorkJournal:
    """Takes the journal's queue like the archiver, with its prefetch, and only acks."""

    def __init__(self, rabbitmq_url: str, namespace: str) -> None:
        self.url = rabbitmq_url
        self.namespace = namespace
        self.taken = 0

    async def start(self) -> None:
        self.connection = await aio_pika.connect_robust(self.url)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=JOURNAL_PREFETCH)
        queue = await declare_journal_queue(channel, self.namespace)
        await queue.consume(self._on_message)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        self.taken += 1

    async def stop(self) -> None:
        await self.connection.close()


class Ceiling:
    """A namespace of its own with the platform's queues, consumers that do no work, and a gateway."""

    def __init__(self, rabbitmq_url: str, chain: Chain) -> None:
        self.chain = chain
        self.namespace = f"ceiling_{secrets.token_hex(4)}"
        self.settings = RuntimeSettings(rabbitmq_url=rabbitmq_url, broker_namespace=self.namespace)
        self.topo = Topology(self.settings)
        services = dict.fromkeys([*topology.SUBSCRIPTIONS, *topology.COMMANDS])
        self.services = [NoWorkService(s, chain, self.topo, self.settings) for s in services]
        self.journal = NoWorkJournal(rabbitmq_url, self.namespace)
        self.requester = AmqpRequester(rabbitmq_url, self.namespace)
        self.watch = TerminalEvents()

    async def start(self) -> None:
        broker = make_broker(self.settings)
        await broker.connect()
        try:
            await self.topo.declare(broker)
            for service in topology.COMMANDS:
                await broker.config.declarer.declare_queue(self.topo.rpc_queue(service))
        finally:
            await broker.stop()
        await self.journal.start()
        for consumer in self.services:
            await consumer.start()
        await self.requester.start()
        self.watch_connection = await self.watch.start(self.settings.rabbitmq_url, self.namespace)

    async def order(self, n: int, patient: int, results: Results) -> None:
        """One order's traffic: the gateway's round trips, the queued write, then wait for the end."""
        order = f"ceiling-{n}"
        started = time.perf_counter()
        # The gateway asks its checks at once, then queues the write on the partition of its key.
        await asyncio.gather(
            *(
                self.requester.request(
                    b"{}",
                    queue=topology.rpc_queue(self.namespace, service),
                    message_type=kind,
                    timeout=RPC_TIMEOUT,
                )
                for service, kind in self.chain.reads
            )
        )
        service, kind = self.chain.write
        await self.requester.request(
            order.encode(),
            queue="",
            exchange=topology.partition_exchange(self.namespace, service),
            partition_key=order,
            message_type=kind,
            timeout=RPC_TIMEOUT,
            expire=False,
        )
        results.upload_ms.append((time.perf_counter() - started) * 1000)
        await finish(self.watch, order, started, results)

    def taken(self) -> Counter[str]:
        """Messages each consumer took from its event queue so far, and the journal's."""
        counts: Counter[str] = Counter({s.service: sum(s.taken.values()) for s in self.services})
        counts["journal"] = self.journal.taken
        return counts

    async def stop(self) -> None:
        await self.watch_connection.close()
        await self.requester.stop()
        for consumer in self.services:
            await consumer.stop()
        await self.journal.stop()
        await delete_namespace(self.settings.rabbitmq_url, self.namespace)
