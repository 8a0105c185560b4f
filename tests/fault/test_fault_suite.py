"""The fault suite: a few hundred orders through the gateway while processes, broker and store fail.

Runs its own RabbitMQ and FerretDB (scripts/infra.sh on ports of their own, so it can restart them),
two replicas of every back-end service, and the gateway, all as processes. While patients upload
prescriptions, cancel some orders and pay with cards that are sometimes declined, it:

- kills -9 every process in turn (both replicas of each service, and the gateway) and restarts it;
- restarts RabbitMQ, and stops the store for a while and starts it again;
- takes both payment replicas away until reservations expire, so that payments arrive late;
- publishes every event a second time, as it crosses the broker (same event id);
- publishes malformed messages onto every queue of the namespace.

Then it checks the invariants of issue 3 and prints a table of faults, orders and results. Seeded
(FAULT_SEED) and bounded: every wait has a deadline, and no sleep stands in for a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

# Under `mypy .` conftest resolves; checked alone, tests/fault cannot see it.
from conftest import ROOT, Backing, make_platform, platform_scans, unique
from pymongo import MongoClient

from contracts import topology
from contracts.base import Envelope, Timer
from contracts.events import (
    ALL_EVENTS,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderRejected,
    PrescriptionVerified,
    ReservationExpired,
    StockReserved,
)
from service_runtime.launcher import ARCHIVER, DATABASES, Platform, delete_namespace
from service_runtime.settings import RuntimeSettings

pytestmark = pytest.mark.fault

SEED = int(os.environ.get("FAULT_SEED", "20261126"))
ORDERS = int(os.environ.get("FAULT_ORDERS", "300"))
PATIENTS = 12
REPLICAS = 2
HOLD_SECONDS = 8.0
# Every order must be terminal this long after the last upload was accepted.
TERMINAL_WITHIN_SECONDS = 240.0
RABBITMQ_PORT = int(os.environ.get("FAULT_RABBITMQ_PORT", "5682"))
FERRETDB_PORT = int(os.environ.get("FAULT_FERRETDB_PORT", "27027"))
BACKENDS = ("inventory_service", "payment_service", "order_service", "prescription_service")
TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}
GOOD_CARD, DECLINED_CARD = "4242424242424242", "4000000000000002"
MEDICATIONS = {"plenty-a": ORDERS * 4, "plenty-b": ORDERS * 4, "scarce": 15}
# Prescription-only: its orders wait for the pharmacist thread, who approves them through the faults.
PRESCRIPTION_ONLY = {"plenty-b"}
PHARMACIES = [("Mitte", 52.5200, 13.4050), ("Kreuzberg", 52.4986, 13.4030), ("Pankow", 52.5690, 13.4010)]
DUPLICATE_HEADER = "x-fault-duplicate"
# What a process logs once it takes messages (back-end) or requests (gateway).
STARTED = {"user_service": "Application startup complete"}
BACKEND_STARTED = "started (namespace"
TERMINAL_EVENTS = {OrderConfirmed.TYPE, OrderRejected.TYPE, OrderCancelled.TYPE}
TIMER_TYPES = {e.TYPE for e in ALL_EVENTS if issubclass(e, Timer)}
# A patient waits this long for the end of one order before uploading the next.
SAGA_PATIENCE_SECONDS = 180.0


# --- the backing services, ours to restart -----------------------------------------------------------


class Infra:
    """RabbitMQ and FerretDB of the fault suite alone, driven through scripts/infra.sh."""

    def __init__(self, state: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if k not in ("RABBITMQ_URL", "MONGODB_URL")}
        self.env.update(
            {
                "PHARMACY_STATE_DIR": str(state),
                "RABBITMQ_PORT": str(RABBITMQ_PORT),
                "FERRETDB_PORT": str(FERRETDB_PORT),
                # The FerretDB the main run built, so this one is not built a second time.
                "PATH": f"{ROOT / '.run' / 'bin'}:{os.environ.get('PATH', '')}",
            }
        )
        self.rabbitmq_url = f"amqp://guest:guest@127.0.0.1:{RABBITMQ_PORT}/"
        self.mongodb_url = f"mongodb://127.0.0.1:{FERRETDB_PORT}/"

    def __call__(self, action: str) -> None:
        subprocess.run(  # noqa: S603 - our own script
            [str(ROOT / "scripts" / "infra.sh"), action], env=self.env, check=True, timeout=600
        )


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    backing = Infra(ROOT / ".run" / "fault")
    backing("start")
    try:
        yield backing
    finally:
        backing("stop")


# --- what crosses the broker: kept, and published a second time ---------------------------------------


@dataclass
class Tap:
    """Keeps every event published on the namespace's exchange and publishes each one a second time.

    Its queue is durable, so it misses nothing while RabbitMQ restarts.
    """

    rabbitmq_url: str
    namespace: str
    originals: dict[str, Envelope] = field(default_factory=dict)
    # Orders whose saga ended, and the Condition patients wait on for theirs.
    ended: set[str] = field(default_factory=set)
    ending: threading.Condition = field(default_factory=threading.Condition)
    duplicates_sent: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def queue(self) -> str:
        return f"{self.namespace}.fault-tap"

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        connection = await aio_pika.connect_robust(self.rabbitmq_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=50)
            exchange = await channel.get_exchange(f"{self.namespace}.{topology.EVENTS_EXCHANGE}")
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(exchange, routing_key="#")

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                headers = dict(message.headers or {})
                if not headers.get(DUPLICATE_HEADER):
                    envelope = Envelope.model_validate_json(message.body)
                    with self.lock:
                        first = str(envelope.event_id) not in self.originals
                        self.originals.setdefault(str(envelope.event_id), envelope)
                    if envelope.type in TERMINAL_EVENTS:
                        with self.ending:
                            self.ended.add(envelope.correlation_id)
                            self.ending.notify_all()
                    if first:
                        await exchange.publish(
                            aio_pika.Message(
                                message.body,
                                headers={**headers, DUPLICATE_HEADER: 1},
                                message_id=message.message_id,
                                correlation_id=message.correlation_id,
                                type=message.type,
                                content_type=message.content_type,
                                expiration=message.expiration,
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=message.routing_key or "",
                        )
                        with self.lock:
                            self.duplicates_sent += 1
                await message.ack()

            await queue.consume(on_message)
            self.ready.set()
            await asyncio.get_running_loop().run_in_executor(None, self.stopping.wait)

    def wait_for_end(self, order_id: str, timeout: float) -> bool:
        with self.ending:
            return self.ending.wait_for(lambda: order_id in self.ended, timeout)

    def of_type(self, kind: str) -> list[Envelope]:
        with self.lock:
            return [e for e in self.originals.values() if e.type == kind]


def queue_delete(rabbitmq_url: str, name: str) -> None:
    async def delete() -> None:
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(name)

    asyncio.run(delete())


def queue_depths(rabbitmq_url: str, names: list[str]) -> dict[str, int]:
    async def depths() -> dict[str, int]:
        found = {}
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            for name in names:
                channel = await connection.channel()
                queue = await channel.declare_queue(name, passive=True)
                found[name] = queue.declaration_result.message_count or 0
                await channel.close()
        return found

    return asyncio.run(depths())


def dead_letters_of(rabbitmq_url: str, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """(message id, headers) of everything in a dead-letter queue, left in place."""

    async def read() -> list[tuple[str, dict[str, Any]]]:
        found = []
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.get_queue(topology.dead_letter_queue(queue))
            while (message := await dlq.get(no_ack=False, fail=False)) is not None:
                found.append((message.message_id or "", dict(message.headers or {})))
        return found

    return asyncio.run(read())


def publish_malformed(rabbitmq_url: str, namespace: str) -> list[tuple[str, str]]:
    """Bad messages onto every queue the platform reads; returns (queue, message id) of each."""
    bad_event_bodies = {
        "not-json": b"{this is not json",
        "unknown-type": Envelope(type="PrescriptionFaxed", correlation_id="fault", payload={})
        .model_dump_json()
        .encode(),
        "bad-payload": Envelope(type=OrderCreated.TYPE, correlation_id="fault", payload={"order_id": 7})
        .model_dump_json()
        .encode(),
    }
    sent: list[tuple[str, str]] = []

    async def publish() -> None:
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            for service in BACKENDS:
                queue = topology.event_queue(namespace, service)
                for kind, body in bad_event_bodies.items():
                    message_id = f"fault-malformed-{service}-{kind}"
                    message = aio_pika.Message(body, message_id=message_id, type=kind)
                    await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)
                    sent.append((queue, message_id))
                # A read command that is not JSON, with nobody to answer: refused, and the queue moves on.
                rpc = topology.rpc_queue(namespace, service)
                garbage = aio_pika.Message(
                    b"\x00\xff", message_id=f"fault-malformed-{service}-rpc", type="Ping"
                )
                await channel.default_exchange.publish(garbage, routing_key=rpc, mandatory=True)
                sent.append((rpc, f"fault-malformed-{service}-rpc"))
            # A timer that is due at once and not an envelope: it lands in inventory's dead letters.
            timers = topology.timer_queue(namespace, "inventory_service")
            timer = aio_pika.Message(b"[]", message_id="fault-malformed-timer", expiration=0.2)
            await channel.default_exchange.publish(timer, routing_key=timers, mandatory=True)
            sent.append((topology.event_queue(namespace, "inventory_service"), "fault-malformed-timer"))

    asyncio.run(publish())
    return sent


# --- the patients ---------------------------------------------------------------------------------


class Gateway:
    """HTTP to the gateway that waits out a gateway restart or a 503, up to a deadline."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/api/v1", timeout=30)
        self.retries = 0

    def call(self, method: str, path: str, *, patience: float = 120.0, **options: Any) -> httpx.Response:
        deadline = time.monotonic() + patience
        delay = 0.1
        while True:
            try:
                answer = self.http.request(method, path, **options)
                if answer.status_code not in (502, 503, 504):
                    return answer
                last = f"{answer.status_code} {answer.text[:200]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} kept failing for {patience} s: {last}")
            self.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def token(self, email: str, password: str) -> dict[str, str]:
        answer = self.call("POST", "/auth/token", data={"username": email, "password": password})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@dataclass
