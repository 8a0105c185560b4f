"""A real RabbitMQ cluster losing a node under load (issue 15): `make cluster-test`.

scripts/cluster-test.sh starts three nodes of Debian's rabbitmq-server on this machine
(scripts/cluster.sh) and FerretDB, and sets RABBITMQ_URL to every node's address. Here the platform
runs against that cluster (two replicas of every back-end service, the gateway, the journal), the fault
suite's patients, pharmacists and couriers drive orders through it, and the node leading the most
quorum queues is stopped and started again while they do. Then the fault suite's invariants are
checked (every order terminal, stock conserved, no double charge, no event lost), and that the queue
leaders moved off the stopped node and came back to it once the leaders were rebalanced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

# Under `mypy .` conftest resolves; so does the fault suite, whose load and checks this reuses.
from conftest import ROOT, Backing, make_platform, platform_scans
from fault.test_fault_suite import (
    BACKENDS,
    COURIERS,
    DEFAULT_PRICE,
    HOLD_SECONDS,
    MAX_DELIVERY_ATTEMPTS,
    MEDICATIONS,
    ORDERS,
    PATIENTS,
    PHARMACIES,
    PIN_OVER_CENTS,
    PRESCRIPTION_ONLY,
    PRICES,
    REPLICAS,
    SCHEDULES,
    SEED,
    TERMINAL_WITHIN_SECONDS,
    Check,
    Dispensary,
    Gateway,
    Load,
    Rounds,
    Tap,
    Verifier,
    all_orders,
    check_invariants,
    dispense,
    drive,
    last_mile,
    new_patient,
    on_duty_couriers,
    plans,
    queue_delete,
    staff_member,
    unverified_reservations,
    verify,
    wait_until_quiet,
    wait_until_terminal,
)
from pymongo import MongoClient

from contracts import topology
from service_runtime import broker_nodes
from service_runtime.launcher import DATABASES, delete_namespace
from service_runtime.settings import RuntimeSettings

pytestmark = pytest.mark.cluster

CLUSTER = ROOT / "scripts" / "cluster.sh"
NODES = (1, 2, 3)
# The node is stopped once this share of the orders was accepted, and started again once this many
# more were accepted while it was down (or this long passed).
STOP_AT_SHARE = 0.25
WHILE_DOWN_SHARE = 0.25
DOWN_AT_MOST_SECONDS = 90.0
LEADER_BOUND_SECONDS = 60.0
# While the node is down, the platform answers writes and publishes events at its normal pace (a few a
# second): no write waits, nor does the platform go without answering one or publishing an event, longer
# than this. The stalls this bounds lasted the whole outage, 80-90 s.
STALL_BOUND_SECONDS = 30.0


def node_name(n: int) -> str:
    """As scripts/cluster.sh names its nodes (CLUSTER_NODE_PREFIX keeps a second cluster apart)."""
    return f"{os.environ.get('CLUSTER_NODE_PREFIX', 'pharmacy-c')}{n}@localhost"


@dataclass
class Cluster:
    """The three nodes scripts/cluster.sh started, and where the namespace's quorum queues lead."""

    urls: list[str]
    namespace: str = ""
    down: set[int] = field(default_factory=set)

    def script(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(  # noqa: S603 - our own script
            [str(CLUSTER), *args], capture_output=True, text=True, check=True, timeout=timeout
        )
        return done.stdout

    def up(self) -> int:
        return next(n for n in NODES if n not in self.down)

    def url_of(self, n: int) -> str:
        return self.urls[n - 1]

    def queues(self) -> list[dict[str, Any]]:
        """The namespace's quorum queues: name, leader, members, online, as a running node sees them."""
        out = self.script(
            "ctl",
            str(self.up()),
            "list_queues",
            "-q",
            "--formatter",
            "json",
            "name",
            "type",
            "leader",
            "members",
            "online",
        )
        rows = json.loads(out) if out.strip().startswith("[") else []
        return [q for q in rows if q["type"] == "quorum" and q["name"].startswith(f"{self.namespace}.")]

    def leaders(self) -> dict[str, str]:
        return {q["name"]: q["leader"] for q in self.queues()}

    def stop(self, n: int) -> None:
        self.script("stop-node", str(n))
        self.down.add(n)

    def start(self, n: int) -> None:
        self.script("start-node", str(n))
        self.down.discard(n)

    def rebalance(self) -> None:
        self.script(
            "queues", str(self.up()), "rebalance", "quorum", "--queue-pattern", f"^{self.namespace}\\."
        )


def per_node(leaders: dict[str, str]) -> dict[str, int]:
    counts = Counter(leaders.values())
    return {f"c{n}": counts.get(node_name(n), 0) for n in NODES}


@dataclass
class Outage:
    """What happened to the stopped node and the leaders of the quorum queues."""

    victim: int = 0
    before: dict[str, str] = field(default_factory=dict)
    during: dict[str, str] = field(default_factory=dict)
    back: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    stopped_at_order: int = 0
    started_at_order: int = 0
    leader_change_seconds: float | None = None
    down_seconds: float = 0.0
    members_online_seconds: float | None = None
    # When the node was stopped and when it was started again (time.monotonic()).
    stopped: float = 0.0
    restarted: float = 0.0
    # Events the platform published while the node was down, and the longest time none was.
    events_while_down: int = 0
    longest_pause_seconds: float = 0.0
    unexpected: list[str] = field(default_factory=list)


def wait_for_share(load: Load, share: float, bound: float) -> None:
    """Until the load reached this share of the orders."""
    deadline = time.monotonic() + bound
    while load.count() < share * ORDERS and not load.finished() and time.monotonic() < deadline:
        time.sleep(0.2)


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] with none of these moments in it, its ends included.

    Measured from the moments themselves, not sampled: none at all is the whole stretch."""
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(edges))


@dataclass
class Write:
    """One write a client sent, from its first try to the answer it kept (retries of a 503 included)."""

    method: str
    path: str
    sent: float
    answered: float
    status: int


class TimedGateway(Gateway):
    """The fault suite's client, keeping when each write was sent and answered, whatever its status."""

    writes: list[Write]

    def __init__(self, url: str, writes: list[Write]) -> None:
        super().__init__(url)
        self.writes = writes

    def call(self, method: str, path: str, *, patience: float = 120.0, **options: Any) -> httpx.Response:
        sent = time.monotonic()
        answer = super().call(method, path, patience=patience, **options)
        if method != "GET":
            self.writes.append(Write(method, path, sent, time.monotonic(), answer.status_code))
        return answer


