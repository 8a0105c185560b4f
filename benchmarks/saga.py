"""Drive full sagas through the gateway and print throughput, latency, the ceiling and CPU per order.

    python -m benchmarks.saga --orders 200 --concurrency 16 64 [--preload 2000] [--replicas 2]
    python -m benchmarks.saga --quick        # the small run CI makes

Starts its own platform (its own broker namespace and databases, removed at the end) on the
RabbitMQ and store named by RABBITMQ_URL / MONGODB_URL. Setup and a warm-up are not timed. Then:
a closed loop at each concurrency (patients who upload and wait for their order's end), an open
loop at half the best closed-loop throughput; with --preload, the same again after writing past
orders into the stores. The ceiling (benchmarks/ceiling.py) makes the saga's broker traffic with
no handler work at the same concurrencies. A benchmark, not a test: it asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.ceiling import Ceiling, Chain, learn
from benchmarks.cpu import CpuMeter, listener
from benchmarks.load import (
    Results,
    Shop,
    TerminalEvents,
    closed_loop,
    new_patient,
    open_loop,
    stock_the_shelves,
    token,
)
from benchmarks.preload import preload
from benchmarks.report import Phase, cpu_table, throughput_table, traffic_table
from benchmarks.traffic import metrics_urls, scrape
from payment_service.domain import payment_id_for
from service_runtime.launcher import (
    SERVICES,
    Platform,
    delete_namespace,
    drop_databases,
    free_port,
    throwaway_keys,
)

ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = secrets.token_urlsafe(24)
# After a phase, before reading counters: the last orders' trailing events are still being handled.
SETTLE_SECONDS = 1.0
WARMUP_CONCURRENCY = 4


@dataclass
class Run:
    """What one platform (one replica count) gave."""

    replicas: int
    phases: list[Phase] = field(default_factory=list)
    chain: Chain | None = None
    preload_seconds: float | None = None

    @property
    def name(self) -> str:
        return "1 replica" if self.replicas == 1 else f"{self.replicas} replicas"


def processes(platform: Platform, rabbitmq_url: str, mongodb_url: str) -> dict[str, int]:
    """The pids to meter: the platform's processes, the broker's and the store's, this one."""
    pids = {name: process.pid for name, process in platform.processes.items()}
    return pids | backing_processes(rabbitmq_url, mongodb_url)


def backing_processes(rabbitmq_url: str, mongodb_url: str) -> dict[str, int]:
    pids = {"benchmark (this process)": os.getpid()}
    for what, url in (("rabbitmq", rabbitmq_url), ("store", mongodb_url)):
        if (pid := listener(url)) is not None:
            pids[f"{what} ({Path(f'/proc/{pid}/comm').read_text().strip()})"] = pid
    return pids


async def measure(
    label: str, work: Coroutine[Any, Any, Results], meter: CpuMeter, http: httpx.AsyncClient, urls: list[str]
) -> Phase:
    before = await scrape(http, urls)
    meter.start()
    results = await work
    await asyncio.sleep(SETTLE_SECONDS)
    cpu = meter.spent()
    print(f"{label}: {len(results.saga_ms)} ended, {results.throughput:.1f} orders/s", flush=True)
    return Phase(label, results, cpu, (await scrape(http, urls)) - before)


