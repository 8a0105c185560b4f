"""Time the store's hot queries as collections grow: p50/p99 per operation at each size.

    python benchmarks/store.py --sizes 1000 10000 100000

Works on the store named by MONGODB_URL (FerretDB or MongoDB), in a database of its own that is
dropped at the end. Each collection gets the indexes its service creates at start (the services' own
ensure_indexes), then is bulk-loaded to each size in turn; every operation is the query the service
or gateway sends, on a random key. An operation stops after --reps runs or --budget seconds, whichever
comes first (at least 5 runs), so a query that scans stays affordable at 100k: `n` says how many ran.
A benchmark, not a test: it asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import random
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from inventory_service import store as inventory_store
from inventory_service.domain import Medication, Pharmacy, Reservation
from order_service import store as order_store
from order_service.domain import Order
from payment_service import store as payment_store
from payment_service.domain import Payment, PaymentMethod
from prescription_service import store as prescription_store
from prescription_service.domain import Prescription
from service_runtime.crypto import FieldCipher
from service_runtime.store import Repository
from user_service.audit import AuditLog
from user_service.store import UserStore
from user_service.token_store import TokenStore

Document = dict[str, Any]
BATCH = 1000
ORDERS_PER_PATIENT = 10  # so a patient's list has ten rows at every size
STATUSES = ("CONFIRMED", "DELIVERED", "CANCELLED", "PENDING")
# Sealed fields are base64 text of about this size in the real documents.
SEALED = base64.b64encode(os.urandom(450)).decode()
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def patient(i: int) -> str:
    return f"patient-{i // ORDERS_PER_PATIENT}"


def documents(collection: str, start: int, stop: int) -> list[Document]:
    """Documents shaped like the service's, keyed so that queries can pick one at random."""
    docs: list[Document] = []
    for i in range(start, stop):
        at = EPOCH + timedelta(seconds=i)
        common: Document = {"_id": f"{collection}-{i}", "version": 1, "processed_event_ids": []}
        if collection == "orders":
            doc = {"patient_id": patient(i), "prescription_id": f"prescriptions-{i}",
                   "status": STATUSES[i % 4], "created_at": at, "lines": SEALED}  # fmt: skip
        elif collection == "prescriptions":
            doc = {"patient_id": patient(i), "order_id": f"orders-{i}", "withdrawn_at": None, "listed": True,
                   "uploaded_at": at, "lines": SEALED}  # fmt: skip
        elif collection == "payments":
            doc = {"patient_id": patient(i), "order_id": f"orders-{i}", "status": "CAPTURED",
                   "hidden_at": None, "created_at": at}  # fmt: skip
        elif collection == "payment_methods":
            doc = {"owner_id": patient(i), "last4": "4242", "token": secrets.token_hex(8)}
        elif collection == "medications":
            doc = {"catalogue_key": f"med-{i:07d}", "name": f"Medication {i}", "discontinued": i % 10 == 0}
        elif collection == "users":
            doc = {"email_index": f"email-{i}", "role": "patient", "created_at": at, "email": SEALED}
            common = {"_id": f"users-{i}"}
        elif collection == "audit_log":
            doc = {"at": at, "actor_id": patient(i), "action": "orders.list", "subject_id": None}
            common = {"_id": f"audit_log-{i}"}
        elif collection == "refresh_tokens":
            doc = {"family_id": f"family-{i}", "user_id": f"users-{i}", "used_at": None, "revoked_at": None,
                   "expires_at": EPOCH + timedelta(days=3650), "access_jti": f"jti-{i}",
                   "access_expires_at": at}  # fmt: skip
            common = {"_id": f"refresh_tokens-{i}"}
        elif collection == "revoked_access_tokens":
            doc = {"expires_at": at}
            common = {"_id": f"revoked_access_tokens-{i}"}
        else:  # sign_in_failures
            doc = {"count": 1, "until": at}
            common = {"_id": f"sign_in_failures-{i}"}
        docs.append(common | doc)
    return docs


