"""Rebuild by replay, on the real broker and store: after a couple of hundred orders, some carried to the
door, order_service and prescription_service lose their databases and `pharmacy-ops rebuild` brings back
every document; the services restored from backups instead are left as they were."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import Backing, rpc_client, started_platform, stored_scans
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from contracts import topology
from contracts.commands import (
    AddPaymentMethod,
    AnswerPrescription,
    ApprovePrescription,
    CancelOrder,
    CompleteDelivery,
    CreateMedication,
    CreatePharmacy,
    DispenseOrder,
    FailDelivery,
    GetDelivery,
    GetDeliveryPin,
    GetOrder,
    GetPrescription,
    HoldPrescription,
    PickUpDelivery,
    RefillPrescription,
    RejectPrescription,
    SetStock,
    UpdateCourier,
    UploadPrescription,
    WithdrawPrescription,
)
from contracts.events import Location, PrescribedLine
from operations.cli import app
from service_runtime.crypto import FieldCipher, is_sealed, place
from service_runtime.errors import CommandRefused
from service_runtime.launcher import Platform
from service_runtime.messaging import RpcClient
from service_runtime.settings import RuntimeSettings

pytestmark = pytest.mark.integration

ORDERS = 200
PATIENTS = 10
# Writes queue behind the events of their service (one writer per aggregate): under this load a patient
# waits longer than the gateway's 10 s. A client retrying after a 503 would do; the test waits instead.
WRITE_TIMEOUT = 60.0
# Where the saga leaves an order; a paid one (CONFIRMED) may go on to the door.
SETTLED = ("CONFIRMED", "REJECTED", "CANCELLED")
ENDED = (*SETTLED, "DELIVERED", "RETURNED")
HERE = Location(latitude=48.8566, longitude=2.3522)
REBUILT = ("order_service", "prescription_service")
# Restored from backups, not the journal (README, Operations): a rebuild must leave them as they were.
RESTORED = ("inventory_service", "payment_service", "delivery_service")
# Couriers near the pharmacy, fewer than the patients: a ready order waits for one now and then.
COURIERS = 4
# Over delivery_service's PIN value (10,000 cents) even alone: handed over on the patient's PIN.
COSTLY_CENTS = 11_000
# prescription_service's collections of scanned documents: restored from a backup, not the journal.
SCANS = ("documents", "document_chunks")
# The repository's bookkeeping: how many writes a document took, the events it applied, its outbox.
# A rebuild applies the same events in fewer writes, and publishes nothing; the state is what counts.
BOOKKEEPING = ("version", "processed_event_ids", "outbox", "outbox_since")

Document = dict[str, Any]
# The platform's keys (conftest puts them in the environment): sealed values are compared opened.
CIPHER = FieldCipher.from_settings(RuntimeSettings())


@pytest.fixture(scope="module")
def platform(backing: Backing) -> Iterator[Platform]:
    with started_platform(backing, "rebuild") as running:
        yield running


@pytest_asyncio.fixture
async def store(backing: Backing) -> AsyncIterator[AsyncMongoClient[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(backing.mongodb_url, tz_aware=True)
    yield client
    await client.close()


@dataclass(frozen=True)
class LastMile:
    """What becomes of a paid order: cancelled by its patient before it is dispensed, or dispensed and
    carried, failing at the door `fails` times (two: it goes back), a wrong PIN typed first perhaps."""

    cancel: bool = False
    fails: int = 0
    wrong_pin: bool = False


def last_mile_of(n: int) -> LastMile | None:
    """Kinds 7 to 9 go on once paid, a different way each decade; the costly ones (PIN) are 7 and 8 of
    odd decades."""
    odd = n // 10 % 2 == 1
    return {
        7: LastMile(wrong_pin=odd),
        8: LastMile(fails=1),
        9: LastMile(cancel=True) if odd else LastMile(fails=2),
    }.get(n % 10)


async def drive(rpc: RpcClient, count: int, scan_of: Callable[[str], Awaitable[str]]) -> list[str]:
    """`count` orders from a few patients at once, with every ending the saga has: confirmed, declined
    cards, stock running out, cancels by the patient and withdrawn prescriptions; and prescription-only
    ones a pharmacist approves, rejects, or asks about first, and refills. Some paid ones go on: a
    cancel before dispensing, or dispensed, carried by a courier and handed over on the recipient's
    name or the patient's PIN, after a failed attempt, or returned after two. Returns order ids."""
    pharmacy = await rpc.ask(CreatePharmacy(name="Centrale", address="1 Rue", location=HERE), dict)
    plenty, scarce, costly = [
        await rpc.ask(
            CreateMedication(
                name=name, strength="5 mg", form="tablet", price_cents=price, prescription_only=False
            ),
            dict,
        )
        for name, price in (("Plentifol", 450), ("Scarcitol", 450), ("Costol", COSTLY_CENTS))
    ]
    verifol = await rpc.ask(
        CreateMedication(
            name="Verifol", strength="5 mg", form="tablet", price_cents=450, prescription_only=True
        ),
        dict,
    )
    for medication, quantity in ((plenty, 100_000), (scarce, 12), (verifol, 100_000), (costly, 100_000)):
        await rpc.ask(
            SetStock(
                pharmacy_id=pharmacy["id"],
                medication_id=medication["id"],
                quantity=quantity,
                actor_is_admin=True,
            ),
            dict,
        )
    for c in range(COURIERS):  # on duty, a kilometre apart north of the pharmacy
        near = Location(latitude=HERE.latitude + (c + 1) / 111, longitude=HERE.longitude)
        await rpc.ask(UpdateCourier(courier_id=f"courier-{c}", available=True, location=near), dict)
    year = datetime.now(UTC).year + 3
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    order_ids: list[str] = []

    async def patient(p: int) -> None:
        rng = random.Random(p)  # a reproducible mix per patient
        cards = {
            number: (
                await rpc.ask(
                    AddPaymentMethod(
                        owner_id=f"patient-{p}", card_number=number, exp_month=12, exp_year=year, cvc="737"
                    ),
                    dict,
                )
            )["id"]
            for number in ("4242424242424242", "4000000000000002")
        }
        while not queue.empty():
            n = queue.get_nowait()
            kind = n % 10
            medication = {1: scarce, 4: verifol, 5: verifol, 6: verifol}.get(kind, plenty)
            going_on = last_mile_of(n)
            if kind in (7, 8) and n // 10 % 2 == 1:
                medication = costly
            line = PrescribedLine(
                medication_id=medication["id"],
                quantity=rng.randint(1, 3),
                prescription_only=medication is verifol,
            )
            upload = UploadPrescription(
                patient_id=f"patient-{p}",
                lines=(line,),
                delivery_location=HERE,
                payment_method_id=cards["4000000000000002" if kind == 0 else "4242424242424242"],
                document_id=await scan_of(f"patient-{p}") if medication is verifol else None,
                repeats_allowed=1 if kind == 4 else 0,
            )
            prescription = await rpc.ask(upload, dict, timeout=WRITE_TIMEOUT)
            order_ids.append(prescription["order_id"])
            if kind in (4, 5, 6):
                await verify(rpc, prescription["id"], kind)
            if kind == 2:
                await cancel(rpc, prescription["order_id"])
            elif kind == 3:
                withdraw = WithdrawPrescription(owner_id=None, prescription_id=prescription["id"])
                await rpc.ask(withdraw, object, timeout=WRITE_TIMEOUT)
            # One order at a time per patient, as people do: the queues stay short, so writes stay quick.
            await ended(rpc, prescription["order_id"], SETTLED)
            if going_on is not None and await status(rpc, prescription["order_id"]) == "CONFIRMED":
                await carry(rpc, prescription["order_id"], f"patient-{p}", going_on, n)
            if kind == 4:
                order_ids.append(await refill(rpc, prescription, cards["4242424242424242"], n))

    await asyncio.gather(*(patient(p) for p in range(PATIENTS)))
    return order_ids