def stall_checks(outage: Outage, tap: Tap, writes: list[Write]) -> list[Check]:
    """No write, nor the platform's events, stalled while the node was down."""
    start, end = outage.stopped, outage.restarted
    if not end > start:
        return [Check("no write stalled while the node was down", False, "the node was not stopped")]
    answered = [w.answered for w in writes if w.status < 500]
    no_answer = longest_gap(answered, start, end)
    events = list(tap.arrivals)
    outage.events_while_down = sum(start <= t <= end for t in events)
    outage.longest_pause_seconds = longest_gap(events, start, end)
    # A write in flight while the node was down: sent before it came back, answered after it stopped.
    during = [w for w in writes if w.sent < end and w.answered > start]
    slowest = max(during, key=lambda w: w.answered - w.sent, default=None)
    waited = 0.0 if slowest is None else slowest.answered - slowest.sent
    return [
        Check(
            f"no write waited {STALL_BOUND_SECONDS:.0f} s or more while the node was down",
            bool(during) and waited < STALL_BOUND_SECONDS,
            f"{len(during)} writes, the slowest {waited:.1f} s"
            + (f" ({slowest.method} {slowest.path.split('?')[0]})" if slowest else ""),
        ),
        Check(
            f"writes answered all along (no pause of {STALL_BOUND_SECONDS:.0f} s)",
            no_answer < STALL_BOUND_SECONDS,
            f"{sum(start <= t <= end for t in answered)} answered, "
            f"longest pause without one {no_answer:.1f} s",
        ),
        Check(
            f"events published all along (no pause of {STALL_BOUND_SECONDS:.0f} s)",
            outage.longest_pause_seconds < STALL_BOUND_SECONDS,
            f"{outage.events_while_down} published, longest pause without one "
            f"{outage.longest_pause_seconds:.1f} s",
        ),
    ]