class Patient:
    headers: dict[str, str]
    good_card: str
    declined_card: str


def new_patient(gateway: Gateway) -> Patient:
    email, password = f"{unique('fault')}@example.com", secrets.token_urlsafe(16)
    answer = gateway.call(
        "POST", "/auth/register", json={"email": email, "password": password, "full_name": "Fault Patient"}
    )
    assert answer.status_code == 201, answer.text
    headers = gateway.token(email, password)
    cards = []
    for number in (GOOD_CARD, DECLINED_CARD):
        card = {"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"}
        answer = gateway.call("POST", "/payment-methods", headers=headers, json=card)
        assert answer.status_code == 201, answer.text
        cards.append(answer.json()["id"])
    return Patient(headers, *cards)


@dataclass
class Load:
    """What the patients did: accepted uploads, cancellations asked for, and anything unexpected."""

    accepted: list[str] = field(default_factory=list)
    cancels_asked: int = 0
    declined_cards_used: int = 0
    unexpected: list[str] = field(default_factory=list)
    patients_done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finished(self) -> bool:
        with self.lock:
            return self.patients_done == PATIENTS

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)


def drive(gateway: Gateway, patient: Patient, plan: list[dict[str, Any]], load: Load, tap: Tap) -> None:
    try:
        follow(gateway, patient, plan, load, tap)
    except Exception as exc:  # a patient who gives up is a finding, not a silent thread death
        with load.lock:
            load.unexpected.append(f"patient stopped: {type(exc).__name__}: {exc}")
    finally:
        with load.lock:
            load.patients_done += 1


