"""The event journal: every event that crossed the broker, kept in a database of its own.

Why an archiver and not a RabbitMQ stream: the journal must answer "everything about order X" and
"every PaymentDeclined since Monday", and RabbitMQ 3.10 streams filter nothing on the server (over
AMQP 0.9.1 a reader would scan the whole stream for each question). A queue bound to every routing
key feeds an archiver that stores each envelope once, under its event id, in the store the platform
already runs; the queue keeps what arrives while the archiver is down. Retention is
JOURNAL_RETENTION_DAYS. Timers (ReservationDeadline) are not journalled: see `Archiver.start`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
from pydantic import Field, ValidationError
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from contracts import topology
from contracts.base import Envelope, Timer
from contracts.events import ALL_EVENTS
from operations.answers import journal_server
from service_runtime import broker_nodes
from service_runtime.crypto import FieldCipher, place
from service_runtime.errors import until_up
from service_runtime.logs import setup_logging
from service_runtime.messaging import Topology, answer_on
from service_runtime.metrics import Readiness
from service_runtime.settings import RuntimeSettings
from service_runtime.store import UniqueViolation, unique_violations

log = logging.getLogger(__name__)
Document = dict[str, Any]


class JournalSettings(RuntimeSettings):
    # Its own variable: the operator's CLI reads it too, beside the services' MONGODB_DATABASE.
    journal_database: str = "pharmacy_journal"
    journal_retention_days: float = Field(default=30.0, gt=0)


class Journal:
    """The journal's collection: one document per event, under its event id, its payload sealed.

    Payloads carry prescriptions' lines and delivery locations, kept here for good: sealed like the
    services' own data. What the journal is searched by (type, ids, times) stays in clear.
    """

    def __init__(self, collection: AsyncCollection[Document], cipher: FieldCipher) -> None:
        self.collection = collection
        self.cipher = cipher

    @classmethod
    def connect(cls, settings: JournalSettings) -> tuple[AsyncMongoClient[Document], Journal]:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        return client, cls(client[settings.journal_database]["events"], FieldCipher.from_settings(settings))

    def _payload_at(self, event_id: str) -> str:
        return place(self.collection.name, event_id, "envelope.payload")

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("correlation_id", ASCENDING), ("occurred_at", ASCENDING)])
        await self.collection.create_index([("type", ASCENDING), ("occurred_at", ASCENDING)])

    async def record(
        self,
        envelope: Envelope,
        *,
        routing_key: str,
        publisher: str,
        arrived: int | None = None,
        decided_after: str | None = None,
    ) -> bool:
        """Keep one event; False when it is there already (a redelivery or a duplicate).

        `arrived` (ns since the epoch) is when the journal's queue delivered it: the order in which
        subscribers' queues got it too. `decided_after`: for an event decided on a command, the event
        its publisher handled just before.
        """
        document = self.document(
            envelope,
            routing_key=routing_key,
            publisher=publisher,
            arrived=arrived,
            decided_after=decided_after,
        )
        try:
            with unique_violations():
                await self.collection.insert_one(document)
        except UniqueViolation:
            return False
        return True

    def document(
        self,
        envelope: Envelope,
        *,
        routing_key: str,
        publisher: str,
        arrived: int | None = None,
        decided_after: str | None = None,
    ) -> Document:
        """How one event is kept: the envelope exactly as it crossed the broker (the store would round
        its time to the millisecond), its payload sealed, beside the fields the journal is searched by."""
        return {
            "_id": str(envelope.event_id),
            "type": envelope.type,
            "correlation_id": envelope.correlation_id,
            "occurred_at": envelope.occurred_at,
            "publisher": publisher,
            "routing_key": routing_key,
            "recorded_at": datetime.now(UTC),
            "arrived": arrived if arrived is not None else time.time_ns(),
            "decided_after": decided_after,
            "envelope": self.cipher.seal_payload(
                envelope.model_dump(mode="json"), at=self._payload_at(str(envelope.event_id))
            ),
        }

    async def find(
        self,
        *,
        types: Sequence[str] = (),
        correlation_id: str | None = None,
        publisher: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 0,
        as_delivered: bool = False,
    ) -> list[Document]:
        """Events matching every filter given, oldest first, their payloads opened.

        `as_delivered`: in the order the broker delivered them, not the order they occurred in. A
        replay goes in this order: an event decided earlier can be published later than another (the
        outbox publishes after the write), and subscribers applied them as they were delivered.
        """
        query: Document = {}
        if types:
            query["type"] = {"$in": list(types)}
        if correlation_id:
            query["correlation_id"] = correlation_id
        if publisher:
            query["publisher"] = publisher
        if since or until:
            query["occurred_at"] = {k: v for k, v in (("$gte", since), ("$lt", until)) if v is not None}
        order = "arrived" if as_delivered else "occurred_at"
        cursor = self.collection.find(query, sort=[(order, ASCENDING), ("_id", ASCENDING)], limit=limit)
        return [
            {**doc, "envelope": self.cipher.open_payload(doc["envelope"], at=self._payload_at(doc["_id"]))}
            async for doc in cursor
        ]

    async def prune(self, older_than: timedelta) -> int:
        result = await self.collection.delete_many({"recorded_at": {"$lt": datetime.now(UTC) - older_than}})
        return result.deleted_count


# Deliveries the archiver takes at once: each is recorded on its own, in any order.
JOURNAL_PREFETCH = 50


async def declare_journal_queue(
    channel: aio_pika.abc.AbstractChannel, namespace: str
) -> aio_pika.abc.AbstractQueue:
    """The journal's queue with its bindings, as the archiver (and the benchmark's ceiling) declare it."""
    exchange = await channel.declare_exchange(
        f"{namespace}.{topology.EVENTS_EXCHANGE}", aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(
        topology.journal_queue(namespace), durable=True, arguments={"x-queue-type": "quorum"}
    )
    # Every event but timers: a timer carries a TTL that would expire its copy here too, and what
    # it causes (ReservationExpired) is journalled when it fires.
    for event in ALL_EVENTS:
        if not issubclass(event, Timer):
            await queue.bind(exchange, routing_key=event.ROUTING_KEY)
    return queue


class Archiver:
    """Takes every event from the journal queue and records it; acks only once it is stored."""

    def __init__(self, settings: JournalSettings) -> None:
        self.settings = settings
        self.client, self.journal = Journal.connect(settings)
        self.recorded = 0
        # What a Ping of the journal's RPC queue reports (the gateway's /health asks it).
        self.readiness = Readiness(
            topology.JOURNAL,
            {"broker": self._broker_down, "store": self._store_down},
            timeout=settings.health_timeout_seconds,
        )

    async def _broker_down(self) -> str | None:
        return None if self.connection.connected.is_set() else "not connected to RabbitMQ"

    async def _store_down(self) -> str | None:
        await self.client.admin.command("ping")
        return None

    async def start(self) -> None:
        await until_up("the journal's store", self.journal.ensure_indexes)
        self.connection = await until_up(
            "RabbitMQ", lambda: broker_nodes.connect_robust(self.settings.rabbitmq_url)
        )
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=JOURNAL_PREFETCH)
        namespace = self.settings.broker_namespace
        queue = await declare_journal_queue(channel, namespace)
        await queue.consume(self._on_message)
        await self._answer_operators(namespace)
        log.info(
            "journal archiver started (namespace %s, database %s)", namespace, self.settings.journal_database
        )

    async def _answer_operators(self, namespace: str) -> None:
        """Serve the journal's RPC queue: the gateway's operator screens ask here for a saga's timeline
        and the dead letters, as no process but this one opens the journal's store."""
        server = journal_server(self.journal, self.settings.rabbitmq_url, namespace)
        server.readiness = self.readiness.report
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=self.settings.prefetch_count)
        # Declared as every service declares its own (Topology.rpc_queue), or the broker refuses it.
        spec = Topology(self.settings).rpc_queue(topology.JOURNAL)
        queue = await channel.declare_queue(spec.name, durable=spec.durable, arguments=spec.arguments)
        await answer_on(channel, queue, server)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        # Taken before the first await: deliveries are handled concurrently but start in their order.
        arrived = time.time_ns()
        try:
            envelope = Envelope.model_validate_json(message.body)
        except ValidationError:
            # Not an envelope: nothing to journal, and nothing the journal should hold up.
            log.warning("not journalled: message %s is not an event envelope", message.message_id)
            await message.ack()
            return
        headers = message.headers or {}
        publisher = str(headers.get("x-publisher") or "")
        after = str(headers.get("x-decided-after") or "") or None
        await until_up(
            "the journal's store",
            lambda: self.journal.record(
                envelope,
                routing_key=message.routing_key or "",
                publisher=publisher,
                arrived=arrived,
                decided_after=after,
            ),
        )
        self.recorded += 1
        await message.ack()

    async def prune_forever(self) -> None:
        keep = timedelta(days=self.settings.journal_retention_days)
        while True:
            try:
                if deleted := await self.journal.prune(keep):
                    log.info("journal retention: removed %d events older than %s", deleted, keep)
            except Exception as exc:  # retention must never stop the archiver
                log.warning("journal retention failed, will retry: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(3600)

    async def stop(self) -> None:
        await self.connection.close()
        await self.client.close()


async def main() -> None:
    settings = JournalSettings()
    setup_logging("journal", settings.log_level)
    archiver = Archiver(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await archiver.start()
    pruning = asyncio.create_task(archiver.prune_forever())
    await stop.wait()
    pruning.cancel()
    await archiver.stop()


if __name__ == "__main__":
    asyncio.run(main())
