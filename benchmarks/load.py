"""Patients driving sagas through the gateway: closed loop (each waits for its order, then uploads
again) and open loop (orders arrive at a fixed rate, whatever is still running).

Each order is timed from sending the upload to the moment its terminal event (OrderConfirmed,
OrderRejected or OrderCancelled) crosses the broker: the order service publishes it after saving the
status, so it is what a client can read at that instant, measured without adding polling load.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx

from contracts import topology
from contracts.base import Envelope
from contracts.events import OrderCancelled, OrderConfirmed, OrderRejected

TERMINAL_EVENTS = {
    OrderConfirmed.TYPE: "CONFIRMED",
    OrderRejected.TYPE: "REJECTED",
    OrderCancelled.TYPE: "CANCELLED",
}
ORDER_DEADLINE_SECONDS = 60.0
# An open-loop upload sent this much after its scheduled time counts as late: the driver fell behind.
LATE_SECONDS = 0.1
# A few pharmacies around Berlin's centre, and deliveries near it: every order has a pharmacy in reach.
PHARMACIES = [
    ("Mitte", 52.5200, 13.4050),
    ("Kreuzberg", 52.4986, 13.4030),
    ("Prenzlauer Berg", 52.5389, 13.4247),
]
MEDICATIONS = [("Amoxicillin", "500 mg", "capsule", "4.20"), ("Ibuprofen", "400 mg", "tablet", "2.10")]
# Enough stock for any run: the benchmark measures sagas that confirm, not shortages.
UNITS = 1_000_000


@dataclass
class Results:
    """What one phase of orders gave."""

    orders: int = 0
    upload_ms: list[float] = field(default_factory=list)
    saga_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    # Uploads the gateway did not take, by HTTP status (503: the service did not answer in time).
    refused: Counter[int] = field(default_factory=Counter)
    late: int = 0
    wall_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Orders per second that reached a terminal status."""
        return len(self.saga_ms) / self.wall_seconds if self.wall_seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Seen:
    """An event that crossed the broker, as a watcher bound to everything saw it."""

    type: str
    event_id: str
    causation_id: str | None
    correlation_id: str
    publisher: str
    body: bytes
    expiration: aio_pika.abc.DateType