def follow(gateway: Gateway, patient: Patient, plan: list[dict[str, Any]], load: Load, tap: Tap) -> None:
    """One prescription at a time, as a patient does: upload, perhaps cancel, wait for the outcome."""
    for step in plan:
        card = patient.declined_card if step["declined"] else patient.good_card
        body = {"lines": step["lines"], "delivery_location": step["where"], "payment_method_id": card}
        # A scan behind every upload: its prescription-only lines then wait for the pharmacist.
        body["document_id"] = step["document_id"]
        # One key for every retry of this upload: a retry after a fault makes no second prescription.
        headers = {**patient.headers, "Idempotency-Key": secrets.token_urlsafe(16)}
        answer = gateway.call("POST", "/prescriptions", headers=headers, json=body)
        if answer.status_code != 202:
            with load.lock:
                load.unexpected.append(f"upload answered {answer.status_code}: {answer.text[:200]}")
            continue
        order_id = answer.json()["order_id"]
        with load.lock:
            load.accepted.append(order_id)
            load.declined_cards_used += step["declined"]
        if step["cancel"]:
            answer = gateway.call("DELETE", f"/orders/{order_id}", headers=patient.headers)
            with load.lock:
                load.cancels_asked += 1
                # 409: the order ended first. Anything else but 200 is a defect.
                if answer.status_code not in (200, 409):
                    load.unexpected.append(f"cancel answered {answer.status_code}: {answer.text[:200]}")
        if not tap.wait_for_end(order_id, SAGA_PATIENCE_SECONDS):
            with load.lock:
                load.unexpected.append(f"order {order_id} did not end within {SAGA_PATIENCE_SECONDS:.0f} s")


