"""Past orders written straight into the stores, so a run shows how the platform grows with its data.

Each past order is a copy of a real one the platform has just carried out: its order, prescription,
reservation, payment and journal entries, read and written again through the services' own
repositories and the journal's code, so they are sealed the way the services seal them, under new
ids (references between them kept, the catalogue's ids kept). Each copy takes new patients' ids too.
Timestamps stay those of the originals.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from pydantic import SecretStr
from pymongo.asynchronous.collection import AsyncCollection

from contracts.base import Envelope
from inventory_service import store as inventory_store
from operations.journal import Journal, JournalSettings
from order_service import store as order_store
from payment_service import store as payment_store
from payment_service.domain import payment_id_for
from prescription_service import store as prescription_store
from service_runtime.aggregate import Aggregate
from service_runtime.launcher import ARCHIVER, Platform
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings
from service_runtime.store import Document, Repository

BATCH = 500
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class PastOrder:
    """One real order with everything the stores keep of it, opened."""

    order_id: str
    aggregates: list[tuple[Repository[Any], Aggregate]]
    journal: list[Document]


class Stores:
    """The repositories past orders live in, as each service opens them, and the journal."""

    def __init__(self, platform: Platform, mongodb_url: str, field_keys: str) -> None:
        def settings(service: str) -> RuntimeSettings:
            return RuntimeSettings(
                environment="test",
                mongodb_url=mongodb_url,
                mongodb_database=platform.database(service),
                field_encryption_keys=SecretStr(field_keys),
            )

        self.services = [
            Service(name, settings(name))
            for name in ("order_service", "prescription_service", "inventory_service", "payment_service")
        ]
        orders, prescriptions, inventory, payments = self.services
        self.orders = order_store.orders(orders)
        self.prescriptions = prescription_store.prescriptions(prescriptions)
        self.inventory = inventory_store.stores(inventory)
        self.payments = payment_store.stores(payments).payments
        self.journal_client, self.journal = Journal.connect(
            JournalSettings(
                environment="test",
                mongodb_url=mongodb_url,
                journal_database=platform.database(ARCHIVER),
                field_encryption_keys=SecretStr(field_keys),
            )
        )

    async def read(self, order_id: str) -> PastOrder:
        order = await self.orders.get(order_id)
        reservation = await self.inventory.reservations.get(order_id)
        found: list[tuple[Repository[Any], Aggregate | None]] = [
            (self.orders, order),
            (self.prescriptions, next(iter(await self.prescriptions.find({"order_id": order_id})), None)),
            (self.inventory.reservations, reservation),
            (self.payments, next(iter(await self.payments.find({"order_id": order_id})), None)),
        ]
        aggregates = [(repo, aggregate) for repo, aggregate in found if aggregate is not None]
        return PastOrder(order_id, aggregates, await self.journal.find(correlation_id=order_id))

    async def catalogue_ids(self) -> set[str]:
        pharmacies = await self.inventory.pharmacies.find({})
        medications = await self.inventory.medications.find({})
        return {p.id for p in pharmacies} | {m.id for m in medications}

    async def close(self) -> None:
        for service in self.services:
            await service.client.close()
        await self.journal_client.close()


def copy_of(past: PastOrder, keep: set[str], written: dict[str, list[Document]], stores: Stores) -> str:
    """Add to `written` (by collection) the documents of a copy of `past` under new ids; the copy's
    order id."""
    fresh: dict[str, str] = {past.order_id: str(uuid4())}
    # A payment's id follows from its order's (payment_id_for): the copy's follows from the copy's.
    fresh[payment_id_for(past.order_id)] = payment_id_for(fresh[past.order_id])

    def renamed(text: str) -> str:
        return UUID.sub(lambda m: m[0] if m[0] in keep else fresh.setdefault(m[0], str(uuid4())), text)

    for repo, aggregate in past.aggregates:
        copy = repo.model.model_validate_json(renamed(aggregate.model_dump_json()))
        written.setdefault(repo.collection.name, []).append(repo.document(copy))
    for entry in past.journal:
        envelope = Envelope.model_validate_json(renamed(json.dumps(entry["envelope"], default=str)))
        after = entry.get("decided_after")
        document = stores.journal.document(
            envelope,
            routing_key=entry["routing_key"],
            publisher=entry["publisher"],
            arrived=entry["arrived"],
            decided_after=renamed(after) if after else None,
        )
        written.setdefault("journal", []).append(document)
    return fresh[past.order_id]


# Past orders the benchmark then asks the gateway for, one by one, as a check that they are real.
SAMPLED = 20


async def preload(
    platform: Platform, mongodb_url: str, env: Mapping[str, str], order_ids: Sequence[str], count: int
) -> tuple[float, list[str]]:
    """Write `count` copies of the given real orders into the platform's stores: the seconds it took,
    and the ids of the last few copies."""
    stores = Stores(platform, mongodb_url, env["FIELD_ENCRYPTION_KEYS"])
    started = time.perf_counter()
    try:
        keep = await stores.catalogue_ids()
        pasts = [await stores.read(order_id) for order_id in order_ids]
        collections: dict[str, AsyncCollection[Document]] = {
            repo.collection.name: repo.collection for past in pasts for repo, _ in past.aggregates
        }
        collections["journal"] = stores.journal.collection
        written: dict[str, list[Document]] = {}
        sampled: list[str] = []
        for n in range(count):
            sampled = [*sampled[-(SAMPLED - 1) :], copy_of(pasts[n % len(pasts)], keep, written, stores)]
            if (n + 1) % BATCH == 0 or n + 1 == count:
                for name, documents in written.items():
                    await collections[name].insert_many(documents, ordered=False)
                written.clear()
        return time.perf_counter() - started, sampled
    finally:
        await stores.close()
