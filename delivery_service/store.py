"""Deliveries and couriers in delivery_service's own database.

Every list is read from an index: the store (FerretDB, patched) pushes down equality on top-level
indexed fields, and a sort with a limit on an index of (the equal fields..., the sort field).
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING

from contracts.commands import DeliveryStatus
from delivery_service.domain import Courier, Delivery
from service_runtime.service import Service
from service_runtime.store import Repository


@dataclass(frozen=True)
class Stores:
    deliveries: Repository[Delivery]
    couriers: Repository[Courier]


def stores(service: Service) -> Stores:
    return Stores(
        # Where the patient lives and when they are home, who took the order, what the courier noted.
        deliveries=service.repository(
            "deliveries",
            Delivery,
            sealed=("delivery_location", "delivery_window", "recipient_name", "attempts"),
        ),
        couriers=service.repository("couriers", Courier),
    )


async def ensure_indexes(s: Stores) -> None:
    deliveries = s.deliveries.collection
    # Waiting for a courier, the longest waiting first.
    await deliveries.create_index([("status", ASCENDING), ("ready_at", ASCENDING)])
    # Every delivery (tombstones are not listed), newest first; and by status.
    await deliveries.create_index([("listed", ASCENDING), ("created_at", DESCENDING)])
    await deliveries.create_index([("listed", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)])
    # A courier's deliveries, newest first; and by status.
    await deliveries.create_index([("courier_id", ASCENDING), ("created_at", DESCENDING)])
    await deliveries.create_index(
        [("courier_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)]
    )
    couriers = s.couriers.collection
    # Idle couriers (available, nothing in hand), the longest idle first.
    await couriers.create_index([("idle", ASCENDING), ("free_since", ASCENDING)])
    # The couriers claimed for a delivery (dispatch.py).
    await couriers.create_index([("delivery_id", ASCENDING)])


async def list_deliveries(
    s: Stores, *, courier_id: str | None, status: DeliveryStatus | None, limit: int, offset: int
) -> list[Delivery]:
    query: dict[str, object] = {"listed": True} if courier_id is None else {"courier_id": courier_id}
    if status is not None:
        query["status"] = status
    return await s.deliveries.find(
        query, sort=[("created_at", DESCENDING), ("_id", ASCENDING)], skip=offset, limit=limit
    )


async def waiting_deliveries(s: Stores, *, limit: int, offset: int) -> list[Delivery]:
    """Deliveries waiting for a courier, in the order they became ready."""
    return await s.deliveries.find(
        {"status": "WAITING_FOR_COURIER"},
        sort=[("ready_at", ASCENDING), ("_id", ASCENDING)],
        skip=offset,
        limit=limit,
    )


async def idle_couriers(s: Stores) -> list[Courier]:
    """Every courier available with nothing in hand; the distance is the domain's to weigh."""
    return await s.couriers.find({"idle": True}, sort=[("free_since", ASCENDING), ("_id", ASCENDING)])


async def claiming(s: Stores, delivery_id: str) -> list[Courier]:
    """The couriers claimed for this delivery: its courier, or claims a race or a crash left."""
    return await s.couriers.find({"delivery_id": delivery_id})