@dataclass
class Verifier:
    """The central pharmacist: approves whatever waits in the queue until the patients are done."""

    approved: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def verify(gateway: Gateway, pharmacist: dict[str, str], load: Load, verifier: Verifier) -> None:
    try:
        while True:
            done = load.finished()
            answer = gateway.call("GET", "/verifications", headers=pharmacist, params={"limit": 200})
            if answer.status_code != 200:
                verifier.unexpected.append(f"queue answered {answer.status_code}: {answer.text[:200]}")
                return
            waiting = [entry["prescription"]["id"] for entry in answer.json()["items"]]
            if done and not waiting:
                return
            for prescription_id in waiting:
                url = f"/verifications/{prescription_id}/approve"
                approved = gateway.call("POST", url, headers=pharmacist)
                # 409: the patient cancelled it first. Anything else but 200 is a defect.
                if approved.status_code == 200:
                    verifier.approved.add(prescription_id)
                elif approved.status_code == 409:
                    verifier.refused.append(prescription_id)
                else:
                    verifier.unexpected.append(
                        f"approve answered {approved.status_code}: {approved.text[:200]}"
                    )
            time.sleep(0.2)
    except Exception as exc:
        verifier.unexpected.append(f"pharmacist stopped: {type(exc).__name__}: {exc}")


def plans(medication_ids: dict[str, str], rng: random.Random) -> list[list[dict[str, Any]]]:
    """Every patient's uploads: mostly plentiful stock, some scarce, some declined cards, some cancels."""
    per_patient: list[list[dict[str, Any]]] = [[] for _ in range(PATIENTS)]
    for n in range(ORDERS):
        names = rng.sample(["plenty-a", "plenty-b"], k=rng.choice([1, 2]))
        if rng.random() < 0.15:
            names.append("scarce")
        per_patient[n % PATIENTS].append(
            {
                "lines": [
                    {"medication_id": medication_ids[name], "quantity": rng.randint(1, 3)} for name in names
                ],
                "where": {"latitude": 52.48 + rng.random() * 0.1, "longitude": 13.38 + rng.random() * 0.05},
                "declined": rng.random() < 0.08,
                "cancel": rng.random() < 0.08,
            }
        )
    return per_patient


# --- the faults -----------------------------------------------------------------------------------


@dataclass
class FaultLog:
    rows: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, fault: str, at_order: int, detail: str) -> None:
        self.rows.append((fault, at_order, detail))


def inject_faults(
    platform: Platform, infra: Infra, tap: Tap, load: Load, faults: FaultLog, malformed: list[tuple[str, str]]
) -> None:
    """Walk the schedule: each fault fires once the load has reached its share of accepted orders."""
    steps: list[tuple[float, str, Callable[[], str]]] = []

    def kill(name: str) -> Callable[[], str]:
        def run() -> str:
            log = platform.log_dir / f"{name}.log"
            marker = STARTED.get(name, BACKEND_STARTED)
            starts = log.read_text(errors="replace").count(marker)
            killed = time.monotonic()
            platform.kill_service(name)
            platform.start_service(name)
            deadline = killed + 90
            while log.read_text(errors="replace").count(marker) == starts:
                assert time.monotonic() < deadline, f"{name} did not start again:\n{platform.log_tail(name)}"
                time.sleep(0.1)
            return f"back in {time.monotonic() - killed:.1f} s"

        return run

    def restart_rabbitmq() -> str:
        started = time.monotonic()
        infra("stop-rabbitmq")
        infra("start-rabbitmq")
        return f"down {time.monotonic() - started:.1f} s"

    def restart_store() -> str:
        started = time.monotonic()
        infra("stop-store")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the store stays away while the load keeps coming
            time.sleep(0.1)
        infra("start-store")
        return f"down {time.monotonic() - started:.1f} s"

    def payments_away_until_expiry() -> str:
        started = time.monotonic()
        before = len(tap.of_type(ReservationExpired.TYPE))
        replicas = [n for n in platform.process_names() if n.startswith("payment_service")]
        for name in replicas:
            platform.kill_service(name)
        deadline = time.monotonic() + HOLD_SECONDS + 60
        while len(tap.of_type(ReservationExpired.TYPE)) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        for name in replicas:
            platform.start_service(name)
        expired = len(tap.of_type(ReservationExpired.TYPE)) - before
        return f"away {time.monotonic() - started:.1f} s; reservations expired meanwhile: {expired}"

    def malformed_messages() -> str:
        malformed.extend(publish_malformed(infra.rabbitmq_url, platform.namespace))
        return f"{len(malformed)} messages onto {len({q for q, _ in malformed})} queues"

    steps.append((0.03, "malformed messages", malformed_messages))
    for n, name in enumerate(platform.process_names()):
        steps.append((0.06 + 0.07 * n, f"kill -9 {name}", kill(name)))
    steps.append((0.30, "restart RabbitMQ", restart_rabbitmq))
    steps.append((0.50, "stop and restart the store", restart_store))
    steps.append((0.72, "payment away until reservations expire", payments_away_until_expiry))
    steps.sort(key=lambda step: step[0])
    for share, fault, run in steps:
        while load.count() < share * ORDERS and not load.finished():
            time.sleep(0.05)
        if load.count() < share * ORDERS:
            faults.add(fault, load.count(), "NOT INJECTED: the load ended first")
            continue
        faults.add(fault, load.count(), run())


