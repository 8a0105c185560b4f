"""Fixtures that start real services, in one place, started once per session.

Backing services: RABBITMQ_URL / MONGODB_URL when set; testcontainers where a Docker engine answers;
otherwise scripts/infra.sh starts local RabbitMQ and FerretDB. Each integration test gets its own
broker namespace and databases, deleted afterwards, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import re
import secrets
import shutil
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import aio_pika
import httpx
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts import topology
from contracts.base import Envelope, Event
from contracts.documents import ScanDraftView
from contracts.events import Location, PrescribedLine, PrescriptionHeld, PrescriptionUploaded
from prescription_service.documents import Documents, StoredDocument
from service_runtime.crypto import FieldCipher, new_key, parse_keys, place
from service_runtime.launcher import (
    SERVICES,
    Platform,
    delete_namespace,
    drop_databases,
    free_port,
    throwaway_keys,
)
from service_runtime.messaging import ROUTING_KEYS, AmqpRequester, RpcClient
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings
from service_runtime.store import Repository

ROOT = Path(__file__).resolve().parent.parent
S = TypeVar("S", bound=RuntimeSettings)
T = TypeVar("T")


field_key = new_key

# This session's keys, never the development ones: platforms' processes, services started in-process
# and `pharmacy-ops` run by a test all read them from the environment.
FIELD_KEYS = throwaway_keys("test1")
os.environ.update(FIELD_KEYS)


@dataclass(frozen=True)
class Backing:
    rabbitmq_url: str
    mongodb_url: str


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)  # noqa: S607
    return probe.returncode == 0


@pytest.fixture(scope="session")
def backing() -> Iterator[Backing]:
    if os.environ.get("RABBITMQ_URL") and os.environ.get("MONGODB_URL"):
        yield Backing(os.environ["RABBITMQ_URL"], os.environ["MONGODB_URL"])
    elif _docker_answers():
        from testcontainers.mongodb import MongoDbContainer
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as rabbit, MongoDbContainer("mongo:7") as mongo:
            params = rabbit.get_connection_params()
            yield Backing(f"amqp://guest:guest@{params.host}:{params.port}/", mongo.get_connection_url())
    else:
        subprocess.run([str(ROOT / "scripts" / "infra.sh"), "start"], check=True)  # noqa: S603
        exports = subprocess.run(  # noqa: S603
            [str(ROOT / "scripts" / "infra.sh"), "env"], check=True, capture_output=True, text=True
        ).stdout
        found = dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines())
        yield Backing(found["RABBITMQ_URL"], found["MONGODB_URL"])


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@dataclass
class Namespace:
    """One test's private corner of the broker and the store."""

    backing: Backing
    name: str = field(default_factory=lambda: unique("t"))

    def settings(self, cls: type[S], **overrides: Any) -> S:
        values: dict[str, Any] = {
            "environment": "test",
            "rabbitmq_url": self.backing.rabbitmq_url,
            "mongodb_url": self.backing.mongodb_url,
            "mongodb_database": f"{self.name}_db",
            "broker_namespace": self.name,
            "retry_backoff_seconds": 0.05,
            "outbox_sweep_seconds": 0.5,
        }
        values.update(overrides)
        return cls(**values)


@pytest_asyncio.fixture
async def namespace(backing: Backing) -> AsyncIterator[Namespace]:
    ns = Namespace(backing)
    yield ns
    await delete_namespace(backing.rabbitmq_url, ns.name)
    await drop_databases(backing.mongodb_url, ns.name)


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Callable[[Service], Any]]:
    """Start a service in this process; it is stopped after the test."""
    started: list[Service] = []

    async def start(service: Service) -> Service:
        await service.start()
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        await service.stop()