PHARMACIST = {"pharmacist_id": "pharmacist-1", "pharmacist_role": "pharmacist"}


async def verify(rpc: RpcClient, prescription_id: str, kind: int) -> None:
    """A pharmacist approves (kind 4), rejects (5), or asks first and approves once answered (6)."""
    if kind == 5:
        reject = RejectPrescription(
            prescription_id=prescription_id, reason="ILLEGIBLE", note="smudged", **PHARMACIST
        )
        await rpc.ask(reject, dict, timeout=WRITE_TIMEOUT)
        return
    if kind == 6:
        hold = HoldPrescription(prescription_id=prescription_id, question="Since when?", **PHARMACIST)
        await rpc.ask(hold, dict, timeout=WRITE_TIMEOUT)
        seen = await rpc.ask(GetPrescription(owner_id=None, prescription_id=prescription_id), dict)
        answer = AnswerPrescription(
            owner_id=seen["patient_id"], prescription_id=prescription_id, answer="May"
        )
        await rpc.ask(answer, dict, timeout=WRITE_TIMEOUT)
    approve = ApprovePrescription(prescription_id=prescription_id, note="checked", **PHARMACIST)
    await rpc.ask(approve, dict, timeout=WRITE_TIMEOUT)


async def refill(rpc: RpcClient, prescription: Document, card: str, n: int) -> str:
    """Once the first fill is done (or not: a declined first fill is no fill), a refill's order."""
    for _ in range(240):
        seen = await rpc.ask(GetPrescription(owner_id=None, prescription_id=prescription["id"]), dict)
        if seen["status"] == "FILLED":
            break
        await asyncio.sleep(0.25)
    else:
        raise AssertionError(f"prescription {prescription['id']} was never filled")
    asked = RefillPrescription(
        owner_id=prescription["patient_id"],
        prescription_id=prescription["id"],
        delivery_location=HERE,
        payment_method_id=card,
        request_id=f"refill-{n}-{prescription['id']}",
    )
    refilled = await rpc.ask(asked, dict, timeout=WRITE_TIMEOUT)
    await ended(rpc, refilled["order_id"], SETTLED)
    return str(refilled["order_id"])