# --- the invariants ---------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def all_orders(gateway: Gateway, admin: dict[str, str]) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    while True:
        answer = gateway.call("GET", "/orders", headers=admin, params={"limit": 200, "offset": len(orders)})
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        orders.extend(items)
        if len(items) < 200:
            return orders


def wait_until_terminal(
    gateway: Gateway, admin: dict[str, str], bound: float
) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    while True:
        orders = all_orders(gateway, admin)
        if all(o["status"] in TERMINAL for o in orders) or time.monotonic() - started > bound:
            return orders, time.monotonic() - started
        time.sleep(1.0)


def wait_until_quiet(rabbitmq_url: str, queues: list[str], bound: float) -> dict[str, int]:
    """Until every queue the platform consumes (and the tap) is empty, or the bound passes."""
    deadline = time.monotonic() + bound
    while True:
        depths = queue_depths(rabbitmq_url, queues)
        if not any(depths.values()) or time.monotonic() > deadline:
            return depths
        time.sleep(0.5)


def rightly_ignored(service: str, envelope: Envelope, status: dict[str, str]) -> str | None:
    """Why a subscriber may take an event and change nothing (so it records nothing), if it may."""
    order_status = status.get(str(envelope.payload.get("order_id")))
    if service == "prescription_service" and envelope.type == OrderCreated.TYPE:
        return "prescription already knows its order"
    if service == "inventory_service" and envelope.type == "PaymentApproved" and order_status == "CANCELLED":
        return "payment after release or expiry: nothing to sell"
    if service == "payment_service" and envelope.type == "StockReserved" and order_status == "CANCELLED":
        return "order cancelled before the charge"
    return None