class EventProbe:
    """Sees every event published in a namespace, and publishes events as another service would."""

    def __init__(self, connection: aio_pika.abc.AbstractRobustConnection, namespace: str) -> None:
        self.connection = connection
        self.namespace = namespace
        self.seen: list[Envelope] = []
        self._arrived = asyncio.Condition()

    async def start(self) -> None:
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(
            f"{self.namespace}.{topology.EVENTS_EXCHANGE}", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(self._on_message, no_ack=True)
        self.publisher = await self.connection.channel(publisher_confirms=True)
        self.exchange = await self.publisher.get_exchange(f"{self.namespace}.{topology.EVENTS_EXCHANGE}")

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with self._arrived:
            self.seen.append(Envelope.model_validate_json(message.body))
            self._arrived.notify_all()

    async def wait_for(
        self, event_type: type[Event], *, correlation_id: str | None = None, timeout: float = 10
    ) -> Envelope:
        def match() -> Envelope | None:
            for envelope in self.seen:
                if envelope.type == event_type.TYPE and correlation_id in (None, envelope.correlation_id):
                    return envelope
            return None

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(match), timeout)
        found = match()
        assert found is not None
        return found

    def of_type(self, event_type: type[Event]) -> list[Envelope]:
        return [e for e in self.seen if e.type == event_type.TYPE]

    async def caught_up(self) -> None:
        """Return once the probe has seen everything published before this call.

        A marker nobody else subscribes to, through the events exchange: the probe's queue holds what
        was published before it ahead of it."""
        marker = Envelope(type="ProbeMarker", correlation_id=f"marker-{uuid4()}", payload={})
        await self.publish_raw(
            marker.model_dump_json().encode(), "probe.marker", message_id=str(marker.event_id)
        )

        def seen() -> bool:
            return any(e.event_id == marker.event_id for e in self.seen)

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(seen), 10)

    async def publish(
        self, event: Event, *, correlation_id: str, envelope: Envelope | None = None
    ) -> Envelope:
        envelope = envelope or Envelope.wrap(event, correlation_id=correlation_id)
        await self.publish_raw(
            envelope.model_dump_json().encode(),
            ROUTING_KEYS[event.TYPE],
            message_id=str(envelope.event_id),
            correlation_id=envelope.correlation_id,
        )
        return envelope

    async def publish_raw(
        self, body: bytes, routing_key: str, *, message_id: str = "raw", correlation_id: str | None = None
    ) -> None:
        """Publish as a service's EventBus does; without a correlation id, as a stranger would."""
        headers: dict[str, aio_pika.abc.FieldValue] = (
            {} if correlation_id is None else {topology.PARTITION_HEADER: correlation_id}
        )
        await self.exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id,
                correlation_id=correlation_id,
                headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
            mandatory=True,
        )


async def handled_everything(service: Service, probe: EventProbe, *, timeout: float = 10) -> None:
    """Return once `service` has settled every message queued for it so far, and the probe has seen
    what it published meanwhile. One aggregate's messages are handled in order, different ones side
    by side: a later message of another order says nothing about the ones before it."""
    connection = probe.connection
    deadline = asyncio.get_running_loop().time() + timeout
    quiet_checks = 0
    while quiet_checks < 3:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{service.name} still had messages after {timeout} s")
        channel = await connection.channel()
        ready = 0
        for queue in service.topology.partition_queues(service.name):
            declared = await channel.declare_queue(queue.name, passive=True)
            ready += declared.declaration_result.message_count or 0
        await channel.close()
        idle = ready == 0 and service.events.settled == service.events.taken
        quiet_checks = quiet_checks + 1 if idle else 0
        await asyncio.sleep(0.05)
    await probe.caught_up()


async def eventually(
    read: Callable[[], Awaitable[T | None]], accept: Callable[[T], bool], *, what: str, timeout: float = 10
) -> T:
    """Read until `accept` holds, or fail after `timeout` seconds saying what was last seen."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        last = await read()
        if last is not None and accept(last):
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last seen: {last!r}")
        await asyncio.sleep(0.05)


def opened(repo: Repository[Any], doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document as stored, bookkeeping and all, with every field the repository seals opened, so tests
    compare values. Opening fails unless the field was stored sealed, for this very place."""
    found, cipher = dict(doc), repo.cipher
    for path in repo.sealed:
        name = path.removesuffix(".*")
        at = place(repo.collection.name, found["_id"], name)
        if path.endswith(".*"):
            found[name] = {key: cipher.open(value, at=f"{at}.{key}") for key, value in found[name].items()}
        else:
            found[name] = cipher.open(found[name], at=at)
    return found


async def stored(repo: Repository[Any], doc_id: str) -> dict[str, Any] | None:
    """One raw document of the repository's collection, opened (see `opened`); None when there is none."""
    doc = await repo.collection.find_one({"_id": doc_id})
    return None if doc is None else opened(repo, doc)