async def drive(platform: Platform, args: argparse.Namespace, env: Mapping[str, str], run: Run) -> None:
    rabbitmq_url, mongodb_url = env["RABBITMQ_URL"], env["MONGODB_URL"]
    limits = httpx.Limits(max_connections=max(args.concurrency) * 2)
    async with httpx.AsyncClient(base_url=f"{platform.url}/api/v1", timeout=30, limits=limits) as http:
        admin = await token(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        medication_ids = await stock_the_shelves(http, admin)
        patients = [await new_patient(http) for _ in range(max(args.concurrency))]
        learner = TerminalEvents()
        connection = await learner.start(rabbitmq_url, platform.namespace, everything=True)
        shop = Shop(http, learner, medication_ids, patients)
        warmup = await closed_loop(shop.order, shop.numbers, WARMUP_CONCURRENCY, args.warmup)
        await asyncio.sleep(SETTLE_SECONDS)
        await connection.close()
        shop.watch = TerminalEvents()
        connection = await shop.watch.start(rabbitmq_url, platform.namespace)
        meter = CpuMeter(processes(platform, rabbitmq_url, mongodb_url))
        urls = metrics_urls(platform)
        name = run.name

        async def phases(label: str, rate: float | None = None) -> tuple[list[Phase], float]:
            done = []
            for c in args.concurrency:
                work = closed_loop(shop.order, shop.numbers, c, args.orders)
                done.append(await measure(f"{label}, closed {c}", work, meter, http, urls))
            rate = rate or max(p.results.throughput for p in done) / 2
            work = open_loop(shop.order, shop.numbers, len(patients), rate, args.orders)
            done.append(await measure(f"{label}, open {rate:.1f}/s", work, meter, http, urls))
            return done, rate

        run.phases, rate = await phases(name)
        first = run.phases[0]
        assert first.traffic is not None
        run.chain = learn(learner.seen, first.traffic, len(first.results.saga_ms) or 1)
        if args.preload:
            sagas = sorted({seen.correlation_id for seen in learner.seen})
            print(f"{name}: writing {args.preload} past orders ({warmup.orders} warm-up ones copied)...")
            run.preload_seconds, sampled = await preload(platform, mongodb_url, env, sagas, args.preload)
            await services_read_them(http, admin, sampled)
            run.phases += (await phases(f"{name} +{args.preload} past", rate))[0]
        await connection.close()


async def services_read_them(
    http: httpx.AsyncClient, admin: dict[str, str], order_ids: Sequence[str]
) -> None:
    """The services open what was preloaded (sealed as they seal): an operator reads some of the past
    orders, their prescriptions and payments, one by one (a list of every order would read them all:
    the embedded store cannot sort by date through an index)."""
    for order_id in order_ids:
        order = await http.get(f"/orders/{order_id}", headers=admin)
        order.raise_for_status()
        prescription = await http.get(f"/prescriptions/{order.json()['prescription_id']}", headers=admin)
        prescription.raise_for_status()
        # Every warm-up order reached payment_service (the shop has stock for all), so every copy has one.
        (await http.get(f"/payments/{payment_id_for(order_id)}", headers=admin)).raise_for_status()


def run_platform(args: argparse.Namespace, env: Mapping[str, str], replicas: int) -> Run:
    tag = secrets.token_hex(4)
    backends = {service: replicas for service in SERVICES if service != "user_service"}
    platform = Platform(
        port=free_port(),
        namespace=f"bench_{tag}",
        database_prefix=f"bench_{tag}",
        log_dir=Path(".run/bench-logs"),
        env=env,
        replicas=backends,
    )
    run = Run(replicas)
    try:
        platform.start(timeout=120)
        asyncio.run(drive(platform, args, env, run))
    finally:
        platform.stop()
        asyncio.run(delete_namespace(env["RABBITMQ_URL"], platform.namespace))
        asyncio.run(drop_databases(env["MONGODB_URL"], platform.database_prefix))
    return run


async def run_ceiling(
    rabbitmq_url: str, mongodb_url: str, chain: Chain, concurrency: Sequence[int], orders: int
) -> tuple[list[Phase], Counter[str]]:
    """The ceiling at each concurrency, and what its consumers took in the first of them."""
    ceiling = Ceiling(rabbitmq_url, chain)
    await ceiling.start()
    meter = CpuMeter(backing_processes(rabbitmq_url, mongodb_url))
    numbers = itertools.count()
    phases, taken = [], Counter[str]()
    try:
        await closed_loop(ceiling.order, numbers, WARMUP_CONCURRENCY, 4 * WARMUP_CONCURRENCY)
        await asyncio.sleep(SETTLE_SECONDS)
        for c in concurrency:
            before = ceiling.taken()
            meter.start()
            results = await closed_loop(ceiling.order, numbers, c, orders)
            await asyncio.sleep(SETTLE_SECONDS)
            phases.append(Phase(f"ceiling, closed {c}", results, meter.spent()))
            if not taken:
                taken = ceiling.taken() - before
    finally:
        await ceiling.stop()
    return phases, taken


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200, help="orders in each phase (default 200)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[16, 64], help="patients of each closed loop (16 64)"
    )
    parser.add_argument("--preload", type=int, default=0, help="past orders to write, then run again")
    parser.add_argument(
        "--replicas", type=int, default=1, help="also run with this many replicas per service"
    )
    parser.add_argument("--warmup", type=int, default=16, help="orders before measuring (default 16)")
    parser.add_argument(
        "--quick", action="store_true", help="CI: --orders 30 --concurrency 4 16 --preload 200"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.orders, args.concurrency, args.preload, args.warmup = 30, [4, 16], args.preload or 200, 8
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    started = time.perf_counter()
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
    runs = [run_platform(args, env, replicas) for replicas in dict.fromkeys([1, args.replicas])]
    chain = runs[0].chain
    assert chain is not None
    ceiling, taken = asyncio.run(
        run_ceiling(env["RABBITMQ_URL"], env["MONGODB_URL"], chain, args.concurrency, args.orders)
    )
    by_concurrency = {p.label.rsplit(" ", 1)[1]: p.results for p in ceiling}
    for run in runs:
        for phase in run.phases:
            if ", closed " in phase.label:
                phase.ceiling = by_concurrency.get(phase.label.rsplit(" ", 1)[1])
    print()
    print(throughput_table([*ceiling, *(p for run in runs for p in run.phases)]))
    for run in runs:
        if run.preload_seconds is not None:
            rate = args.preload / run.preload_seconds
            seconds = run.preload_seconds
            print(
                f"preload ({run.name}): {args.preload} past orders in {seconds:.1f} s ({rate:.0f} orders/s)"
            )
    first = runs[0].phases[0]
    assert first.traffic is not None
    print()
    print(f"Broker traffic per order, saga from /metrics in '{first.label}', ceiling as it ran:")
    print(
        traffic_table(
            first.traffic, len(first.results.saga_ms), chain, taken, len(ceiling[0].results.saga_ms)
        )
    )
    for name, phases in [("ceiling", ceiling), *((run.name, run.phases) for run in runs)]:
        print()
        print(cpu_table(name, phases))
    print(f"\n(whole benchmark: {time.perf_counter() - started:.0f} s)")
    # No timing is asserted: orders unfinished by the deadline and uploads refused because a service
    # did not answer in time (503) are figures. Any other refusal is a bug the benchmark ran into.
    broken = [s for run in runs for p in run.phases for s in p.results.refused if s not in (503, 504)]
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