def take_node_away(cluster: Cluster, load: Load, outage: Outage) -> None:
    """Stop the node leading the most quorum queues under load, then start it again and rebalance."""
    try:
        wait_for_share(load, STOP_AT_SHARE, 900)
        outage.before = cluster.leaders()
        outage.stopped_at_order = load.count()
        stopped = outage.stopped = time.monotonic()
        cluster.stop(outage.victim)
        victim = node_name(outage.victim)
        deadline = stopped + LEADER_BOUND_SECONDS
        while time.monotonic() < deadline:
            leaders = cluster.leaders()
            if leaders and victim not in leaders.values():
                outage.leader_change_seconds = time.monotonic() - stopped
                break
            time.sleep(0.2)
        outage.during = cluster.leaders()
        more = (outage.stopped_at_order / ORDERS) + WHILE_DOWN_SHARE
        wait_for_share(load, more, max(0.0, stopped + DOWN_AT_MOST_SECONDS - time.monotonic()))
        outage.started_at_order = load.count()
        # Down until it is asked to start: from then on, its coming back ends any stall.
        outage.restarted = time.monotonic()
        cluster.start(outage.victim)
        outage.down_seconds = outage.restarted - stopped
        # Its members catch up with their leaders; then the leaders are spread over the three again.
        restarted = time.monotonic()
        while time.monotonic() < restarted + LEADER_BOUND_SECONDS:
            if all(victim in q["online"] for q in cluster.queues()):
                outage.members_online_seconds = time.monotonic() - restarted
                break
            time.sleep(0.5)
        outage.back = cluster.leaders()
        cluster.rebalance()
        outage.after = cluster.leaders()
    except Exception as exc:  # a finding for the checks, not a silent thread death
        outage.unexpected.append(f"{type(exc).__name__}: {exc}")


def leader_checks(outage: Outage, cluster: Cluster) -> list[Check]:
    victim = node_name(outage.victim)
    before, during, after = per_node(outage.before), per_node(outage.during), per_node(outage.after)
    members = {q["name"]: len(q["members"]) for q in cluster.queues()}
    return [
        Check(
            "the stopped node led the most quorum queues",
            bool(outage.before) and before[f"c{outage.victim}"] == max(before.values()),
            f"{victim}: {before}",
        ),
        Check(
            "every quorum queue has a member on all three nodes",
            bool(members) and set(members.values()) == {3},
            f"{len(members)} queues, members {dict(Counter(members.values()))}",
        ),
        Check(
            "leaders moved off the stopped node",
            outage.leader_change_seconds is not None and during[f"c{outage.victim}"] == 0,
            f"in {outage.leader_change_seconds or 0:.1f} s: {during}",
        ),
        Check(
            "its members back online, leaders rebalanced onto it",
            outage.members_online_seconds is not None and after[f"c{outage.victim}"] > 0,
            f"online in {outage.members_online_seconds or 0:.1f} s; after rebalance {after}",
        ),
        Check("the outage went as planned", not outage.unexpected, "; ".join(outage.unexpected) or "yes"),
    ]


def table(
    join_seconds: str,
    outage: Outage,
    orders: list[dict[str, Any]],
    load: Load,
    retries: int,
    checks: list[Check],
) -> str:
    outcomes = Counter(o["status"] for o in orders)
    rows = [("before the stop", outage.before), ("node down", outage.during), ("node back", outage.back)]
    rows.append(("after rebalance", outage.after))
    lines = [
        "",
        f"RABBITMQ CLUSTER TEST (seed {SEED}): 3 nodes of Debian's rabbitmq-server on one machine",
        "",
        f"join of nodes 2 and 3 to node 1: {join_seconds} s",
        f"orders driven: {len(orders)} ({len(load.accepted)} uploads accepted, {PATIENTS} patients, "
        f"{REPLICAS} replicas per back-end service); HTTP requests retried {retries}",
        f"outcomes: {dict(sorted(outcomes.items()))}",
        f"stopped {node_name(outage.victim)} at order {outage.stopped_at_order}, started it at order "
        f"{outage.started_at_order}, down {outage.down_seconds:.1f} s",
        f"while it was down: {outage.events_while_down} events published, longest pause without one "
        f"{outage.longest_pause_seconds:.1f} s (bound {STALL_BOUND_SECONDS:.0f} s)",
        f"time to leader change (no quorum queue led by the stopped node): "
        f"{'never' if outage.leader_change_seconds is None else f'{outage.leader_change_seconds:.1f} s'}",
        "",
        f"{'quorum queue leaders':<24} {'c1':>4} {'c2':>4} {'c3':>4}",
    ]
    for label, leaders in rows:
        counts = per_node(leaders)
        lines.append(f"{label:<24} {counts['c1']:>4} {counts['c2']:>4} {counts['c3']:>4}")
    lines += ["", f"{'check':<56} result"]
    lines += [f"{c.name:<56} {'PASS' if c.ok else 'FAIL'}  {c.detail}" for c in checks]
    return "\n".join(lines)