@pytest_asyncio.fixture
async def probe(namespace: Namespace) -> AsyncIterator[EventProbe]:
    connection = await aio_pika.connect_robust(namespace.backing.rabbitmq_url)
    # The topology must exist before the probe binds to it; declaring it is idempotent.
    from faststream.rabbit import RabbitBroker

    from service_runtime.messaging import Topology

    broker = RabbitBroker(namespace.backing.rabbitmq_url, logger=None)
    await broker.connect()
    await Topology(namespace.settings(RuntimeSettings)).declare(broker)
    await broker.stop()
    events = EventProbe(connection, namespace.name)
    await events.start()
    yield events
    await connection.close()


class TcpGate:
    """A TCP forwarder to a real server that a test can shut, as if the server went away, and open again.

    Shut: connections in flight are cut and new ones are closed at once (counted in `refused`).
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.is_open = True
        self.refused = 0
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_open:
            self.refused += 1
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._pipes.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()
                self._pipes.discard(sink)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def shut(self) -> None:
        self.is_open = False
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    def open(self) -> None:
        self.is_open = True

    async def stop(self) -> None:
        self.shut()
        self._server.close()
        await self._server.wait_closed()


@asynccontextmanager
async def gate_to(url: str) -> AsyncIterator[tuple[TcpGate, str]]:
    """A gate in front of the server a URL names, and the same URL pointing through the gate."""
    parts = urlsplit(url)
    gate = TcpGate(parts.hostname or "127.0.0.1", parts.port or 0)
    port = await gate.start()
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    try:
        yield gate, urlunsplit(parts._replace(netloc=netloc))
    finally:
        await gate.stop()


class RecordingChannel:
    """A publishing channel for unit tests: records each (exchange, routing key, message) published on
    it, then refuses with its `refusal` if it has one, else calls `answer` with the message."""

    def __init__(
        self, refusal: Exception | None, answer: Callable[[aio_pika.Message], Awaitable[None]]
    ) -> None:
        self.refusal = refusal
        self.answer = answer
        self.published: list[tuple[str, str, aio_pika.Message]] = []
        self.closed = False
        self.default_exchange = RecordingExchange(self, "")

    @property
    def is_closed(self) -> bool:
        return self.closed

    async def get_exchange(self, name: str, *, ensure: bool) -> RecordingExchange:
        assert not ensure  # declared with the topology at start: looked up, never declared again
        return RecordingExchange(self, name)

    async def declare_exchange(self, name: str, *_: Any, **__: Any) -> RecordingExchange:
        await asyncio.sleep(0)  # a round trip to the broker, as the real one: others run meanwhile
        return RecordingExchange(self, name)

    async def close(self) -> None:
        self.closed = True


@dataclass
class RecordingExchange:
    channel: RecordingChannel
    name: str

    async def publish(self, message: aio_pika.Message, *, routing_key: str, mandatory: bool) -> None:
        assert mandatory  # an unroutable message must fail, not vanish
        self.channel.published.append((self.name, routing_key, message))
        if self.channel.refusal is not None:
            raise self.channel.refusal
        await self.channel.answer(message)


async def _accepted(_: aio_pika.Message) -> None:
    return None


class RecordingConnection:
    """A broker connection for unit tests: its channels refuse with the next of `refusals` (None:
    accepts; accepting, when no refusal is left)."""

    def __init__(
        self,
        refusals: Sequence[Exception | None] = (),
        answer: Callable[[aio_pika.Message], Awaitable[None]] = _accepted,
    ) -> None:
        self.refusals = list(refusals)
        self.answer = answer
        self.opened: list[RecordingChannel] = []

    async def channel(self, **options: Any) -> RecordingChannel:
        assert options == {"publisher_confirms": True, "on_return_raises": True}
        await asyncio.sleep(0)  # a round trip to the broker: others run meanwhile
        opened = RecordingChannel(self.refusals.pop(0) if self.refusals else None, self.answer)
        self.opened.append(opened)
        return opened

    @property
    def published(self) -> list[tuple[str, str, aio_pika.Message]]:
        """Everything published on every channel, in the order the channels were opened."""
        return [p for c in self.opened for p in c.published]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header claims width x height pixels: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def prescription_uploaded() -> PrescriptionUploaded:
    """A patient's upload, as prescription_service publishes it, with fresh ids."""
    return PrescriptionUploaded(
        prescription_id=str(uuid4()),
        order_id=str(uuid4()),
        patient_id=f"patient-{uuid4().hex[:8]}",
        lines=(PrescribedLine(medication_id="amoxicillin-500", quantity=2),),
        delivery_location=Location(latitude=52.37, longitude=4.89),
        payment_method_id="pm-1",
    )


