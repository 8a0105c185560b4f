"""The relay that moves events from aggregates' outboxes onto the broker."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from service_runtime.locks import KeyedLock
from service_runtime.messaging import EventBus

log = logging.getLogger(__name__)


class OutboxRelay:
    """Publishes each pending event with publisher confirms, then removes it from its document.

    A crash between the two publishes the event again later; consumers are idempotent, so that is
    harmless. Handlers flush the document they just wrote; a sweeper picks up what a crash left behind.
    """

    def __init__(self, bus: EventBus, *, sweep_seconds: float) -> None:
        self.bus = bus
        self.sweep_seconds = sweep_seconds
        self.collections: list[AsyncCollection[dict[str, Any]]] = []
        self._locks = KeyedLock()

    def watch(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        if collection not in self.collections:
            self.collections.append(collection)

    async def flush(self, collection: AsyncCollection[dict[str, Any]], doc_id: str) -> int:
        """Publish and clear one document's pending events; return how many were published."""
        async with self._locks.hold(f"{collection.name}/{doc_id}"):
            doc = await collection.find_one({"_id": doc_id}, {"outbox": 1})
            pending: dict[str, Any] = (doc or {}).get("outbox") or {}
            published: list[str] = []
            try:
                for event_id, envelope in pending.items():
                    await self.bus.publish(envelope)
                    published.append(event_id)
            finally:
                if published:
                    await collection.update_one(
                        {"_id": doc_id}, {"$unset": {f"outbox.{event_id}": "" for event_id in published}}
                    )
            await collection.update_one({"_id": doc_id, "outbox": {}}, {"$unset": {"outbox_since": ""}})
            return len(published)

    async def sweep(self, older_than: timedelta) -> int:
        """Flush every document whose events have waited longer than `older_than`."""
        cutoff = datetime.now(UTC) - older_than
        total = 0
        for collection in self.collections:
            async for doc in collection.find({"outbox_since": {"$lt": cutoff}}, {"_id": 1}):
                total += await self.flush(collection, doc["_id"])
        return total

    async def run(self) -> None:
        grace = timedelta(seconds=self.sweep_seconds)
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                if count := await self.sweep(grace):
                    log.info("outbox sweeper published %d leftover events", count)
            except Exception as exc:
                log.warning("outbox sweep failed, will retry: %s: %s", type(exc).__name__, exc)