COLLECTIONS = (
    "orders", "prescriptions", "payments", "payment_methods", "medications",
    "users", "audit_log", "refresh_tokens", "revoked_access_tokens", "sign_in_failures",
)  # fmt: skip


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    """The indexes each service creates at start, made by the services' own code."""
    cipher = FieldCipher({"bench": os.urandom(32)}, "bench")
    await order_store.ensure_indexes(Repository(db["orders"], Order, cipher))
    await prescription_store.ensure_indexes(Repository(db["prescriptions"], Prescription, cipher))
    await payment_store.ensure_indexes(
        payment_store.Stores(
            methods=Repository(db["payment_methods"], PaymentMethod, cipher),
            payments=Repository(db["payments"], Payment, cipher),
        )
    )
    await inventory_store.ensure_indexes(
        inventory_store.Stores(
            pharmacies=Repository(db["pharmacies"], Pharmacy, cipher),
            medications=Repository(db["medications"], Medication, cipher),
            reservations=Repository(db["reservations"], Reservation, cipher),
        )
    )
    await UserStore(db, cipher=cipher, email_index_key=os.urandom(32)).ensure_indexes()
    await TokenStore(db).ensure_indexes()
    await AuditLog(db).ensure_indexes()
    for name in ("orders", "prescriptions", "payments"):  # the outbox relay's, in every service
        await db[name].create_index([("outbox_since", 1)])


def operations(
    db: AsyncDatabase[Document], size: int, inserted: Iterator[int]
) -> dict[str, Callable[[], Awaitable[float]]]:
    """Each operation as the service sends it, on a random key; returns its time in ms.
    Inserted documents take numbers from `inserted`, past any size loaded."""

    def key(prefix: str) -> str:
        return f"{prefix}-{random.randrange(size)}"

    def person() -> str:
        return patient(random.randrange(size))

    async def timed(call: Awaitable[Any]) -> float:
        start = time.perf_counter()
        await call
        return (time.perf_counter() - start) * 1000

    async def drain(cursor: Any) -> None:
        await cursor.to_list()

    async def conditional_save() -> float:
        order_id = key("orders")
        doc = await db.orders.find_one({"_id": order_id}, {"version": 1})
        assert doc is not None
        update = {"$set": {"status": "DELIVERED", "version": doc["version"] + 1}}
        return await timed(db.orders.update_one({"_id": order_id, "version": doc["version"]}, update))

    newest_first = [("created_at", -1), ("_id", 1)]
    return {
        "order by id": lambda: timed(db.orders.find_one({"_id": key("orders")})),
        "order conditional save {_id,version}": conditional_save,
        "order insert": lambda: timed(
            db.orders.insert_one(documents("orders", n := next(inserted), n + 1)[0])
        ),
        "a patient's orders, newest 20": lambda: timed(
            drain(db.orders.find({"patient_id": person()}, sort=newest_first, limit=20))
        ),
        "a patient's orders of a status": lambda: timed(
            drain(
                db.orders.find({"patient_id": person(), "status": "CONFIRMED"}, sort=newest_first, limit=20)
            )
        ),
        "all orders of a status, newest 20 (staff)": lambda: timed(
            drain(db.orders.find({"status": "PENDING"}, sort=newest_first, limit=20))
        ),
        "all orders of a status, page 46 (staff)": lambda: timed(
            drain(db.orders.find({"status": "PENDING"}, sort=newest_first, skip=900, limit=20))
        ),
        "all orders, newest 20 (admin)": lambda: timed(
            drain(db.orders.find({}, sort=newest_first, limit=20))
        ),
        "all orders, page 46 (admin)": lambda: timed(
            drain(db.orders.find({}, sort=newest_first, skip=900, limit=20))
        ),
        "users page (admin)": lambda: timed(
            drain(db.users.find({}, sort=[("created_at", 1), ("_id", 1)], skip=20, limit=20))
        ),
        "a patient's prescriptions": lambda: timed(
            drain(
                db.prescriptions.find(
                    {"listed": True, "patient_id": person()},
                    sort=[("uploaded_at", -1), ("_id", 1)],
                    limit=20,
                )
            )
        ),
        "a patient's payments": lambda: timed(
            drain(
                db.payments.find(
                    {"status": {"$ne": "VOIDED"}, "hidden_at": None, "patient_id": person()},
                    sort=newest_first,
                    limit=20,
                )
            )
        ),
        "a patient's payment methods": lambda: timed(
            drain(db.payment_methods.find({"owner_id": person()}, sort=[("_id", 1)]))
        ),
        "catalogue page (medications, 20)": lambda: timed(
            drain(
                db.medications.find(
                    {"discontinued": False}, sort=[("catalogue_key", 1), ("_id", 1)], skip=20, limit=20
                )
            )
        ),
        "outbox sweep of orders (none waiting)": lambda: timed(
            drain(db.orders.find({"outbox_since": {"$exists": True, "$lt": datetime.now(UTC)}}, {"_id": 1}))
        ),
        "gateway: user by id": lambda: timed(db.users.find_one({"_id": key("users")})),
        "gateway: user by email index (sign-in)": lambda: timed(
            db.users.find_one({"email_index": key("email")})
        ),
        "gateway: access token revoked?": lambda: timed(
            db.revoked_access_tokens.find_one({"_id": key("jti-unknown")})
        ),
        "gateway: sign-in throttle": lambda: timed(
            db.sign_in_failures.find_one({"_id": key("sign_in_failures")})
        ),
        "gateway: refresh token claim": lambda: timed(
            db.refresh_tokens.find_one_and_update(
                {
                    "_id": key("refresh_tokens"),
                    "used_at": None,
                    "revoked_at": None,
                    "expires_at": {"$gt": EPOCH},
                },
                {"$set": {"used_at": None}},
            )
        ),
        "gateway: audit append": lambda: timed(
            db.audit_log.insert_one(documents("audit_log", n := next(inserted), n + 1)[0])
        ),
        "audit log, newest 20 (admin)": lambda: timed(
            drain(db.audit_log.find({}, sort=[("at", -1), ("_id", -1)], limit=20))
        ),
        "gateway: audit of an actor, newest 20": lambda: timed(
            drain(db.audit_log.find({"actor_id": person()}, sort=[("at", -1), ("_id", -1)], limit=20))
        ),
    }