async def status(rpc: RpcClient, order_id: str) -> str:
    try:
        return str((await rpc.ask(GetOrder(owner_id=None, order_id=order_id), dict))["status"])
    except CommandRefused:
        return "NOT YET OPENED"


async def ended(rpc: RpcClient, order_id: str, among: tuple[str, ...]) -> None:
    """Wait for the order to reach one of `among`, asking as a patient's app would (every few tenths of
    a second)."""
    for _ in range(240):
        if await status(rpc, order_id) in among:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"order {order_id} did not reach {among} within 60 s")


async def carry(rpc: RpcClient, order_id: str, patient_id: str, going_on: LastMile, n: int) -> None:
    """A paid order's last mile: the patient cancels it before dispensing, or the pharmacy dispenses it,
    the courier delivery_service assigns collects it and fails at the door or hands it over with the
    proof it asks for (the PIN the patient reads off their order, or the recipient's name)."""
    if going_on.cancel:
        await rpc.ask(CancelOrder(owner_id=None, order_id=order_id), dict, timeout=WRITE_TIMEOUT)
        await ended(rpc, order_id, ("CANCELLED",))
        return
    dispense = DispenseOrder(
        order_id=order_id, actor_id="pharmacist-1", actor_is_admin=True, request_id=f"dispense-{n}"
    )
    await rpc.ask(dispense, dict, timeout=WRITE_TIMEOUT)
    delivery = await assigned(rpc, order_id)
    courier = delivery["courier_id"]

    async def move(command: PickUpDelivery | FailDelivery | CompleteDelivery) -> None:
        await rpc.ask(command, dict, timeout=WRITE_TIMEOUT)

    await move(PickUpDelivery(delivery_id=order_id, courier_id=courier, request_id=f"pickup-{n}"))
    for visit in range(going_on.fails):
        await move(
            FailDelivery(
                delivery_id=order_id,
                courier_id=courier,
                reason="NO_ONE_HOME",
                note=f"visit {visit + 1}",
                request_id=f"fail-{n}-{visit}",
            )
        )
    if going_on.fails < 2:
        if delivery["proof"] == "PIN":
            pin = (await rpc.ask(GetDeliveryPin(order_id=order_id, patient_id=patient_id), dict))["pin"]
            if going_on.wrong_pin:
                wrong = f"{(int(pin) + 1) % 10_000:04d}"
                with pytest.raises(CommandRefused, match="wrong PIN"):
                    await move(CompleteDelivery(delivery_id=order_id, courier_id=courier, pin=wrong))
            await move(CompleteDelivery(delivery_id=order_id, courier_id=courier, pin=pin))
        else:
            await move(CompleteDelivery(delivery_id=order_id, courier_id=courier, recipient_name="Pat Ient"))
    await ended(rpc, order_id, ("DELIVERED", "RETURNED"))


