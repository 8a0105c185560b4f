"""Drive full sagas through the gateway and print throughput and latency.

    python benchmarks/saga.py --orders 200 --concurrency 16

Starts its own platform (its own broker namespace and databases, removed at the end) on the
RabbitMQ and store named by RABBITMQ_URL / MONGODB_URL. Setup is not timed. Each order is timed
from sending the upload to the moment its terminal event (OrderConfirmed, OrderRejected or
OrderCancelled) crosses the broker: the order service publishes it after saving the status, so
it is what a client can read at that instant, measured without adding polling load.
A benchmark, not a test: it asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from contracts import topology
from contracts.base import Envelope
from contracts.events import OrderCancelled, OrderConfirmed, OrderRejected
from service_runtime.launcher import Platform, delete_namespace, drop_databases, free_port, throwaway_keys

TERMINAL_EVENTS = {
    OrderConfirmed.TYPE: "CONFIRMED",
    OrderRejected.TYPE: "REJECTED",
    OrderCancelled.TYPE: "CANCELLED",
}
ORDER_DEADLINE_SECONDS = 60.0
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = secrets.token_urlsafe(24)
# A few pharmacies around Berlin's centre, and deliveries near it: every order has a pharmacy in reach.
PHARMACIES = [
    ("Mitte", 52.5200, 13.4050),
    ("Kreuzberg", 52.4986, 13.4030),
    ("Prenzlauer Berg", 52.5389, 13.4247),
]
MEDICATIONS = [("Amoxicillin", "500 mg", "capsule", "4.20"), ("Ibuprofen", "400 mg", "tablet", "2.10")]


@dataclass
class Results:
    upload_ms: list[float] = field(default_factory=list)
    saga_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    wall_seconds: float = 0.0


class TerminalEvents:
    """Watches the namespace's events exchange and resolves one future per order when it ends."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[tuple[str, float]]] = {}
        self.early: dict[str, tuple[str, float]] = {}

    async def start(self, rabbitmq_url: str, namespace: str) -> aio_pika.abc.AbstractRobustConnection:
        connection = await aio_pika.connect_robust(rabbitmq_url)
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{namespace}.{topology.EVENTS_EXCHANGE}")
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for event in (OrderConfirmed, OrderRejected, OrderCancelled):
            await queue.bind(exchange, routing_key=event.ROUTING_KEY)
        await queue.consume(self._seen, no_ack=True)
        return connection

    async def _seen(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        at = time.perf_counter()
        envelope = Envelope.model_validate_json(message.body)
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def token(http: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    answer = await http.post("/auth/token", data={"username": email, "password": password})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def stock_the_shelves(http: httpx.AsyncClient, admin: dict[str, str], units: int) -> list[str]:
    medication_ids = []
    suffix = secrets.token_hex(3)
    for name, strength, form, price in MEDICATIONS:
        medication: dict[str, Any] = {"name": f"{name} {suffix}", "strength": strength, "form": form}
        medication.update(price=price, prescription_only=True)
        answer = await http.post("/medications", headers=admin, json=medication)
        answer.raise_for_status()
        medication_ids.append(answer.json()["id"])
    for name, latitude, longitude in PHARMACIES:
        pharmacy: dict[str, Any] = {"name": f"Apotheke {name}", "address": f"{name}, Berlin"}
        pharmacy.update(latitude=latitude, longitude=longitude)
        pharmacy_id = (await http.post("/pharmacies", headers=admin, json=pharmacy)).json()["id"]
        for medication_id in medication_ids:
            url = f"/pharmacies/{pharmacy_id}/stock/{medication_id}"
            (await http.put(url, headers=admin, json={"quantity": units})).raise_for_status()
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


async def drive_one(
    http: httpx.AsyncClient,
    watch: TerminalEvents,
    patient: tuple[dict[str, str], str],
    medication_ids: list[str],
    n: int,
    results: Results,
) -> None:
    headers, card = patient
    prescription = {
        "lines": [{"medication_id": medication_ids[n % len(medication_ids)], "quantity": 1 + n % 3}],
        "delivery_location": {"latitude": 52.51 + (n % 7) * 0.005, "longitude": 13.40},
        "payment_method_id": card,
    }
    started = time.perf_counter()
    # As a client should send it: the key makes a retried upload safe (a benchmark does not retry).
    keyed = {**headers, "Idempotency-Key": f"upload-{n}"}
    answer = await http.post("/prescriptions", headers=keyed, json=prescription)
    results.upload_ms.append((time.perf_counter() - started) * 1000)
    answer.raise_for_status()
    try:
        status, ended = await asyncio.wait_for(
            watch.expect(answer.json()["order_id"]), ORDER_DEADLINE_SECONDS
        )
    except TimeoutError:
        results.unfinished += 1
        return
    results.saga_ms.append((ended - started) * 1000)
    results.outcomes[status] += 1


async def run(platform: Platform, rabbitmq_url: str, orders: int, concurrency: int) -> Results:
    results = Results()
    watch = TerminalEvents()
    connection = await watch.start(rabbitmq_url, platform.namespace)
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with (
        connection,
        httpx.AsyncClient(base_url=f"{platform.url}/api/v1", timeout=30, limits=limits) as http,
    ):
        admin = await token(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        medication_ids = await stock_the_shelves(http, admin, units=orders * 3)
        patients = [await new_patient(http) for _ in range(concurrency)]
        work: asyncio.Queue[int] = asyncio.Queue()
        for n in range(orders):
            work.put_nowait(n)

        async def worker(patient: tuple[dict[str, str], str]) -> None:
            while not work.empty():
                await drive_one(http, watch, patient, medication_ids, work.get_nowait(), results)

        started = time.perf_counter()
        await asyncio.gather(*(worker(p) for p in patients))
        results.wall_seconds = time.perf_counter() - started
    return results


def report(results: Results, orders: int, concurrency: int) -> None:
    done = len(results.saga_ms)
    upload, saga = results.upload_ms, results.saga_ms
    print(f"orders driven:         {orders} ({concurrency} patients uploading at once)")
    print(
        f"outcomes:              {dict(sorted(results.outcomes.items()))}, unfinished: {results.unfinished}"
    )
    print(f"wall time:             {results.wall_seconds:.2f} s")
    print(f"throughput:            {done / results.wall_seconds:.1f} orders/s reaching a terminal status")
    print(f"upload (HTTP 202):     p50 {percentile(upload, 50):.0f} ms, p95 {percentile(upload, 95):.0f} ms")
    if saga:
        print(
            f"upload -> terminal:    p50 {percentile(saga, 50):.0f} ms, p95 {percentile(saga, 95):.0f} ms, "
            f"p99 {percentile(saga, 99):.0f} ms, max {max(saga):.0f} ms, mean {statistics.fmean(saga):.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200, help="full sagas to drive (default 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="patients uploading at once (default 16)")
    args = parser.parse_args()
    env = dict(os.environ)
    env.update(
        {
            "ENVIRONMENT": "test",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "LOG_LEVEL": "WARNING",
            **throwaway_keys("bench"),
        }
    )
    rabbitmq_url, mongodb_url = env["RABBITMQ_URL"], env["MONGODB_URL"]
    tag = secrets.token_hex(4)
    platform = Platform(
        port=free_port(),
        namespace=f"bench_{tag}",
        database_prefix=f"bench_{tag}",
        log_dir=Path(".run/bench-logs"),
        env=env,
    )
    try:
        platform.start(timeout=90)
        results = asyncio.run(run(platform, rabbitmq_url, args.orders, args.concurrency))
    finally:
        platform.stop()
        asyncio.run(delete_namespace(rabbitmq_url, platform.namespace))
        asyncio.run(drop_databases(mongodb_url, platform.database_prefix))
    report(results, args.orders, args.concurrency)
    sys.exit(1 if results.unfinished else 0)


if __name__ == "__main__":
    main()