def check_invariants(
    store: MongoClient[dict[str, Any]],
    platform: Platform,
    orders: list[dict[str, Any]],
    tap: Tap,
    load: Load,
    initial_stock: dict[tuple[str, str], int],
    names: dict[str, str],
    malformed: list[tuple[str, str]],
    rabbitmq_url: str,
    took: float,
) -> list[Check]:
    checks: list[Check] = []
    db = {service: store[platform.database(service)] for service in BACKENDS}
    status = {o["id"]: o["status"] for o in orders}
    unfinished = [i for i, s in status.items() if s not in TERMINAL]
    # Uploads are retried through faults with their Idempotency-Key: each accepted one made one order.
    made = Counter(load.accepted)
    checks.append(
        Check(
            "one order per accepted upload, no other",
            made == Counter(status.keys()),
            f"{len(status)} orders for {len(load.accepted)} accepted uploads; orders no upload accepted: "
            f"{len(set(status) - set(made))}, accepted order ids given twice: "
            f"{sum(1 for n in made.values() if n > 1)}",
        )
    )
    checks.append(
        Check(
            "every order terminal",
            not unfinished and set(load.accepted) <= set(status),
            f"{len(status) - len(unfinished)}/{len(status)} terminal {took:.0f} s after the last upload "
            f"(bound {TERMINAL_WITHIN_SECONDS:.0f} s); accepted uploads missing: "
            f"{len(set(load.accepted) - set(status))}",
        )
    )

    # Stock: what was put on the shelf is on the shelf or sold; nothing is still reserved.
    broken = []
    sold_by_medication: Counter[str] = Counter()
    for pharmacy in db["inventory_service"]["pharmacies"].find({}):
        for medication_id, level in pharmacy.get("stock", {}).items():
            initial = initial_stock.get((pharmacy["_id"], medication_id), 0)
            sold_by_medication[medication_id] += level["sold"]
            if level["available"] + level["sold"] != initial or level["reserved"] != 0:
                broken.append(f"{pharmacy['name']}/{medication_id}: {initial} -> {level}")
        if pharmacy.get("holds"):
            broken.append(f"{pharmacy['name']} still holds {len(pharmacy['holds'])} orders")
    confirmed_units: Counter[str] = Counter()
    for order in orders:
        if order["status"] == "CONFIRMED":
            for line in order["lines"]:
                confirmed_units[line["medication_id"]] += line["quantity"]
    if +sold_by_medication != +confirmed_units:
        broken.append(f"sold {dict(sold_by_medication)} but confirmed orders hold {dict(confirmed_units)}")
    checks.append(
        Check(
            "stock: initial = available + sold, none reserved",
            not broken,
            "; ".join(broken[:5])
            or f"{len(initial_stock)} shelves; units sold = units in confirmed orders: "
            + ", ".join(
                f"{names[m]} {n}" for m, n in sorted(confirmed_units.items(), key=lambda i: names[i[0]])
            ),
        )
    )

    # Money: one charge per order at most; a cancelled order that was charged is refunded.
    charges = {c["_id"]: c for c in db["payment_service"]["processor_charges"].find({})}
    problems = []
    refunded_cancels = 0
    for order_id, order_status in status.items():
        charge = charges.get(order_id) or {}
        approved = bool(charge.get("approved"))
        if order_status == "CONFIRMED" and not (approved and not charge["refunded"]):
            problems.append(f"{order_id} CONFIRMED with charge {charge}")
        if order_status == "CANCELLED" and approved:
            if charge["refunded"]:
                refunded_cancels += 1
            else:
                problems.append(f"{order_id} CANCELLED, charged, not refunded")
        if order_status == "REJECTED" and approved:
            problems.append(f"{order_id} REJECTED but charged")
    expired = {e.payload["order_id"] for e in tap.of_type(ReservationExpired.TYPE)}
    late = sum(1 for order_id in expired if charges.get(order_id, {}).get("refunded"))
    payments = list(db["payment_service"]["payments"].find({}))
    per_order = Counter(p["order_id"] for p in payments)
    problems += [f"{order_id}: {n} payments" for order_id, n in per_order.items() if n > 1]
    checks.append(
        Check(
            "no double charge; every charged cancel refunded",
            not problems,
            "; ".join(problems[:5])
            or f"{sum(c['approved'] for c in charges.values())} approved charges, "
            f"{refunded_cancels} refunded after cancellation, {late} of them paid after the reservation "
            f"had expired",
        )
    )

    # Events: each one a subscriber was sent is recorded once by it (and never twice on one aggregate).
    recorded: dict[str, Counter[str]] = {}
    twice = []
    for service in BACKENDS:
        seen: Counter[str] = Counter()
        for name in db[service].list_collection_names():
            for doc in db[service][name].find(
                {"processed_event_ids": {"$exists": True}}, {"processed_event_ids": 1}
            ):
                ids = doc["processed_event_ids"]
                if len(ids) != len(set(ids)):
                    twice.append(f"{service}/{name}/{doc['_id']}")
                seen.update(set(ids))
        recorded[service] = seen
    missing: dict[tuple[str, str], int] = defaultdict(int)
    ignored: Counter[str] = Counter()
    delivered = 0
    for service in BACKENDS:
        for event in topology.SUBSCRIPTIONS[service]:
            for envelope in tap.of_type(event.TYPE):
                delivered += 1
                if recorded[service][str(envelope.event_id)] > 0:
                    continue
                why = rightly_ignored(service, envelope, status)
                if why:
                    ignored[why] += 1
                else:
                    missing[(service, event.TYPE)] += 1
    leftovers = sum(
        db[service][name].count_documents({"outbox_since": {"$exists": True}})
        for service in BACKENDS
        for name in db[service].list_collection_names()
    )
    checks.append(
        Check(
            "every published event applied once by each subscriber",
            not missing and not twice and leftovers == 0,
            f"{len(tap.originals)} events published, each a second time ({tap.duplicates_sent} duplicates); "
            f"{delivered} subscriber deliveries, unapplied {dict(missing) or 0}, "
            f"applied twice {twice[:3] or 0}, outboxes not empty {leftovers}; "
            f"handled without a change, rightly: {dict(ignored)}",
        )
    )

    # The journal: every event but timers, once (its archiver was killed and restarted too).
    journalled = {doc["_id"] for doc in store[platform.database(ARCHIVER)]["events"].find({}, {"_id": 1})}
    expected_in_journal = {i for i, e in tap.originals.items() if e.type not in TIMER_TYPES}
    checks.append(
        Check(
            "the journal holds every event",
            expected_in_journal <= journalled,
            f"{len(expected_in_journal & journalled)}/{len(expected_in_journal)} events journalled "
            f"(timers are not journalled)",
        )
    )

    # Malformed messages: in dead-letter queues with the reason; nothing else is there.
    expected = defaultdict(set)
    for queue, message_id in malformed:
        if queue.endswith(".events"):
            expected[queue].add(message_id)
    wrong = []
    parked = 0
    for service in BACKENDS:
        queue = topology.event_queue(platform.namespace, service)
        letters = dead_letters_of(rabbitmq_url, queue)
        parked += len(letters)
        ids = {message_id for message_id, _ in letters}
        if ids != expected[queue]:
            wrong.append(f"{queue}: {sorted(ids ^ expected[queue])}")
        wrong += [f"{queue}/{i}: no x-error" for i, headers in letters if not headers.get("x-error")]
    checks.append(
        Check(
            "malformed messages dead-lettered, traffic flowed past",
            bool(malformed) and not wrong,
            "; ".join(wrong[:5]) or f"{parked} in dead-letter queues with their error, {len(malformed)} sent",
        )
    )
    return checks