async def assigned(rpc: RpcClient, order_id: str) -> Document:
    """The order's delivery once a courier has it: opened when order_service hears of the dispensing,
    assigned at once or when a courier comes free."""
    delivery: Document = {}
    for _ in range(240):
        try:
            delivery = await rpc.ask(GetDelivery(delivery_id=order_id), dict)
        except CommandRefused:
            delivery = {"status": "NOT YET OPENED"}
        if delivery["status"] == "ASSIGNED":
            return delivery
        await asyncio.sleep(0.25)
    raise AssertionError(f"no courier was assigned order {order_id} within 60 s (last: {delivery['status']})")


async def cancel(rpc: RpcClient, order_id: str) -> None:
    """The patient cancels as soon as the order exists; a cancel after payment is refused, rightly."""
    for _ in range(100):
        try:
            await rpc.ask(CancelOrder(owner_id=None, order_id=order_id), dict, timeout=WRITE_TIMEOUT)
        except CommandRefused as refused:
            if refused.code != "not_found":
                return  # conflict: paid already
            await asyncio.sleep(0.05)  # the order is opened when order_service hears of the upload
        else:
            return
    raise AssertionError(f"order {order_id} was never opened")


def opened(value: Any, at: str) -> Any:
    """A stored value with what is sealed in it opened: sealed again, the same value differs (a new
    nonce); opened, it must not."""
    if is_sealed(value):
        return CIPHER.open(value, at=at)
    if isinstance(value, dict):
        return {key: opened(inner, f"{at}.{key}") for key, inner in value.items()}
    return value


async def snapshot(client: AsyncMongoClient[Document], database: str) -> dict[str, dict[str, Document]]:
    """Every document of every collection, by id, opened, without the repository's bookkeeping."""
    db = client[database]
    found: dict[str, dict[str, Document]] = {}
    for name in sorted(await db.list_collection_names()):
        docs = [doc async for doc in db[name].find({})]
        found[name] = {
            doc["_id"]: {
                k: opened(v, place(name, doc["_id"], k)) for k, v in doc.items() if k not in BOOKKEEPING
            }
            for doc in docs
        }
    return found


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Where two snapshots differ: a line per document missing, extra, or with a field changed."""
    found = []
    for service in before:
        for collection, documents in before[service].items():
            now = after[service].get(collection, {})
            for doc_id in sorted(documents.keys() | now.keys()):
                was, became = documents.get(doc_id), now.get(doc_id)
                if was is None or became is None:
                    found.append(f"{service}.{collection} {doc_id}: {'extra' if was is None else 'missing'}")
                    continue
                for key in sorted(was.keys() | became.keys()):
                    if was.get(key) != became.get(key):
                        where = f"{service}.{collection} {doc_id} {key}"
                        found.append(f"{where}: {was.get(key)!r} -> {became.get(key)!r}")
    return found


async def converged(
    snapshot_now: Callable[[], Awaitable[dict[str, Any]]], before: dict[str, Any], seconds: float = 30
) -> list[str]:
    """The differences left once the rebuilt databases match `before`, or after `seconds`.

    An empty queue is not the end: a consumer holds up to EVENT_PREFETCH messages of a partition
    that the broker no longer counts as ready."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        changed = differences(before, await snapshot_now())
        if not changed or asyncio.get_running_loop().time() > deadline:
            return changed
        await asyncio.sleep(0.5)