@pytest.mark.timeout(1800)
def test_the_saga_holds_while_the_node_leading_most_queues_stops_and_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rabbitmq_url, mongodb_url = os.environ["RABBITMQ_URL"], os.environ["MONGODB_URL"]
    urls = broker_nodes.node_urls(rabbitmq_url)
    assert len(urls) == len(NODES), f"RABBITMQ_URL names {len(urls)} nodes; run `make cluster-test`"
    rng = random.Random(SEED)
    env = {
        **os.environ,
        "RESERVATION_HOLD_SECONDS": str(HOLD_SECONDS),
        "PIN_OVER_CENTS": str(PIN_OVER_CENTS),
        "MAX_DELIVERY_ATTEMPTS": str(MAX_DELIVERY_ATTEMPTS),
    }
    admin_login = ("cluster-admin@example.com", secrets.token_urlsafe(18))
    platform = make_platform(
        Backing(rabbitmq_url, mongodb_url),
        "cluster",
        admin=admin_login,
        env=env,
        replicas={service: REPLICAS for service in BACKENDS},
    )
    cluster = Cluster(urls, platform.namespace)
    outage = Outage()
    store: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    tap: Tap | None = None
    try:
        platform.start(timeout=180)
        # The node to stop: the one leading the most quorum queues (the tap reads from another).
        leaders = per_node(cluster.leaders())
        outage.victim = max(NODES, key=lambda n: leaders[f"c{n}"])
        survivor = cluster.url_of(next(n for n in NODES if n != outage.victim))
        tap = Tap(survivor, platform.namespace)
        writes: list[Write] = []
        gateway = TimedGateway(platform.url, writes)
        tap_thread = threading.Thread(target=tap.run, name="tap", daemon=True)
        tap_thread.start()
        assert tap.ready.wait(30), "the tap did not start"

        admin = gateway.token(*admin_login)
        medication_ids: dict[str, str] = {}
        for name in MEDICATIONS:
            body: dict[str, Any] = {"name": f"{name} {secrets.token_hex(3)}", "strength": "10 mg"}
            body |= {
                "form": "tablet",
                "price": PRICES.get(name, DEFAULT_PRICE),
                "prescription_only": name in PRESCRIPTION_ONLY,
                "schedule": SCHEDULES.get(name),
            }
            answer = gateway.call("POST", "/medications", headers=admin, json=body)
            assert answer.status_code == 201, answer.text
            medication_ids[name] = answer.json()["id"]
        initial_stock: dict[tuple[str, str], int] = {}
        pharmacies: list[str] = []
        for name, latitude, longitude in PHARMACIES:
            body = {"name": f"Apotheke {name}", "address": f"{name}, Berlin"}
            body |= {"latitude": latitude, "longitude": longitude}
            answer = gateway.call("POST", "/pharmacies", headers=admin, json=body)
            assert answer.status_code == 201, answer.text
            pharmacy_id = answer.json()["id"]
            pharmacies.append(pharmacy_id)
            for medication, units in MEDICATIONS.items():
                url = f"/pharmacies/{pharmacy_id}/stock/{medication_ids[medication]}"
                answer = gateway.call("PUT", url, headers=admin, json={"quantity": units})
                assert answer.status_code == 200, answer.text
                initial_stock[(pharmacy_id, medication_ids[medication])] = units
        patients = [new_patient(gateway) for _ in range(PATIENTS)]
        load = Load()
        clients = [TimedGateway(platform.url, writes) for _ in patients]
        planned = plans(medication_ids, rng)
        for patient, plan in zip(patients, planned, strict=True):
            me = gateway.call("GET", "/users/me", headers=patient.headers).json()["id"]
            for step, document_id in zip(
                plan, platform_scans(platform, mongodb_url, [me] * len(plan)), strict=True
            ):
                step["document_id"] = document_id
        drivers = [
            threading.Thread(target=drive, args=(clients[n], patient, plan, load, tap), name=f"patient-{n}")
            for n, (patient, plan) in enumerate(zip(patients, planned, strict=True))
        ]
        outage_thread = threading.Thread(target=take_node_away, args=(cluster, load, outage), name="outage")
        pharmacist = staff_member(gateway, admin, "pharmacist")
        verifier = Verifier()
        checker = threading.Thread(
            target=verify,
            args=(TimedGateway(platform.url, writes), pharmacist, load, verifier),
            name="pharmacist",
        )
        dispenser = staff_member(gateway, admin, "pharmacist")
        me = gateway.call("GET", "/users/me", headers=dispenser).json()["id"]
        for pharmacy_id in pharmacies:
            joined = gateway.call("PUT", f"/pharmacies/{pharmacy_id}/staff/{me}", headers=admin)
            assert joined.status_code == 200, joined.text
        dispensary, rounds = Dispensary(), Rounds()
        staff_clients = [TimedGateway(platform.url, writes) for _ in range(1 + COURIERS)]
        counter = threading.Thread(
            target=dispense, args=(staff_clients[0], dispenser, pharmacies, load, dispensary), daemon=True
        )
        couriers = on_duty_couriers(gateway, admin, PHARMACIES, staff_clients[1:], load, dispensary, rounds)
        for thread in (*drivers, outage_thread, checker, counter, *couriers):
            thread.start()
        for thread in drivers:
            thread.join(timeout=1200)
        outage_thread.join(timeout=600)
        for thread in (checker, counter, *couriers):
            thread.join(timeout=300)
        assert not outage_thread.is_alive(), "the outage did not finish"
        assert not any(t.is_alive() for t in (checker, counter, *couriers)), "the staff did not finish"
        assert not verifier.unexpected, verifier.unexpected[:5]
        assert not dispensary.unexpected, dispensary.unexpected[:5]
        assert not rounds.unexpected, rounds.unexpected[:5]
        assert not any(t.is_alive() for t in drivers), "the load did not finish"
        assert not load.unexpected, load.unexpected[:5]

        orders, took = wait_until_terminal(gateway, admin, TERMINAL_WITHIN_SECONDS)
        partitions = range(RuntimeSettings().event_partitions)
        consumed = [topology.partition_queue(platform.namespace, s, k) for s in BACKENDS for k in partitions]
        consumed += [
            topology.timer_queue(platform.namespace, "inventory_service"),
            topology.journal_queue(platform.namespace),
            tap.queue,
        ]
        depths = wait_until_quiet(survivor, consumed, HOLD_SECONDS + 120)
        assert not any(depths.values()), f"queues did not drain: {depths}"
        orders = all_orders(gateway, admin)
        names = {i: name for name, i in medication_ids.items()}
        checks = leader_checks(outage, cluster) + stall_checks(outage, tap, writes)
        for check in check_invariants(
            store, platform, orders, tap, load, initial_stock, names, [], survivor, took
        ):
            if check.name.startswith("malformed"):
                # None were sent here: the dead-letter queues must be empty.
                check = Check("nothing dead-lettered", check.detail.startswith("0 in"), check.detail)
            checks.append(check)
        checks.append(unverified_reservations(tap, {medication_ids[n] for n in PRESCRIPTION_ONLY}, verifier))
        delivery_checks, _ = last_mile(
            store, platform, orders, tap, {medication_ids[n] for n in SCHEDULES}, rounds
        )
        checks += delivery_checks
        join_file = Path(os.environ.get("PHARMACY_STATE_DIR", ROOT / ".run")) / "cluster" / "join-seconds"
        join_seconds = (
            join_file.read_text().strip() if join_file.exists() else "(not measured: joined already)"
        )
        retries = sum(c.retries for c in (*clients, *staff_clients))
        report = table(join_seconds, outage, orders, load, retries, checks)
        (ROOT / ".run").mkdir(exist_ok=True)
        (ROOT / ".run" / "cluster-report.txt").write_text(report + "\n")
        with capsys.disabled():
            print(report, flush=True)
        assert all(c.ok for c in checks), "\n".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
    finally:
        if tap is not None:
            tap.stopping.set()
        platform.stop()
        # A node this test stopped is started again, whatever failed: the script stops the cluster.
        for n in list(cluster.down):
            with contextlib.suppress(Exception):
                cluster.start(n)
        with contextlib.suppress(Exception):
            asyncio.run(delete_namespace(rabbitmq_url, platform.namespace))
            if tap is not None:
                queue_delete(cluster.url_of(cluster.up()), tap.queue)
        with contextlib.suppress(Exception):
            for service in DATABASES:
                store.drop_database(platform.database(service))
        store.close()