@asynccontextmanager
async def rpc_client(settings: RuntimeSettings) -> AsyncIterator[RpcClient]:
    """A caller of its own, as the gateway is: a broker connection that is not the service's."""
    requester = AmqpRequester(settings.rabbitmq_url, settings.broker_namespace)
    await requester.start()
    try:
        yield RpcClient(requester, settings)
    finally:
        await requester.stop()


async def dead_letters(rabbitmq_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Everything waiting in a dead-letter queue, left in place."""
    connection = await aio_pika.connect(rabbitmq_url)
    found = []
    async with connection:
        channel = await connection.channel()
        dlq = await channel.get_queue(topology.dead_letter_queue(queue))
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            found.append(message)
        await channel.close()  # unacked messages go back to the queue
    return found


# --- end to end: the five services as processes --------------------------------------------------

# Access tokens of the test platforms (make_platform): longer than a run of the suite.
ACCESS_TOKEN_MINUTES = 180
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "e2e-admin-password-1234"


def make_platform(
    backing: Backing,
    prefix: str,
    *,
    admin: tuple[str, str] = (ADMIN_EMAIL, ADMIN_PASSWORD),
    env: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> Platform:
    """A platform of the five services as processes, in a namespace and databases of its own."""
    full_env = dict(os.environ if env is None else env)
    full_env.update(
        {
            "RABBITMQ_URL": backing.rabbitmq_url,
            "MONGODB_URL": backing.mongodb_url,
            "ENVIRONMENT": "test",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ADMIN_EMAIL": admin[0],
            "ADMIN_PASSWORD": admin[1],
            "LOG_LEVEL": "INFO",
            # The session's `admin` token is taken once: a run of the suite outlasts the 15 minutes of
            # production (a rehearsal sharing its cores took 16, and the browser tests at its end got 401).
            "ACCESS_TOKEN_MINUTES": str(ACCESS_TOKEN_MINUTES),
            **FIELD_KEYS,
        }
    )
    return Platform(
        port=free_port(),
        namespace=unique(prefix),
        database_prefix=unique(prefix),
        log_dir=ROOT / ".run" / f"{prefix}-logs",
        env=full_env,
        replicas=replicas,
    )


@contextmanager
def started_platform(
    backing: Backing, prefix: str, *, env: Mapping[str, str] | None = None, timeout: float = 90
) -> Iterator[Platform]:
    """A platform of its own, started; stopped afterwards, its queues and databases removed."""
    running_platform = make_platform(backing, prefix, env=env)
    try:
        running_platform.start(timeout=timeout)
        yield running_platform
    finally:
        running_platform.stop()
        # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
        cleaning = threading.Thread(
            target=lambda: (
                asyncio.run(delete_namespace(backing.rabbitmq_url, running_platform.namespace)),
                asyncio.run(drop_databases(backing.mongodb_url, running_platform.database_prefix)),
            )
        )
        cleaning.start()
        cleaning.join()


@pytest.fixture(scope="session")
def platform(backing: Backing) -> Iterator[Platform]:
    with started_platform(backing, "e2e") as running_platform:
        yield running_platform


class Api:
    """A small HTTP client for the gateway, with the steps every scenario needs."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30)

    def token(self, email: str, password: str) -> dict[str, str]:
        answer = self.http.post("/auth/token", data={"username": email, "password": password})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def new_patient(self) -> tuple[dict[str, Any], dict[str, str]]:
        email = f"{unique('patient')}@example.com"
        password = "a long enough password"
        answer = self.http.post(
            "/auth/register", json={"email": email, "password": password, "full_name": "Pat Ient"}
        )
        assert answer.status_code == 201, answer.text
        return answer.json(), self.token(email, password)

    def wait_until(
        self,
        condition: Callable[[], bool],
        what: str,
        last_seen: Callable[[], str] = str,
        timeout: float = 20,
    ) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for: {what}; last seen: {last_seen()}")

    def wait_for_status(
        self, order_id: str, headers: dict[str, str], statuses: set[str], timeout: float = 20
    ) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            answer = self.http.get(f"/orders/{order_id}", headers=headers)
            if answer.status_code == 200:
                last = answer.json()
                if last["status"] in statuses:
                    return dict(last)
            time.sleep(0.05)
        raise AssertionError(
            f"order {order_id} did not reach {statuses} in {timeout} s; last seen: {json.dumps(last)}"
        )


# --- the steps of the e2e scenarios ---------------------------------------------------------------

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"


@dataclass
class Shop:
    """A pharmacy of this test's own, far from the others, stocking a medication of its own."""

    pharmacy_id: str
    medication_id: str
    latitude: float
    longitude: float
    price: float


def open_shop(
    api: Api, admin: dict[str, str], *, quantity: int, price: str = "4.20", prescription_only: bool = False
) -> Shop:
    """Over the counter unless asked: a prescription-only medication waits for a pharmacist first."""
    latitude, longitude = round(random.uniform(-60, 60), 4), round(random.uniform(-170, 170), 4)
    pharmacy = api.http.post(
        "/pharmacies",
        headers=admin,
        json={
            "name": "Corner Pharmacy",
            "address": "1 High Street",
            "latitude": latitude,
            "longitude": longitude,
        },
    )
    assert pharmacy.status_code == 201, pharmacy.text
    medication = api.http.post(
        "/medications",
        headers=admin,
        json={
            "name": f"{'Amoxicillin' if prescription_only else 'Ibuprofen'} {secrets.token_hex(3)}",
            "strength": "500 mg",
            "form": "capsule",
            "price": price,
            "prescription_only": prescription_only,
        },
    )
    assert medication.status_code == 201, medication.text
    shop = Shop(pharmacy.json()["id"], medication.json()["id"], latitude, longitude, float(price))
    stock = api.http.put(
        f"/pharmacies/{shop.pharmacy_id}/stock/{shop.medication_id}",
        headers=admin,
        json={"quantity": quantity},
    )
    assert stock.status_code == 200, stock.text
    return shop


def add_card(api: Api, patient: dict[str, str], number: str = GOOD_CARD) -> str:
    answer = api.http.post(
        "/payment-methods",
        headers=patient,
        json={"card_number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def prescription_body(shop: Shop, card_id: str, quantity: int = 1) -> dict[str, Any]:
    """An upload of one line of the shop's medication, delivered next to the shop."""
    return {
        "lines": [{"medication_id": shop.medication_id, "quantity": quantity}],
        "delivery_location": {"latitude": shop.latitude + 0.01, "longitude": shop.longitude + 0.01},
        "payment_method_id": card_id,
    }


def upload(api: Api, patient: dict[str, str], shop: Shop, card_id: str, quantity: int) -> dict[str, Any]:
    answer = api.http.post("/prescriptions", headers=patient, json=prescription_body(shop, card_id, quantity))
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def new_pharmacist(api: Api, admin: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A user made a pharmacist by an admin (of the central verification team)."""
    user, _ = api.new_patient()
    answer = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": "pharmacist"})
    assert answer.status_code == 200, answer.text
    # A fresh token: the role is read from the store, but a new sign-in is what a pharmacist does.
    return answer.json(), api.token(user["email"], "a long enough password")


def approve(api: Api, pharmacist: dict[str, str], prescription_id: str, **body: Any) -> dict[str, Any]:
    answer = api.http.post(f"/verifications/{prescription_id}/approve", headers=pharmacist, json=body or None)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def stock_left(api: Api, headers: dict[str, str], shop: Shop) -> int:
    answer = api.http.get(f"/medications/{shop.medication_id}/availability", headers=headers)
    assert answer.status_code == 200, answer.text
    return sum(p["quantity"] for p in answer.json() if p["pharmacy_id"] == shop.pharmacy_id)


@pytest.fixture(scope="session")
def api(platform: Platform) -> Iterator[Api]:
    client = Api(platform.url)
    yield client
    client.http.close()


@pytest.fixture(scope="session")
def admin(api: Api) -> dict[str, str]:
    return api.token(ADMIN_EMAIL, ADMIN_PASSWORD)


# --- scanned documents -----------------------------------------------------------------------------


def printed(lines: Sequence[str], size: tuple[int, int], *, angle: float = 0, **save: Any) -> bytes:
    """A page printed with these lines (DejaVu Sans, 42 px, 130 px apart), turned `angle` degrees and
    saved as `save` says (`format="PNG"`, or JPEG with a quality...)."""
    from PIL import Image, ImageDraw, ImageFont

    from benchmarks.ocr_set import font_path

    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(font_path("dejavu/DejaVuSans.ttf")), 42)
    for row, text in enumerate(lines):
        draw.text((100, 100 + row * 130), text, font=font, fill=0)
    if angle:
        page = page.rotate(angle, expand=True, fillcolor=255)
    buffer = io.BytesIO()
    page.save(buffer, **{"format": "PNG", **save})
    return buffer.getvalue()


def blank_png() -> bytes:
    """A blank page: the scan worker reads it into a draft of no lines, in a fraction of a second."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (400, 200), 255).save(buffer, "PNG")
    return buffer.getvalue()


def scan(api: Api, patient: dict[str, str], content: bytes | None = None) -> str:
    """Scan a document through the gateway as the patient does; its draft's document id."""
    document = ("scan.png", content or blank_png(), "image/png")
    answer = api.http.post("/prescriptions/scan", headers=patient, files={"document": document})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["document_id"])


async def stored_scans(
    db: AsyncDatabase[dict[str, Any]], cipher: FieldCipher, patient_ids: Sequence[str]
) -> list[str]:
    """A scanned document of each patient given, kept as the scan worker keeps one (a blank page, a
    draft of no lines): for tests whose subject is what comes after the scan, not the reading."""
    content, ids = blank_png(), []
    for patient_id in patient_ids:
        document_id = f"doc-{uuid4().hex}"
        draft = ScanDraftView(
            document_id=document_id, content_type="image/png", text="", lines=(), pages=1, seconds=0.0
        )
        await Documents(db, cipher).put(
            StoredDocument(
                document_id=document_id,
                patient_id=patient_id,
                content_type="image/png",
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                created_at=datetime.now(UTC),
                draft=draft,
                content=content,
            )
        )
        ids.append(document_id)
    return ids


def platform_scans(platform: Platform, mongodb_url: str, patient_ids: Sequence[str]) -> list[str]:
    """stored_scans, in the store of a platform running as processes, sealed with its keys."""
    keys = parse_keys(platform.base_env["FIELD_ENCRYPTION_KEYS"])
    cipher = FieldCipher(keys, platform.base_env.get("FIELD_ENCRYPTION_KEY_ID") or next(iter(keys)))

    async def store() -> list[str]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
        try:
            return await stored_scans(client[platform.database("prescription_service")], cipher, patient_ids)
        finally:
            await client.close()

    return asyncio.run(store())


__all__ = [
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "DECLINED_CARD",
    "GOOD_CARD",
    "SERVICES",
    "Api",
    "Backing",
    "EventProbe",
    "Namespace",
    "Shop",
    "TcpGate",
    "add_card",
    "approve",
    "blank_png",
    "dead_letters",
    "field_key",
    "gate_to",
    "make_platform",
    "new_pharmacist",
    "open_shop",
    "opened",
    "platform_scans",
    "prescription_body",
    "prescription_uploaded",
    "printed",
    "rpc_client",
    "scan",
    "started_platform",
    "stock_left",
    "stored",
    "stored_scans",
    "upload",
]


# --- the last mile, as the e2e and browser tests drive it --------------------------------------------


def new_courier(api: Api, admin: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    user, _ = api.new_patient()
    answer = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": "courier"})
    assert answer.status_code == 200, answer.text
    return answer.json(), api.token(user["email"], "a long enough password")


def staff_of(api: Api, admin: dict[str, str], shop: Shop) -> dict[str, str]:
    pharmacist, headers = new_pharmacist(api, admin)
    joined = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{pharmacist['id']}", headers=admin)
    assert joined.status_code == 200, joined.text
    return headers


def available(api: Api, courier: dict[str, str], shop: Shop, *, north_km: float) -> dict[str, Any]:
    """The courier takes deliveries, `north_km` north of the shop (a degree of latitude is 111 km)."""
    answer = api.http.put(
        "/couriers/me",
        headers=courier,
        json={"available": True, "latitude": shop.latitude + north_km / 111, "longitude": shop.longitude},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def polled(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        last = read()
        if done(last) or time.monotonic() > deadline:
            return last
        time.sleep(0.1)


def dispensed(api: Api, pharmacist: dict[str, str], shop: Shop, order_id: str) -> None:
    queue = api.http.get(f"/pharmacies/{shop.pharmacy_id}/dispensing", headers=pharmacist)
    assert queue.status_code == 200, queue.text
    assert order_id in [item["order_id"] for item in queue.json()["items"]]
    answer = api.http.post(f"/orders/{order_id}/dispense", headers=pharmacist)
    assert answer.status_code == 200, answer.text


def assigned_to(api: Api, courier: dict[str, str], order_id: str) -> dict[str, Any]:
    delivery = polled(
        lambda: api.http.get(f"/deliveries/{order_id}", headers=courier),
        lambda answer: answer.status_code == 200 and answer.json()["status"] == "ASSIGNED",
    )
    assert delivery.status_code == 200, delivery.text
    assert delivery.json()["status"] == "ASSIGNED", delivery.json()
    return dict(delivery.json())


# --- the browser (tests/browser) -------------------------------------------------------------------

# Debian's chromium, installed by scripts/system-packages.sh --browser: Playwright cannot download one here.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: run scripts/system-packages.sh --browser (make test does)")
    # Root in a container has no user namespace for chromium's sandbox.
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any], platform: Platform) -> dict[str, Any]:
    return {**browser_context_args, "base_url": platform.url, "locale": "en-GB", "timezone_id": "UTC"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run last. Playwright's sync API keeps an event loop running in pytest's thread
    from its first page to the end of the session, and every async test after it would fail to start
    its own; the session's own clean-up runs in threads (`started_platform`)."""
    browser = [item for item in items if "tests/browser/" in item.nodeid.replace("\\", "/")]
    if browser:
        others = [item for item in items if item not in browser]
        items[:] = others + browser


# --- a paid order waiting for the last mile (the courier's web tests) --------------------------------


def confirmed_order(
    api: Api, shop: Shop, *, quantity: int = 1, window_hours: float = 1
) -> tuple[dict[str, str], str]:
    """A new patient's order of the shop's medication, paid (CONFIRMED), to be delivered next to the
    shop in a two-hour window starting `window_hours` from now: the patient's headers and its id."""
    _, patient = api.new_patient()
    body = prescription_body(shop, add_card(api, patient), quantity)
    start = datetime.now(UTC) + timedelta(hours=window_hours)
    body["delivery_window"] = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    uploaded = api.http.post("/prescriptions", headers=patient, json=body)
    assert uploaded.status_code == 202, uploaded.text
    order = api.wait_for_status(uploaded.json()["order_id"], patient, {"CONFIRMED", "REJECTED", "CANCELLED"})
    assert order["status"] == "CONFIRMED", order
    return patient, str(order["id"])


# --- the operator's screens: a dead letter that a redrive clears --------------------------------------


@dataclass(frozen=True)
class HeldTooEarly:
    """A pharmacist's question that reached order_service before its order existed: retried, then
    dead-lettered (RetryLater). Once `make_the_order` has run, redriving it applies it and the dead
    letter is gone for good."""

    platform: Platform
    backing: Backing
    message_id: str
    order_id: str

    def _publish(self, event: Event) -> None:
        async def publish() -> None:
            connection = await aio_pika.connect(self.backing.rabbitmq_url)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.get_exchange(f"{self.platform.namespace}.{topology.EVENTS_EXCHANGE}")
                envelope = Envelope.wrap(event, correlation_id=self.order_id)
                message = aio_pika.Message(
                    envelope.model_dump_json().encode(),
                    message_id=self.message_id
                    if event.TYPE == "PrescriptionHeld"
                    else str(envelope.event_id),
                    correlation_id=self.order_id,
                    type=event.TYPE,
                    headers={topology.PARTITION_HEADER: self.order_id},
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await exchange.publish(message, routing_key=event.ROUTING_KEY, mandatory=True)

        # In a thread of its own: the browser tests' Playwright keeps an event loop in this one.
        worker = threading.Thread(target=lambda: asyncio.run(publish()))
        worker.start()
        worker.join()

    def dead_lettered(self) -> list[str]:
        """The message ids of order_service's dead letters now (this one's among them, or not)."""
        queue = topology.event_queue(self.platform.namespace, "order_service")
        found: list[str] = []
        worker = threading.Thread(
            target=lambda: found.extend(
                m.message_id or "" for m in asyncio.run(dead_letters(self.backing.rabbitmq_url, queue))
            )
        )
        worker.start()
        worker.join()
        return found

    def make_the_order(self) -> None:
        """The cause goes away: the order is uploaded (prescription-only, so it waits for a pharmacist)."""
        self._publish(
            PrescriptionUploaded(
                prescription_id=f"rx-{self.order_id}",
                order_id=self.order_id,
                patient_id=f"patient-{uuid4().hex[:8]}",
                lines=(PrescribedLine(medication_id="amoxicillin-500", quantity=1, prescription_only=True),),
                delivery_location=Location(latitude=52.37, longitude=4.89),
                payment_method_id="pm-1",
            )
        )


def held_too_early(platform: Platform, backing: Backing) -> HeldTooEarly:
    """Publish a question for an order that does not exist yet; return once order_service has
    dead-lettered it (after its retries, a few seconds)."""
    letter = HeldTooEarly(platform, backing, f"held-{uuid4().hex[:12]}", str(uuid4()))
    letter._publish(
        PrescriptionHeld(
            prescription_id=f"rx-{letter.order_id}",
            order_id=letter.order_id,
            patient_id="patient-x",
            pharmacist_id="pharmacist-x",
            question="Since when?",
        )
    )
    polled(lambda: letter.dead_lettered(), lambda ids: letter.message_id in ids, timeout=60)
    assert letter.message_id in letter.dead_lettered(), "order_service did not dead-letter the question"
    return letter


# --- The web UI driven over HTTP, as a signed-in browser would (the web pages' rule tests) ---

PASSWORD = "a long enough password"  # as Api.new_patient registers
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(page: httpx.Response) -> str:
    """The CSRF token of a page's form."""
    found = CSRF_FIELD.search(page.text)
    assert found is not None, f"{page.request.url}: {page.status_code} {page.text[:500]}"
    return found.group(1)


class WebSession:
    """A browser's part over httpx: signed in through the sign-in form, its cookies kept, its forms sent
    with the session's CSRF token (`csrf`).

    Cookies by hand: outside development they are `__Host-` and `Secure`, which httpx's jar withholds
    over plain HTTP (a browser trusts 127.0.0.1 as a secure origin)."""

    def __init__(self, base_url: str, email: str, password: str = PASSWORD) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.cookies: dict[str, str] = {}
        form = {"email": email, "password": password, "csrf_token": csrf_in(self.get("/sign-in"))}
        signed = self.post("/sign-in", form, with_token=False)
        assert signed.status_code == 303, signed.text
        # Every signed-in page carries the session's token (in its sign-out form, at least): the start
        # page, wherever it sends the user's role.
        landing = self.get("/")
        while landing.status_code == 303:
            landing = self.get(landing.headers["location"])
        self.csrf = csrf_in(landing)

    def send(self, method: str, path: str, **options: Any) -> httpx.Response:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        answer = self.http.request(method, path, headers=headers, **options)
        for line in answer.headers.get_list("set-cookie"):
            for name, morsel in SimpleCookie(line).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.send("GET", path, params=params or None)

    def post(
        self, path: str, form: Mapping[str, str | list[str]] | None = None, *, with_token: bool = True
    ) -> httpx.Response:
        """The form as sent from one of the user's pages: with the session's CSRF token unless the form
        has one; `with_token=False`, as another site would send it (only what the form has)."""
        data = {"csrf_token": self.csrf, **(form or {})} if with_token else dict(form or {})
        return self.send("POST", path, data=data)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def web(platform: Platform) -> Iterator[Callable[[str], WebSession]]:
    """Signs a user in on the shared platform's web pages (by email, with Api's password); closed after."""
    opened: list[WebSession] = []

    def sign_in(email: str) -> WebSession:
        opened.append(WebSession(platform.url, email))
        return opened[-1]

    yield sign_in
    for session in opened:
        session.close()