async def queued(rabbitmq_url: str, namespace: str) -> int:
    """Messages waiting in, or being handled from, the partition queues of the two services rebuilt."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        total = 0
        for service in REBUILT:
            for partition in range(RuntimeSettings().event_partitions):
                name = topology.partition_queue(namespace, service, partition)
                queue = await channel.declare_queue(name, passive=True)
                total += queue.declaration_result.message_count or 0
        return total


async def quiet(platform: Platform, client: AsyncMongoClient[Document], backing: Backing) -> int:
    """Wait until nothing moves: no message queued and the journal's count steady. Returns that count."""
    journal = client[platform.database("journal")]["events"]
    last = -1
    for _ in range(240):
        await asyncio.sleep(0.5)
        count = await journal.count_documents({})
        if count == last and await queued(backing.rabbitmq_url, platform.namespace) == 0:
            return count
        last = count
    raise AssertionError("the platform did not settle within 120 s")


async def ops(platform: Platform, backing: Backing, *args: str) -> Any:
    env = {
        "MONGODB_URL": backing.mongodb_url,
        "JOURNAL_DATABASE": platform.database("journal"),
        "RABBITMQ_URL": backing.rabbitmq_url,
        "BROKER_NAMESPACE": platform.namespace,
    }
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env, terminal_width=200)