async def load(db: AsyncDatabase[Document], start: int, stop: int) -> float:
    began = time.perf_counter()
    for name in COLLECTIONS:
        for first in range(start, stop, BATCH):
            await db[name].insert_many(documents(name, first, min(first + BATCH, stop)), ordered=False)
    return time.perf_counter() - began


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(url: str, sizes: list[int], reps: int, budget: float) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(url, tz_aware=True)
    name = f"bench_store_{secrets.token_hex(4)}"
    db = client[name]
    try:
        info = await client.admin.command("buildInfo")
        store = (
            f"FerretDB {info['ferretdbVersion']}"
            if "ferretdbVersion" in info
            else f"MongoDB {info['version']}"
        )
        print(f"store: {store} at {url} (database {name})")
        await ensure_indexes(db)
        loaded, inserted = 0, itertools.count(10**9)
        results: dict[str, dict[int, tuple[float, float, int]]] = {}
        for size in sorted(sizes):
            seconds = await load(db, loaded, size)
            print(f"loaded {len(COLLECTIONS)} collections to {size} documents each in {seconds:.1f} s")
            loaded = size
            for op, call in operations(db, size, inserted).items():
                samples: list[float] = []
                deadline = time.perf_counter() + budget
                while len(samples) < reps and (len(samples) < 5 or time.perf_counter() < deadline):
                    samples.append(await call())
                results.setdefault(op, {})[size] = (
                    statistics.median(samples),
                    percentile(samples, 0.99),
                    len(samples),
                )
        header = "".join(f"{f'{s:,} docs p50 / p99 (n)':>28}" for s in sorted(sizes))
        print(f"\n{'operation (ms)':<42}{header}")
        for op, by_size in results.items():
            cells = "".join(f"{f'{p50:.2f} / {p99:.2f} ({n})':>28}" for p50, p99, n in by_size.values())
            print(f"{op:<42}{cells}")
    finally:
        await client.drop_database(name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--reps", type=int, default=200, help="runs of each operation at most")
    parser.add_argument(
        "--budget", type=float, default=2.0, help="seconds per operation and size, after 5 runs"
    )
    args = parser.parse_args()
    url = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
    asyncio.run(run(url, args.sizes, args.reps, args.budget))


if __name__ == "__main__":
    main()
