"""Orders in order_service's own database."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from order_service.domain import Order
from service_runtime.service import Service
from service_runtime.store import Repository


def orders(service: Service) -> Repository[Order]:
    # What the patient takes and where they live; the history's reasons name medications too.
    sealed = ("lines", "delivery_location", "priced_lines", "shortages", "history")
    return service.repository("orders", Order, sealed=sealed)


async def ensure_indexes(repo: Repository[Order]) -> None:
    # A prescription's refills are orders of it too: no longer one order per prescription. Redelivery
    # is kept a no-op by `_id`, minted from the request. A store from before keeps the unique index
    # under the same name: drop it first, or the new one cannot be made.
    old = (await repo.collection.index_information()).get("prescription_id_1")
    if old is not None and old.get("unique"):
        await repo.collection.drop_index("prescription_id_1")
    await repo.collection.create_index([("prescription_id", ASCENDING)])
    # One per list a client asks for, newest first (the store reads a page from the index).
    await repo.collection.create_index([("created_at", DESCENDING)])
    await repo.collection.create_index([("patient_id", ASCENDING), ("created_at", DESCENDING)])
    await repo.collection.create_index([("status", ASCENDING), ("created_at", DESCENDING)])


async def list_orders(
    repo: Repository[Order], *, owner_id: str | None, status: str | None, limit: int, offset: int
) -> list[Order]:
    query = {} if owner_id is None else {"patient_id": owner_id}
    if status is not None:
        query["status"] = status
    return await repo.find(
        query, sort=[("created_at", DESCENDING), ("_id", ASCENDING)], skip=offset, limit=limit
    )