@pytest.mark.timeout(420)
async def test_a_lost_database_is_rebuilt_by_replaying_the_journal(
    platform: Platform, backing: Backing, store: AsyncMongoClient[Document]
) -> None:
    settings = RuntimeSettings(rabbitmq_url=backing.rabbitmq_url, broker_namespace=platform.namespace)
    started = time.monotonic()
    prescriptions_db = store[platform.database("prescription_service")]

    async def scan_of(patient_id: str) -> str:
        [document_id] = await stored_scans(prescriptions_db, CIPHER, [patient_id])
        return document_id

    async with rpc_client(settings) as rpc:
        order_ids = await drive(rpc, ORDERS, scan_of)

        ended = [await status(rpc, order_id) for order_id in order_ids]
    journalled = await quiet(platform, store, backing)
    print(f"\n{ORDERS} orders ended and {journalled} events journalled in {time.monotonic() - started:.0f} s")
    before = {service: await snapshot(store, platform.database(service)) for service in REBUILT}
    assert len(before["order_service"]["orders"]) == len(order_ids) == ORDERS + ORDERS // 10  # refills
    assert len(before["prescription_service"]["prescriptions"]) == ORDERS
    # Every ending is there to be rebuilt, and patients' own decisions too.
    assert set(ended) == set(ENDED)
    reasons = {
        change.get("reason")
        for order in before["order_service"]["orders"].values()
        for change in order["history"]
    }
    assert "cancelled by the customer" in reasons
    assert "prescription withdrawn by the patient" in reasons
    assert any(p["withdrawn_at"] for p in before["prescription_service"]["prescriptions"].values())
    decisions = {
        step["decision"]
        for p in before["prescription_service"]["prescriptions"].values()
        for step in p["verification"]
    }
    assert decisions == {"approved", "rejected", "held", "answered"}
    assert any(p["refill_order_ids"] for p in before["prescription_service"]["prescriptions"].values())
    # The last mile too, each way, in every service it passes through.
    passed = {
        change["status"]
        for order in before["order_service"]["orders"].values()
        for change in order["history"]
    }
    assert {"READY_FOR_PICKUP", "OUT_FOR_DELIVERY", "DELIVERY_FAILED", "DELIVERED", "RETURNED"} <= passed
    restored = {service: await snapshot(store, platform.database(service)) for service in RESTORED}
    deliveries = restored["delivery_service"]["deliveries"].values()
    assert {(d["status"], d["proof"]) for d in deliveries if d["listed"]} == {
        ("DELIVERED", "NAME"),
        ("DELIVERED", "PIN"),
        ("RETURNED", "NAME"),
    }
    assert any(d["wrong_pins"] for d in deliveries)
    assert len(restored["delivery_service"]["couriers"]) == COURIERS
    payments = {p["status"] for p in restored["payment_service"]["payments"].values()}
    assert {"AUTHORISED", "CAPTURED", "VOIDED", "REFUNDED", "DECLINED"} <= payments
    held = {r["state"] for r in restored["inventory_service"]["reservations"].values()}
    assert {"PAID", "DISPENSED", "RETURNED", "RELEASED"} <= held
    [pharmacy] = restored["inventory_service"]["pharmacies"].values()
    assert all(sum(level[count] for level in pharmacy["stock"].values()) for count in ("sold", "returned"))

    # Scanned documents are no events: the journal cannot bring them back, a backup does (README,
    # Operations). Kept here as a restore would put them back, before the replay.
    backed_up = {name: [doc async for doc in prescriptions_db[name].find({})] for name in SCANS}
    assert all(backed_up.values())
    started = time.monotonic()
    for service in REBUILT:  # disaster: both databases are lost
        platform.stop_service(service)
        await store.drop_database(platform.database(service))
        platform.start_service(service)
    for name, docs in backed_up.items():
        await prescriptions_db[name].insert_many(docs)
    refused = await ops(platform, backing, "rebuild", "inventory_service")
    dry = await ops(platform, backing, "rebuild", "order_service", "--dry-run")
    results = [await ops(platform, backing, "rebuild", service) for service in REBUILT]

    assert refused.exit_code == 1
    assert "inventory_service cannot be rebuilt from the journal" in " ".join(refused.output.split())
    assert dry.exit_code == 0, dry.output
    assert "would deliver" in dry.output
    for result in results:
        assert result.exit_code == 0, result.output
        assert "delivered" in result.output

    async def rebuilt() -> dict[str, Any]:
        return {service: await snapshot(store, platform.database(service)) for service in REBUILT}

    # Rebuilding published nothing: every event it would have caused is in the journal already.
    assert await quiet(platform, store, backing) == journalled
    changed = await converged(lambda: rebuilt(), before)
    assert not changed, f"{len(changed)} differences:\n" + "\n".join(changed[:12])
    print(
        f"both databases rebuilt, equal to what they were, {time.monotonic() - started:.0f} s after the loss"
    )
    # Nothing the rebuild did reached the services it did not rebuild.
    untouched = {service: await snapshot(store, platform.database(service)) for service in RESTORED}
    assert differences(restored, untouched) == []

    # Rebuilding again over the rebuilt state changes nothing; here from the middle of the day, as after
    # restoring a backup taken then.
    created = sorted(order["created_at"] for order in before["order_service"]["orders"].values())
    again = await ops(
        platform, backing, "rebuild", "order_service", "--since", created[ORDERS // 2].isoformat()
    )
    assert again.exit_code == 0, again.output
    assert await quiet(platform, store, backing) == journalled
    assert await converged(lambda: rebuilt(), before) == []
