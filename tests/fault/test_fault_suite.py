"""The fault suite: a few hundred orders through the gateway while processes, broker and store fail.

Runs its own RabbitMQ and FerretDB (scripts/infra.sh on ports of their own, so it can restart them),
two replicas of every back-end service, and the gateway, all as processes. While patients upload
prescriptions, cancel some orders (some only once they are dispensed) and pay with cards that are
sometimes declined, a pharmacist verifies the prescription-only ones, a pharmacist on every pharmacy's
staff dispenses the paid ones, and couriers pick them up and hand them over on the proof each asks for
(a PIN they learn from the patient, after a wrong one now and then), or fail at the door once or twice,
it:

- kills -9 every process in turn (both replicas of each service, and the gateway) and restarts it;
- restarts RabbitMQ, and stops the store for a while and starts it again;
- takes both payment replicas away until reservations expire, so that payments arrive late;
- publishes every event a second time, as it crosses the broker (same event id);
- publishes malformed messages onto every queue of the namespace.

Then it checks the invariants of issues 3 and 13 and prints a table of faults, orders and results.
Seeded (FAULT_SEED) and bounded: every wait has a deadline, and no sleep stands in for a condition.
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
from collections.abc import Callable, Iterator, Sequence
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
    DeliveryAttemptFailed,
    DeliveryCompleted,
    DeliveryReturned,
    OrderCancelled,
    OrderCreated,
    OrderDispensed,
    OrderRejected,
    PaymentCaptured,
    PaymentRefunded,
    PaymentVoided,
    PrescriptionVerified,
    ReservationExpired,
    StockReserved,
)
from payment_service import processor
from service_runtime.launcher import ARCHIVER, DATABASES, Platform, delete_namespace
from service_runtime.settings import RuntimeSettings

pytestmark = pytest.mark.fault

SEED = int(os.environ.get("FAULT_SEED", "20261126"))
ORDERS = int(os.environ.get("FAULT_ORDERS", "300"))
PATIENTS = 12
REPLICAS = 2
HOLD_SECONDS = 8.0
# Every order must be terminal this long after the load ended.
TERMINAL_WITHIN_SECONDS = 240.0
RABBITMQ_PORT = int(os.environ.get("FAULT_RABBITMQ_PORT", "5682"))
FERRETDB_PORT = int(os.environ.get("FAULT_FERRETDB_PORT", "27027"))
BACKENDS = (
    "inventory_service",
    "payment_service",
    "order_service",
    "prescription_service",
    "delivery_service",
)
TERMINAL = {"DELIVERED", "RETURNED", "REJECTED", "CANCELLED"}
# A delivery still under way: nothing may be left so once the load ends.
DELIVERY_UNDER_WAY = {"WAITING_FOR_COURIER", "ASSIGNED", "OUT_FOR_DELIVERY", "ATTEMPT_FAILED"}
# What a courier has in hand (or goes to collect): theirs to move on.
CARRIED = {"ASSIGNED", "OUT_FOR_DELIVERY", "ATTEMPT_FAILED"}
GOOD_CARD, DECLINED_CARD = "4242424242424242", "4000000000000002"
MEDICATIONS = {
    "plenty-a": ORDERS * 4,
    "plenty-b": ORDERS * 4,
    "scarce": 15,
    "controlled": ORDERS * 2,
    "costly": ORDERS * 2,
}
PRICES = {"costly": "55.00"}
DEFAULT_PRICE = "3.50"
# Prescription-only: its orders wait for the pharmacist thread, who approves them through the faults.
PRESCRIPTION_ONLY = {"plenty-b", "controlled"}
# A controlled drug (schedule II, so prescription-only too): handed over on the patient's PIN only.
SCHEDULES = {"controlled": "II"}
# Set on delivery_service to its defaults, so the suite and the service agree on them: an order over
# this total (two of "costly" always are, one alone never) is handed over on the PIN; two failed
# attempts return it.
PIN_OVER_CENTS = 10_000
MAX_DELIVERY_ATTEMPTS = 2
COURIERS = 3
PHARMACIES = [("Mitte", 52.5200, 13.4050), ("Kreuzberg", 52.4986, 13.4030), ("Pankow", 52.5690, 13.4010)]
DUPLICATE_HEADER = "x-fault-duplicate"
# What a process logs once it takes messages (back-end) or requests (gateway).
STARTED = {"user_service": "Application startup complete"}
BACKEND_STARTED = "started (namespace"
# The saga of an order ends with one of these (an order may be cancelled after a courier set out:
# then its DeliveryReturned follows, and the OrderCancelled ended it already).
TERMINAL_EVENTS = {OrderRejected.TYPE, OrderCancelled.TYPE, DeliveryCompleted.TYPE, DeliveryReturned.TYPE}
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
    # When each original was first seen (time.monotonic()), in arrival order: the pace of the events.
    arrivals: list[float] = field(default_factory=list)
    # The types of event seen of each order, and the Condition patients wait on for theirs.
    seen: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    news: threading.Condition = field(default_factory=threading.Condition)
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
                        if first:
                            self.arrivals.append(time.monotonic())
                    with self.news:
                        self.seen[order_of(envelope)].add(envelope.type)
                        self.news.notify_all()
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

    def wait_for(self, order_id: str, kinds: set[str], timeout: float) -> set[str]:
        """Until an event of one of these kinds is seen of the order; the kinds seen (none: timed out)."""
        with self.news:
            self.news.wait_for(lambda: bool(self.seen[order_id] & kinds), timeout)
            return self.seen[order_id] & kinds

    def wait_for_end(self, order_id: str, timeout: float) -> bool:
        return bool(self.wait_for(order_id, TERMINAL_EVENTS, timeout))

    def of_type(self, kind: str) -> list[Envelope]:
        with self.lock:
            return [e for e in self.originals.values() if e.type == kind]


def order_of(envelope: Envelope) -> str:
    """The order an event is about: every event of the saga names it (the correlation id does too)."""
    return str(envelope.payload.get("order_id") or envelope.correlation_id)


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


def staff_member(gateway: Gateway, admin: dict[str, str], role: str) -> dict[str, str]:
    """A new user given this role by the admin (pharmacist, courier); their headers."""
    email, password = f"{unique(role)}@example.com", secrets.token_urlsafe(16)
    user = gateway.call(
        "POST", "/auth/register", json={"email": email, "password": password, "full_name": f"Fault {role}"}
    )
    assert user.status_code == 201, user.text
    promoted = gateway.call("PATCH", f"/users/{user.json()['id']}", headers=admin, json={"role": role})
    assert promoted.status_code == 200, promoted.text
    return gateway.token(email, password)


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


@dataclass(frozen=True)
class Recipient:
    """Who waits at the door for an order, and how its hand-over goes (from the patient's plan): the
    failed attempts before it is handed over (MAX_DELIVERY_ATTEMPTS of them: it goes back), and whether
    the courier mistypes the PIN first."""

    headers: dict[str, str]
    name: str
    fails: int
    wrong_pin: bool


@dataclass
class Load:
    """What the patients did: accepted uploads, cancellations asked for, and anything unexpected."""

    accepted: list[str] = field(default_factory=list)
    cancels_asked: int = 0
    late_cancels: Counter[int] = field(default_factory=Counter)
    declined_cards_used: int = 0
    unexpected: list[str] = field(default_factory=list)
    patients_done: int = 0
    # Each accepted order's patient, for the courier who needs their PIN; filled by the patients.
    recipients: dict[str, Recipient] = field(default_factory=dict)
    # Seconds from each accepted upload to the end of its saga, as the patient waited for it.
    sagas: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recipient(self, order_id: str) -> Recipient | None:
        with self.lock:
            return self.recipients.get(order_id)

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
    """One prescription at a time, as a patient does: upload, perhaps cancel (at once, or once it is
    dispensed), wait for the outcome."""
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
        accepted = time.monotonic()
        with load.lock:
            load.accepted.append(order_id)
            load.declined_cards_used += step["declined"]
            load.recipients[order_id] = Recipient(
                patient.headers, "Fault Patient", step["fails"], step["wrong_pin"]
            )
        if step["cancel"]:
            answer = gateway.call("DELETE", f"/orders/{order_id}", headers=patient.headers)
            with load.lock:
                load.cancels_asked += 1
                # 409: the order ended first. Anything else but 200 is a defect.
                if answer.status_code not in (200, 409):
                    load.unexpected.append(f"cancel answered {answer.status_code}: {answer.text[:200]}")
        elif step["cancel_late"]:
            # Dispensed: a cancel is still allowed until a courier picks it up, and races them for it.
            seen = tap.wait_for(order_id, {OrderDispensed.TYPE} | TERMINAL_EVENTS, SAGA_PATIENCE_SECONDS)
            if seen == {OrderDispensed.TYPE}:
                answer = gateway.call("DELETE", f"/orders/{order_id}", headers=patient.headers)
                with load.lock:
                    load.late_cancels[answer.status_code] += 1
                    # 409: a courier had it first, or it ended first. Anything else but 200 is a defect.
                    if answer.status_code not in (200, 409):
                        load.unexpected.append(
                            f"late cancel answered {answer.status_code}: {answer.text[:200]}"
                        )
        if not tap.wait_for_end(order_id, SAGA_PATIENCE_SECONDS):
            with load.lock:
                load.unexpected.append(f"order {order_id} did not end within {SAGA_PATIENCE_SECONDS:.0f} s")
        else:
            with load.lock:
                load.sagas.append(time.monotonic() - accepted)


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


@dataclass
class Dispensary:
    """The pharmacist on every pharmacy's staff: dispenses whatever each queue holds until the patients
    are done and the queues are empty."""

    dispensed: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


def dispense(
    gateway: Gateway, pharmacist: dict[str, str], pharmacy_ids: list[str], load: Load, dispensary: Dispensary
) -> None:
    try:
        while True:
            done = load.finished()
            waiting = []
            for pharmacy_id in pharmacy_ids:
                url = f"/pharmacies/{pharmacy_id}/dispensing"
                answer = gateway.call("GET", url, headers=pharmacist, params={"limit": 200})
                if answer.status_code != 200:
                    dispensary.unexpected.append(f"queue answered {answer.status_code}: {answer.text[:200]}")
                    return
                waiting += [item["order_id"] for item in answer.json()["items"]]
            if done and not waiting:
                return
            for order_id in waiting:
                dispensed = gateway.call("POST", f"/orders/{order_id}/dispense", headers=pharmacist)
                # 409: cancelled (or expired) since the queue was read. Anything else but 200 is a defect.
                if dispensed.status_code == 200:
                    dispensary.dispensed.add(order_id)
                elif dispensed.status_code == 409:
                    dispensary.refused.append(order_id)
                else:
                    dispensary.unexpected.append(
                        f"dispense answered {dispensed.status_code}: {dispensed.text[:200]}"
                    )
            time.sleep(0.3)
    except Exception as exc:
        dispensary.unexpected.append(f"dispensing pharmacist stopped: {type(exc).__name__}: {exc}")
    finally:
        dispensary.done.set()


@dataclass
class Rounds:
    """What the couriers did at the counter and at the door, as the gateway answered them."""

    picked_up: int = 0
    delivered: int = 0
    wrong_pins_refused: int = 0
    # Failed attempts answered 200, by order.
    fails: Counter[str] = field(default_factory=Counter)
    # 409 on a move: the order was cancelled (or the move done) meanwhile; and what the gateway said.
    moves_refused: Counter[str] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)

    def answered(self, move: str, answer: httpx.Response, expected: int = 200) -> bool:
        """Whether the move went as expected; a 409 is counted, anything else is a finding."""
        if answer.status_code == expected:
            return True
        with self.lock:
            if answer.status_code == 409:
                self.moves_refused[move] += 1
                self.refusals.append(f"{move} {answer.request.url.path}: {answer.text[:200]}")
            else:
                self.unexpected.append(f"{move} answered {answer.status_code}: {answer.text[:200]}")
        return False


def courier_work(
    gateway: Gateway, courier: dict[str, str], load: Load, dispensary: Dispensary, rounds: Rounds
) -> None:
    """A courier's day: poll their deliveries, collect what is assigned, hand over what is in hand (or
    fail at the door, as the patient's plan says), until the load is done and nothing is left to do."""
    try:
        quiet_since: float | None = None
        last_full = 0.0
        while True:
            # Newest first: what is in hand is on the first page. Now and then, and before stopping,
            # every page, so nothing older is overlooked.
            full = time.monotonic() - last_full > 3.0
            carried = [d for d in deliveries_of(gateway, courier, every_page=full) if d["status"] in CARRIED]
            last_full = time.monotonic() if full else last_full
            if carried:
                quiet_since = None
                for delivery in carried:
                    move_on(gateway, courier, delivery, load, rounds)
                continue
            if load.finished() and dispensary.done.is_set() and full:
                if quiet_since is not None and time.monotonic() - quiet_since > 2.0:
                    return
                quiet_since = quiet_since or time.monotonic()
            time.sleep(0.25)
    except Exception as exc:
        with rounds.lock:
            rounds.unexpected.append(f"courier stopped: {type(exc).__name__}: {exc}")


def on_duty_couriers(
    gateway: Gateway,
    admin: dict[str, str],
    places: Sequence[tuple[str, float, float]],
    clients: Sequence[Gateway],
    load: Load,
    dispensary: Dispensary,
    rounds: Rounds,
) -> list[threading.Thread]:
    """COURIERS couriers, each on duty at one of the places in turn, with the day's work as a thread
    (not started) on its own client."""
    couriers = []
    for n in range(COURIERS):
        courier = staff_member(gateway, admin, "courier")
        _, latitude, longitude = places[n % len(places)]
        at = {"available": True, "latitude": latitude, "longitude": longitude}
        answer = gateway.call("PUT", "/couriers/me", headers=courier, json=at)
        assert answer.status_code == 200, answer.text
        couriers.append(
            threading.Thread(
                target=courier_work,
                args=(clients[n], courier, load, dispensary, rounds),
                name=f"courier-{n}",
                daemon=True,
            )
        )
    return couriers


def deliveries_of(gateway: Gateway, courier: dict[str, str], *, every_page: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 200 if every_page else 20
    while True:
        params = {"limit": page, "offset": len(found)}
        answer = gateway.call("GET", "/deliveries", headers=courier, params=params)
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        found += items
        if not every_page or len(items) < page:
            return found


def move_on(
    gateway: Gateway, courier: dict[str, str], delivery: dict[str, Any], load: Load, rounds: Rounds
) -> None:
    """One step of one delivery, decided on it as just read: a retried request may have landed twice,
    so every decision counts what the delivery shows (its attempts, its wrong PINs), not what was sent."""
    url = f"/deliveries/{delivery['id']}"

    def keyed(step: str) -> dict[str, str]:
        # One key per intended step: a retry through a fault is the same request, carried out once.
        return {**courier, "Idempotency-Key": f"{step}-{delivery['id']}-{len(delivery['attempts'])}"}

    if delivery["status"] == "ASSIGNED":
        if rounds.answered("pickup", gateway.call("POST", f"{url}/pickup", headers=keyed("pickup"))):
            rounds.count("picked_up")
        return
    recipient = load.recipient(delivery["order_id"])
    if recipient is None:  # the patient has not heard the upload's answer yet
        time.sleep(0.1)
        return
    if len(delivery["attempts"]) < recipient.fails:
        body = {"reason": "NO_ONE_HOME", "note": f"visit {len(delivery['attempts']) + 1}"}
        if rounds.answered("fail", gateway.call("POST", f"{url}/fail", headers=keyed("fail"), json=body)):
            with rounds.lock:
                rounds.fails[delivery["order_id"]] += 1
        return
    proof: dict[str, str] = {"recipient_name": recipient.name}
    if delivery["proof"] == "PIN":
        # As in life: the patient reads the PIN off their order and tells the courier.
        order = gateway.call("GET", f"/orders/{delivery['order_id']}", headers=recipient.headers)
        seen = order.json().get("delivery") if order.status_code == 200 else None
        pin = seen["pin"] if seen else None
        if pin is None:  # the order has not heard of its courier yet, or was cancelled: read again
            time.sleep(0.1)
            return
        if recipient.wrong_pin and delivery["wrong_pins"] == 0:
            wrong = {"pin": f"{(int(pin) + 1) % 10_000:04d}"}
            refused = gateway.call("POST", f"{url}/deliver", headers=keyed("wrong-pin"), json=wrong)
            if rounds.answered("wrong PIN", refused, expected=422):
                rounds.count("wrong_pins_refused")
            return
        proof = {"pin": pin}
    if rounds.answered(
        "deliver", gateway.call("POST", f"{url}/deliver", headers=keyed("deliver"), json=proof)
    ):
        rounds.count("delivered")


def plans(medication_ids: dict[str, str], rng: random.Random) -> list[list[dict[str, Any]]]:
    """Every patient's uploads: mostly plentiful stock, some scarce, some controlled (a PIN at the door),
    some costly (over the PIN value when three), some declined cards, some cancels (a few only once
    dispensed), and how the hand-over goes: a failed attempt first now and then, two (returned) more
    rarely, a wrong PIN first sometimes."""
    per_patient: list[list[dict[str, Any]]] = [[] for _ in range(PATIENTS)]
    for n in range(ORDERS):
        names = rng.sample(["plenty-a", "plenty-b"], k=rng.choice([1, 2]))
        for name, share in (("scarce", 0.15), ("controlled", 0.15), ("costly", 0.12)):
            if rng.random() < share:
                names.append(name)
        at_the_door = rng.random()
        cancel = rng.random()
        per_patient[n % PATIENTS].append(
            {
                "lines": [
                    {"medication_id": medication_ids[name], "quantity": rng.randint(1, 3)} for name in names
                ],
                "where": {"latitude": 52.48 + rng.random() * 0.1, "longitude": 13.38 + rng.random() * 0.05},
                "declined": rng.random() < 0.08,
                "cancel": cancel < 0.08,
                "cancel_late": 0.08 <= cancel < 0.12,
                "fails": MAX_DELIVERY_ATTEMPTS if at_the_door < 0.04 else 1 if at_the_door < 0.14 else 0,
                "wrong_pin": rng.random() < 0.3,
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
    cancelled = order_status == "CANCELLED"
    if service == "inventory_service" and envelope.type == "DeliveryReturned" and cancelled:
        return "returned already, by the cancel"
    if service == "delivery_service" and envelope.type == "OrderReadyForPickup" and cancelled:
        return "order cancelled before it was ready"
    if service == "inventory_service" and envelope.type == "OrderDispensed":
        # Its own dispensing: the sale completed on the pharmacy (a no-op when the command did), no record.
        return "its own dispensing: the sale completed"
    if service == "delivery_service" and envelope.type in ("DeliveryCompleted", "DeliveryReturned"):
        # Its own hand-over or return: it frees the courier (a no-op when the command did), no record.
        return "its own hand-over or return: the courier freed"
    if service == "delivery_service" and envelope.type == "DeliveryUnassigned":
        # Its own hand-back: it dispatches the delivery again (a no-op when the command did), no record.
        return "its own hand-back: the delivery dispatched again"
    if service == "delivery_service" and envelope.type == "CourierFree":
        # Its own courier came free: it settles them (a no-op when the write's follow-up did), no record.
        return "its own free courier: settled"
    return None


# Where an order's money may be at the end, by its status: (the processor's charge state, captures,
# refunds announced). None: nothing was ever authorised.
MONEY_AT_THE_END: dict[str, set[tuple[str | None, int, int]]] = {
    "DELIVERED": {("CAPTURED", 1, 0)},
    "RETURNED": {("REFUNDED", 1, 1)},
    "CANCELLED": {("REFUNDED", 1, 1), ("VOIDED", 0, 0), ("DECLINED", 0, 0), (None, 0, 0)},
    "REJECTED": {("DECLINED", 0, 0), (None, 0, 0)},
}


def charge_state(charge: dict[str, Any] | None) -> str | None:
    """Where the card processor left an order's charge; None: no authorisation was ever asked for."""
    return None if charge is None else processor.charge_state(charge)


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
            f"{len(status) - len(unfinished)}/{len(status)} terminal {took:.0f} s after the load ended "
            f"(bound {TERMINAL_WITHIN_SECONDS:.0f} s); accepted uploads missing: "
            f"{len(set(load.accepted) - set(status))}",
        )
    )

    # Stock: what was put on the shelf is on the shelf, held, sold or returned; nothing is still held
    # (every paid order was dispensed or cancelled). Sold: what was delivered. Returned: what came back,
    # undelivered or cancelled after it was dispensed, never put back on sale.
    broken = []
    sold_by_medication: Counter[str] = Counter()
    returned_by_medication: Counter[str] = Counter()
    for pharmacy in db["inventory_service"]["pharmacies"].find({}):
        for medication_id, level in pharmacy.get("stock", {}).items():
            initial = initial_stock.get((pharmacy["_id"], medication_id), 0)
            sold_by_medication[medication_id] += level["sold"]
            returned_by_medication[medication_id] += level.get("returned", 0)
            on_record = level["available"] + level["reserved"] + level["sold"] + level.get("returned", 0)
            if on_record != initial or level["reserved"] != 0:
                broken.append(f"{pharmacy['name']}/{medication_id}: {initial} -> {level}")
        if pharmacy.get("holds"):
            broken.append(f"{pharmacy['name']} still holds {len(pharmacy['holds'])} orders")
    dispensed = {order_of(e) for e in tap.of_type(OrderDispensed.TYPE)}
    delivered_units: Counter[str] = Counter()
    returned_units: Counter[str] = Counter()
    for order in orders:
        back = order["status"] == "RETURNED" or (order["status"] == "CANCELLED" and order["id"] in dispensed)
        for line in order["lines"]:
            if order["status"] == "DELIVERED":
                delivered_units[line["medication_id"]] += line["quantity"]
            elif back:
                returned_units[line["medication_id"]] += line["quantity"]
    if +sold_by_medication != +delivered_units:
        broken.append(f"sold {dict(sold_by_medication)} but delivered orders hold {dict(delivered_units)}")
    if +returned_by_medication != +returned_units:
        broken.append(
            f"returned {dict(returned_by_medication)} but returned orders and orders cancelled after "
            f"dispensing hold {dict(returned_units)}"
        )

    def by_name(units: Counter[str]) -> str:
        return ", ".join(f"{names[m]} {n}" for m, n in sorted(units.items(), key=lambda i: names[i[0]]))

    checks.append(
        Check(
            "stock: available + reserved + sold + returned = initial",
            not broken,
            "; ".join(broken[:5])
            or f"{len(initial_stock)} shelves, none reserved; units sold = units delivered: "
            f"{by_name(delivered_units)}; "
            f"units returned = units returned or cancelled after dispensing: {by_name(returned_units) or 0}",
        )
    )

    # Money: the processor's record of each order (payment_service/processor.py), and the events that
    # moved it. Delivered: captured once, never refunded. Returned: captured, then refunded. Cancelled:
    # never captured (the authorisation voided, or none made), or captured and refunded (cancelled as the
    # courier set out). Rejected: nothing captured.
    charges = {c["_id"]: c for c in db["payment_service"]["processor_charges"].find({})}
    moves = {
        kind: Counter(order_of(e) for e in tap.of_type(kind))
        for kind in (PaymentCaptured.TYPE, PaymentRefunded.TYPE, PaymentVoided.TYPE)
    }
    problems = []
    ends: Counter[str] = Counter()
    for order_id, order_status in status.items():
        state = charge_state(charges.get(order_id))
        captured, refunded = moves[PaymentCaptured.TYPE][order_id], moves[PaymentRefunded.TYPE][order_id]
        if max(captured, refunded, moves[PaymentVoided.TYPE][order_id]) > 1:
            problems.append(f"{order_id} {order_status}: moved twice {[m[order_id] for m in moves.values()]}")
        if (state, captured, refunded) not in MONEY_AT_THE_END.get(order_status, set()):
            problems.append(
                f"{order_id} {order_status}: charge {state}, captured {captured}x, refunded {refunded}x"
            )
        ends[f"{order_status} {state}"] += 1
    expired = {e.payload["order_id"] for e in tap.of_type(ReservationExpired.TYPE)}
    late = sum(1 for order_id in expired if charge_state(charges.get(order_id)) == "VOIDED")
    payments = list(db["payment_service"]["payments"].find({}))
    per_order = Counter(p["order_id"] for p in payments)
    problems += [f"{order_id}: {n} payments" for order_id, n in per_order.items() if n > 1]
    checks.append(
        Check(
            "captured once if delivered; else refunded or never taken",
            not problems,
            "; ".join(problems[:5])
            or f"order and charge at the end: {dict(sorted(ends.items()))}; {late} authorised after the "
            "reservation had expired, voided",
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


def last_mile(
    store: MongoClient[dict[str, Any]],
    platform: Platform,
    orders: list[dict[str, Any]],
    tap: Tap,
    controlled: set[str],
    rounds: Rounds,
) -> tuple[list[Check], str]:
    """The deliveries' invariants, and a line of what happened at the door for the table."""
    db = store[platform.database("delivery_service")]
    fields = {"status": 1, "proof": 1, "controlled": 1, "total_cents": 1, "listed": 1, "wrong_pins": 1}
    deliveries = {d["_id"]: d for d in db["deliveries"].find({}, fields)}
    status = {o["id"]: o["status"] for o in orders}
    completed = tap.of_type(DeliveryCompleted.TYPE)
    checks = []

    # The proof: a controlled drug is never handed over without the patient's PIN; nor is an order over
    # the PIN value. Read from what was handed over (the events), what delivery_service keeps, and what
    # the order says.
    wrong = []
    proofs: Counter[str] = Counter()
    for order in orders:
        has_controlled = any(line["medication_id"] in controlled for line in order["lines"])
        delivery = deliveries.get(order["id"])
        if delivery is None or not delivery.get("listed", True):
            continue
        over = delivery["total_cents"] > PIN_OVER_CENTS
        needed = "PIN" if has_controlled or over else "NAME"
        if delivery["proof"] != needed or delivery["controlled"] != has_controlled:
            wrong.append(f"{order['id']}: asks {delivery['proof']}, controlled {delivery['controlled']}")
        if delivery["total_cents"] != round(order["total"] * 100):
            wrong.append(f"{order['id']}: {delivery['total_cents']} cents, the order {order['total']}")
        told = (order["delivery"] or {}).get("proof")
        if order["status"] == "DELIVERED":
            if told != needed:
                wrong.append(f"{order['id']}: delivered, the order says on {told}")
            proofs["PIN, controlled" if has_controlled else "PIN, over value" if over else "NAME"] += 1
    with_controlled = {
        o["id"] for o in orders if any(line["medication_id"] in controlled for line in o["lines"])
    }
    for event in completed:
        if order_of(event) in with_controlled and event.payload["proof"] != "PIN":
            wrong.append(f"{order_of(event)}: controlled, handed over on {event.payload['proof']}")
    checks.append(
        Check(
            "no controlled drug delivered without a PIN",
            not wrong and proofs["PIN, controlled"] > 0 and proofs["PIN, over value"] > 0,
            "; ".join(wrong[:5])
            or f"{len(completed)} handed over: {dict(sorted(proofs.items()))}; "
            f"{sum(d.get('wrong_pins', 0) for d in deliveries.values())} wrong PINs stored, "
            f"{rounds.wrong_pins_refused} refused (422) to the couriers",
        )
    )

    # The end: no delivery still under way, no courier holding one, and each delivery ended as its order.
    stuck = [f"{i} {d['status']}" for i, d in deliveries.items() if d["status"] in DELIVERY_UNDER_WAY]
    holding = [
        f"courier {c['_id']} holds {c['delivery_id']} ({deliveries.get(c['delivery_id'], {}).get('status')})"
        for c in db["couriers"].find({"delivery_id": {"$ne": None}})
    ]
    agrees: dict[str, set[str | None]] = {
        "DELIVERED": {"DELIVERED"},
        "RETURNED": {"RETURNED"},
        "CANCELLED": {None, "CANCELLED", "RETURNED"},
        "REJECTED": {None},
    }
    disagree = [
        f"{order_id} {order_status}, its delivery {deliveries.get(order_id, {}).get('status')}"
        for order_id, order_status in status.items()
        if deliveries.get(order_id, {}).get("status") not in agrees.get(order_status, set())
    ]
    ended = Counter(d["status"] for d in deliveries.values() if d.get("listed", True))
    checks.append(
        Check(
            "every delivery ended as its order, no courier holds one",
            not stuck and not holding and not disagree,
            "; ".join((stuck + holding + disagree)[:5])
            or f"{sum(ended.values())} deliveries: {dict(sorted(ended.items()))}; "
            f"{len(deliveries) - sum(ended.values())} cancelled before they were ready",
        )
    )

    failed = Counter(order_of(e) for e in tap.of_type(DeliveryAttemptFailed.TYPE))
    # Recorded more often than the courier meant: an answer lost in a fault and the request retried
    # would be a second attempt, but each move carries its Idempotency-Key, so it must not happen.
    twice = sorted(order_id for order_id, n in failed.items() if n > rounds.fails[order_id])
    checks.append(
        Check(
            "every failed attempt recorded once",
            not twice,
            ", ".join(twice[:5]) or f"{sum(failed.values())} recorded, as many as the couriers reported",
        )
    )
    summary = (
        f"last mile: {len(tap.of_type(OrderDispensed.TYPE))} dispensed, {rounds.picked_up} picked up, "
        f"{len(completed)} delivered ({proofs['PIN, controlled'] + proofs['PIN, over value']} on a PIN), "
        f"{len(tap.of_type(DeliveryReturned.TYPE))} returned; failed attempts {sum(failed.values())} "
        f"({rounds.fails.total()} answered), wrong PINs refused {rounds.wrong_pins_refused}; "
        f"moves refused (409) {dict(rounds.moves_refused) or 0}"
    )
    summary += "".join(f"\n  failed attempt recorded by a retried request: {order_id}" for order_id in twice)
    summary += "".join(f"\n  409 {refusal}" for refusal in rounds.refusals[:8])
    return checks, summary


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


def saga_seconds(load: Load, share: float) -> float:
    took = sorted(load.sagas)
    return took[min(len(took) - 1, int(share * len(took)))] if took else 0.0


def table(
    faults: FaultLog,
    orders: list[dict[str, Any]],
    load: Load,
    retries: int,
    checks: list[Check],
    last_mile_summary: str,
) -> str:
    lines = ["", f"FAULT SUITE (seed {SEED})", "", f"{'fault injected':<44} {'at order':>8}  result"]
    lines += [f"{fault:<44} {at:>8}  {detail}" for fault, at, detail in faults.rows]
    outcomes = Counter(o["status"] for o in orders)
    lines += [
        "",
        f"orders driven: {len(orders)} ({len(load.accepted)} uploads accepted, {PATIENTS} patients, "
        f"{REPLICAS} replicas per back-end service)",
        f"outcomes: {dict(sorted(outcomes.items()))}; cancels asked {load.cancels_asked}, "
        f"once dispensed {sum(load.late_cancels.values())} "
        f"(answered {dict(sorted(load.late_cancels.items()))}), "
        f"declined cards used {load.declined_cards_used}; HTTP requests retried during faults {retries}",
        last_mile_summary,
        f"saga from upload to its end, as the patient waited: median {saga_seconds(load, 0.5):.1f} s, "
        f"95th percentile {saga_seconds(load, 0.95):.1f} s, longest {saga_seconds(load, 1.0):.1f} s "
        f"(patience {SAGA_PATIENCE_SECONDS:.0f} s)",
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
    env = {
        **infra.env,
        "RESERVATION_HOLD_SECONDS": str(HOLD_SECONDS),
        "PIN_OVER_CENTS": str(PIN_OVER_CENTS),
        "MAX_DELIVERY_ATTEMPTS": str(MAX_DELIVERY_ATTEMPTS),
    }
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
            body |= {
                "price": PRICES.get(name, DEFAULT_PRICE),
                "prescription_only": name in PRESCRIPTION_ONLY,
                "schedule": SCHEDULES.get(name),
            }
            answer = gateway.call("POST", "/medications", headers=admin, json=body)
            assert answer.status_code == 201, answer.text
            medication_ids[name] = answer.json()["id"]
        initial_stock: dict[tuple[str, str], int] = {}
        pharmacies: list[tuple[str, float, float]] = []
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
            pharmacies.append((pharmacy_id, latitude, longitude))
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
        pharmacist = staff_member(gateway, admin, "pharmacist")
        verifier = Verifier()
        checker = threading.Thread(
            target=verify, args=(Gateway(platform.url), pharmacist, load, verifier), name="pharmacist"
        )
        # The last mile: a pharmacist on every pharmacy's staff, and couriers waiting at the pharmacies.
        dispenser = staff_member(gateway, admin, "pharmacist")
        me = gateway.call("GET", "/users/me", headers=dispenser).json()["id"]
        for pharmacy_id, _, _ in pharmacies:
            joined = gateway.call("PUT", f"/pharmacies/{pharmacy_id}/staff/{me}", headers=admin)
            assert joined.status_code == 200, joined.text
        dispensary, rounds = Dispensary(), Rounds()
        staff_clients = [Gateway(platform.url) for _ in range(1 + COURIERS)]
        counter = threading.Thread(
            target=dispense,
            args=(staff_clients[0], dispenser, [p for p, _, _ in pharmacies], load, dispensary),
            name="dispensing",
            daemon=True,
        )
        couriers = on_duty_couriers(gateway, admin, pharmacies, staff_clients[1:], load, dispensary, rounds)
        for thread in (*drivers, injector, checker, counter, *couriers):
            thread.start()
        for thread in drivers:
            thread.join(timeout=1200)
        injector.join(timeout=600)
        checker.join(timeout=300)
        counter.join(timeout=300)
        for thread in couriers:
            thread.join(timeout=300)
        assert not injector.is_alive(), "the fault schedule did not finish"
        assert not checker.is_alive(), "the pharmacist did not finish"
        assert not verifier.unexpected, verifier.unexpected[:5]
        assert not counter.is_alive(), "the dispensing pharmacist did not finish"
        assert not dispensary.unexpected, dispensary.unexpected[:5]
        assert not any(t.is_alive() for t in couriers), "the couriers did not finish"
        assert not rounds.unexpected, rounds.unexpected[:5]
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
        delivery_checks, last_mile_summary = last_mile(
            store, platform, orders, tap, {medication_ids[n] for n in SCHEDULES}, rounds
        )
        checks += delivery_checks
        skipped = [fault for fault, _, detail in faults.rows if detail.startswith("NOT INJECTED")]
        checks.append(Check("every scheduled fault injected", not skipped, ", ".join(skipped) or "all"))
        retries = sum(c.retries for c in (*clients, *staff_clients))
        report = table(faults, orders, load, retries, checks, last_mile_summary)
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