def unverified_reservations(tap: Tap, prescription_only: set[str], verifier: Verifier) -> Check:
    """No prescription-only unit is ever reserved for an order whose prescription was not verified
    first: a reservation decided before the approval (all on this machine's clock) counts as one."""
    verified: dict[str, datetime] = {}
    for e in tap.of_type(PrescriptionVerified.TYPE):
        verified[e.correlation_id] = min(e.occurred_at, verified.get(e.correlation_id, e.occurred_at))
    reserved = [
        e
        for e in tap.of_type(StockReserved.TYPE)
        if {line["medication_id"] for line in e.payload["lines"]} & prescription_only
    ]
    unverified = [
        e.correlation_id
        for e in reserved
        if e.correlation_id not in verified or e.occurred_at <= verified[e.correlation_id]
    ]
    return Check(
        "no prescription-only unit reserved unverified",
        not unverified and bool(reserved),
        f"{len(reserved)} reservations of prescription-only lines, {len(unverified)} unverified; "
        f"{len(verifier.approved)} approved by the pharmacist, {len(verifier.refused)} cancelled first",
    )


def table(
    faults: FaultLog, orders: list[dict[str, Any]], load: Load, retries: int, checks: list[Check]
) -> str:
    lines = ["", f"FAULT SUITE (seed {SEED})", "", f"{'fault injected':<44} {'at order':>8}  result"]
    lines += [f"{fault:<44} {at:>8}  {detail}" for fault, at, detail in faults.rows]
    outcomes = Counter(o["status"] for o in orders)
    lines += [
        "",
        f"orders driven: {len(orders)} ({len(load.accepted)} uploads accepted, {PATIENTS} patients, "
        f"{REPLICAS} replicas per back-end service)",
        f"outcomes: {dict(sorted(outcomes.items()))}; cancels asked {load.cancels_asked}, "
        f"declined cards used {load.declined_cards_used}; HTTP requests retried during faults {retries}",
        "",
        f"{'invariant':<56} result",
    ]
    lines += [f"{c.name:<56} {'PASS' if c.ok else 'FAIL'}  {c.detail}" for c in checks]
    return "\n".join(lines)


# --- the suite ----------------------------------------------------------------------------------------