class TerminalEvents:
    """Watches a namespace's events exchange and resolves one future per order when it ends.

    `everything`: bound to every routing key, it also keeps each event seen (the chain the ceiling
    replays is learned from them); only for a warm-up, since the copies add to the broker's work.
    """

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[tuple[str, float]]] = {}
        self.early: dict[str, tuple[str, float]] = {}
        self.seen: list[Seen] = []

    async def start(
        self, rabbitmq_url: str, namespace: str, *, everything: bool = False
    ) -> aio_pika.abc.AbstractRobustConnection:
        connection = await aio_pika.connect_robust(rabbitmq_url)
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{namespace}.{topology.EVENTS_EXCHANGE}")
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for event in (OrderConfirmed, OrderRejected, OrderCancelled):
            await queue.bind(exchange, routing_key=event.ROUTING_KEY)
        if everything:
            await queue.bind(exchange, routing_key="#")
        await queue.consume(self._seen, no_ack=True)
        return connection

    async def _seen(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        at = time.perf_counter()
        envelope = Envelope.model_validate_json(message.body)
        self.seen.append(
            Seen(
                type=envelope.type,
                event_id=str(envelope.event_id),
                causation_id=envelope.causation_id,
                correlation_id=envelope.correlation_id,
                publisher=str((message.headers or {}).get("x-publisher") or ""),
                body=message.body,
                expiration=message.expiration,
            )
        )
        if envelope.type not in TERMINAL_EVENTS:
            return
        outcome = (TERMINAL_EVENTS[envelope.type], at)
        future = self.waiting.pop(envelope.correlation_id, None)
        if future is None:
            self.early[envelope.correlation_id] = outcome  # faster than the upload's answer
        elif not future.done():
            future.set_result(outcome)

    def expect(self, order_id: str) -> asyncio.Future[tuple[str, float]]:
        future: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()
        if order_id in self.early:
            future.set_result(self.early.pop(order_id))
        else:
            self.waiting[order_id] = future
        return future

    def forget(self) -> None:
        self.seen.clear()


async def token(http: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    answer = await http.post("/auth/token", data={"username": email, "password": password})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def stock_the_shelves(http: httpx.AsyncClient, admin: dict[str, str]) -> list[str]:
    medication_ids = []
    suffix = secrets.token_hex(3)
    for name, strength, form, price in MEDICATIONS:
        medication: dict[str, Any] = {"name": f"{name} {suffix}", "strength": strength, "form": form}
        # Over the counter: the bench measures the saga, not a pharmacist's queue.
        medication.update(price=price, prescription_only=False)
        answer = await http.post("/medications", headers=admin, json=medication)
        answer.raise_for_status()
        medication_ids.append(answer.json()["id"])
    for name, latitude, longitude in PHARMACIES:
        pharmacy: dict[str, Any] = {"name": f"Apotheke {name}", "address": f"{name}, Berlin"}
        pharmacy.update(latitude=latitude, longitude=longitude)
        pharmacy_id = (await http.post("/pharmacies", headers=admin, json=pharmacy)).json()["id"]
        for medication_id in medication_ids:
            url = f"/pharmacies/{pharmacy_id}/stock/{medication_id}"
            (await http.put(url, headers=admin, json={"quantity": UNITS})).raise_for_status()
    return medication_ids


async def new_patient(http: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    email, password = f"bench-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(16)
    body = {"email": email, "password": password, "full_name": "Bench Patient"}
    (await http.post("/auth/register", json=body)).raise_for_status()
    headers = await token(http, email, password)
    card = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}
    answer = await http.post("/payment-methods", headers=headers, json=card)
    answer.raise_for_status()
    return headers, answer.json()["id"]


Patient = tuple[dict[str, str], str]
# One order: given its number and the patient sending it, drives it to its end and records it.
Drive = Callable[[int, int, Results], Coroutine[Any, Any, None]]


@dataclass
class Shop:
    """The gateway a run drives, with its catalogue and the patients who upload."""

    http: httpx.AsyncClient
    watch: TerminalEvents
    medication_ids: list[str]
    patients: list[Patient]
    numbers: itertools.count[int] = field(default_factory=itertools.count)

    async def order(self, n: int, patient: int, results: Results) -> None:
        """Upload one prescription as a patient would and wait for its order's terminal event."""
        headers, card = self.patients[patient % len(self.patients)]
        prescription = {
            "lines": [
                {"medication_id": self.medication_ids[n % len(self.medication_ids)], "quantity": 1 + n % 3}
            ],
            "delivery_location": {"latitude": 52.51 + (n % 7) * 0.005, "longitude": 13.40},
            "payment_method_id": card,
        }
        started = time.perf_counter()
        # As a client should send it: the key makes a retried upload safe (a benchmark does not retry).
        keyed = {**headers, "Idempotency-Key": f"upload-{n}"}
        answer = await self.http.post("/prescriptions", headers=keyed, json=prescription)
        results.upload_ms.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 202:
            results.refused[answer.status_code] += 1
            return
        await finish(self.watch, answer.json()["order_id"], started, results)


async def finish(watch: TerminalEvents, order_id: str, started: float, results: Results) -> None:
    """Wait for the order's terminal event and record how long it took from `started`."""
    try:
        status, ended = await asyncio.wait_for(watch.expect(order_id), ORDER_DEADLINE_SECONDS)
    except TimeoutError:
        results.unfinished += 1
        return
    results.saga_ms.append((ended - started) * 1000)
    results.outcomes[status] += 1


async def closed_loop(drive: Drive, numbers: itertools.count[int], concurrency: int, orders: int) -> Results:
    """`concurrency` patients, each sending an order and waiting for its end before the next."""
    results = Results(orders=orders)
    todo = iter(range(orders))

    async def patient(p: int) -> None:
        for _ in todo:
            await drive(next(numbers), p, results)

    started = time.perf_counter()
    await asyncio.gather(*(patient(p) for p in range(concurrency)))
    results.wall_seconds = time.perf_counter() - started
    return results


async def open_loop(
    drive: Drive, numbers: itertools.count[int], patients: int, rate: float, orders: int
) -> Results:
    """Orders arriving every 1/rate seconds, each from the next patient, whether or not others ended."""
    results = Results(orders=orders)
    started = time.perf_counter()
    sent: list[asyncio.Task[None]] = []
    for i in range(orders):
        due = started + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if time.perf_counter() - due > LATE_SECONDS:
            results.late += 1
        sent.append(asyncio.create_task(drive(next(numbers), i % patients, results)))
    await asyncio.gather(*sent)
    results.wall_seconds = time.perf_counter() - started
    return results