@pytest.mark.timeout(1800)
def test_the_saga_holds_under_crashes_restarts_redelivery_and_poison(
    infra: Infra, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    env = {**infra.env, "RESERVATION_HOLD_SECONDS": str(HOLD_SECONDS)}
    admin_login = ("fault-admin@example.com", secrets.token_urlsafe(18))
    backing = Backing(infra.rabbitmq_url, infra.mongodb_url)
    platform = make_platform(
        backing, "fault", admin=admin_login, env=env, replicas={service: REPLICAS for service in BACKENDS}
    )
    platform.start(timeout=120)
    tap = Tap(infra.rabbitmq_url, platform.namespace)
    store: MongoClient[dict[str, Any]] = MongoClient(infra.mongodb_url)
    gateway = Gateway(platform.url)
    try:
        tap_thread = threading.Thread(target=tap.run, name="tap", daemon=True)
        tap_thread.start()
        assert tap.ready.wait(30), "the tap did not start"

        admin = gateway.token(*admin_login)
        medication_ids: dict[str, str] = {}
        for name in MEDICATIONS:
            body: dict[str, Any] = {
                "name": f"{name} {secrets.token_hex(3)}",
                "strength": "10 mg",
                "form": "tablet",
            }
            answer = gateway.call(
                "POST",
                "/medications",
                headers=admin,
                json={**body, "price": "3.50", "prescription_only": name in PRESCRIPTION_ONLY},
            )
            assert answer.status_code == 201, answer.text
            medication_ids[name] = answer.json()["id"]
        initial_stock: dict[tuple[str, str], int] = {}
        for name, latitude, longitude in PHARMACIES:
            body = {
                "name": f"Apotheke {name}",
                "address": f"{name}, Berlin",
                "latitude": latitude,
                "longitude": longitude,
            }
            answer = gateway.call("POST", "/pharmacies", headers=admin, json=body)
            assert answer.status_code == 201, answer.text
            pharmacy_id = answer.json()["id"]
            for medication, units in MEDICATIONS.items():
                url = f"/pharmacies/{pharmacy_id}/stock/{medication_ids[medication]}"
                answer = gateway.call("PUT", url, headers=admin, json={"quantity": units})
                assert answer.status_code == 200, answer.text
                initial_stock[(pharmacy_id, medication_ids[medication])] = units
        patients = [new_patient(gateway) for _ in range(PATIENTS)]

        load, faults = Load(), FaultLog()
        malformed: list[tuple[str, str]] = []
        clients = [Gateway(platform.url) for _ in patients]
        planned = plans(medication_ids, rng)
        # A scan of each patient's behind every upload, stored before the faults begin: the subject
        # here is the saga; reading scans is tested in tests/e2e/test_scan.py.
        for patient, plan in zip(patients, planned, strict=True):
            me = gateway.call("GET", "/users/me", headers=patient.headers).json()["id"]
            for step, document_id in zip(
                plan, platform_scans(platform, infra.mongodb_url, [me] * len(plan)), strict=True
            ):
                step["document_id"] = document_id
        drivers = [
            threading.Thread(target=drive, args=(clients[n], patient, plan, load, tap), name=f"patient-{n}")
            for n, (patient, plan) in enumerate(zip(patients, planned, strict=True))
        ]
        injector = threading.Thread(
            target=inject_faults, args=(platform, infra, tap, load, faults, malformed), name="faults"
        )
        pharmacist_user = gateway.call(
            "POST",
            "/auth/register",
            json={
                "email": f"{unique('pharmacist')}@example.com",
                "password": "a pharmacist's password",
                "full_name": "Fault Pharmacist",
            },
        )
        assert pharmacist_user.status_code == 201, pharmacist_user.text
        promoted = gateway.call(
            "PATCH", f"/users/{pharmacist_user.json()['id']}", headers=admin, json={"role": "pharmacist"}
        )
        assert promoted.status_code == 200, promoted.text
        pharmacist = gateway.token(pharmacist_user.json()["email"], "a pharmacist's password")
        verifier = Verifier()
        checker = threading.Thread(
            target=verify, args=(Gateway(platform.url), pharmacist, load, verifier), name="pharmacist"
        )
        for thread in (*drivers, injector, checker):
            thread.start()
        for thread in drivers:
            thread.join(timeout=1200)
        injector.join(timeout=600)
        checker.join(timeout=300)
        assert not injector.is_alive(), "the fault schedule did not finish"
        assert not checker.is_alive(), "the pharmacist did not finish"
        assert not verifier.unexpected, verifier.unexpected[:5]
        assert not any(t.is_alive() for t in drivers), "the load did not finish"
        assert not load.unexpected, load.unexpected[:5]

        orders, took = wait_until_terminal(gateway, admin, TERMINAL_WITHIN_SECONDS)
        # Timers of sold reservations fire later and must change nothing; then every queue is empty.
        partitions = range(RuntimeSettings().event_partitions)
        consumed = [topology.partition_queue(platform.namespace, s, k) for s in BACKENDS for k in partitions]
        consumed += [
            topology.timer_queue(platform.namespace, "inventory_service"),
            topology.journal_queue(platform.namespace),
            tap.queue,
        ]
        depths = wait_until_quiet(infra.rabbitmq_url, consumed, HOLD_SECONDS + 120)
        assert not any(depths.values()), f"queues did not drain: {depths}"
        orders = all_orders(gateway, admin)
        checks = check_invariants(
            store,
            platform,
            orders,
            tap,
            load,
            initial_stock,
            {i: name for name, i in medication_ids.items()},
            malformed,
            infra.rabbitmq_url,
            took,
        )
        checks.append(unverified_reservations(tap, {medication_ids[n] for n in PRESCRIPTION_ONLY}, verifier))
        skipped = [fault for fault, _, detail in faults.rows if detail.startswith("NOT INJECTED")]
        checks.append(Check("every scheduled fault injected", not skipped, ", ".join(skipped) or "all"))
        report = table(faults, orders, load, sum(c.retries for c in clients), checks)
        (ROOT / ".run" / "fault").mkdir(parents=True, exist_ok=True)
        (ROOT / ".run" / "fault" / "report.txt").write_text(report + "\n")
        with capsys.disabled():
            print(report, flush=True)
        assert all(c.ok for c in checks), "\n".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
    finally:
        tap.stopping.set()
        platform.stop()
        # Leave nothing behind, but never hide the test's own failure behind a clean-up error.
        with contextlib.suppress(Exception):
            asyncio.run(delete_namespace(infra.rabbitmq_url, platform.namespace))
            queue_delete(infra.rabbitmq_url, tap.queue)
        with contextlib.suppress(Exception):
            for service in DATABASES:
                store.drop_database(platform.database(service))
        store.close()
