"""The relay that moves events from aggregates' outboxes onto the broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from service_runtime.crypto import FieldCipher
from service_runtime.locks import KeyedLock
from service_runtime.messaging import EventBus
from service_runtime.store import Written, outbox_place

log = logging.getLogger(__name__)


class OutboxRelay:
    """Publishes each pending event with publisher confirms, then removes it from its document.

    A crash between the two publishes the event again later; consumers are idempotent, so that is
    harmless. Handlers flush the document they just wrote. A sweep finds what is left: at start (what
    a crash left), soon after a flush failed (the broker was away), and otherwise only every
    `sweep_seconds`. Sweeping is a scan of every collection, linear in its size on FerretDB/SQLite: it
    must not run every second.

    Clearing an outbox writes the aggregate's document, so the relay never sweeps on its own timer:
    it asks for a sweep (`ask_for_sweep`), which is queued behind the service's events and carried
    out by the one replica that consumes them, never beside a handler writing the same document.
    """

    def __init__(
        self,
        bus: EventBus,
        ask_for_sweep: Callable[[timedelta], Awaitable[None]],
        cipher: FieldCipher,
        *,
        sweep_seconds: float,
        retry_seconds: float,
        locks: KeyedLock | None = None,
    ) -> None:
        self.bus = bus
        self.cipher = cipher
        self.ask_for_sweep = ask_for_sweep
        self.sweep_seconds = sweep_seconds
        self.retry_seconds = retry_seconds
        self.collections: list[AsyncCollection[dict[str, Any]]] = []
        # The service's own locks per document: clearing an outbox never interleaves with a change of
        # the same document in this process, even on a store whose updates are not atomic.
        self._locks = locks or KeyedLock()
        self._flush_failed = asyncio.Event()
        # Events seen waiting and not published yet, per document, with when they were seen (monotonic):
        # the backlog gauge, kept by every flush and sweep, so no count query scans the collections.
        self._waiting: dict[tuple[str, Any], tuple[int, float]] = {}

    def backlog(self) -> int:
        """Events this relay saw waiting in outboxes and has not seen published since."""
        return sum(count for count, _ in self._waiting.values())

    def watch(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        if collection not in self.collections:
            self.collections.append(collection)

    async def ensure_indexes(self) -> None:
        """An index on `outbox_since`: only documents with events waiting have it, and a sweep reads those."""
        for collection in self.collections:
            await collection.create_index([("outbox_since", ASCENDING)])

    async def flush(
        self, collection: AsyncCollection[dict[str, Any]], doc_id: str, written: Written | None = None
    ) -> int:
        """Publish and clear one document's pending events; return how many were published.

        `written`: what the write just made put in the outbox. When that was all the outbox held, it
        is published without reading the document, and cleared with one update conditional on the
        version that write gave it; a change since then clears the entries one by one, as a read does.
        """
        async with self._locks.hold(f"{collection.name}/{doc_id}"):
            # Waiting since, with nothing left to publish: a crash came between clearing the entries
            # and this mark, which the sweep would otherwise find again every time.
            stale = False
            if written is not None and written.alone:
                pending: dict[str, Any] = written.entries
            else:
                doc = await collection.find_one({"_id": doc_id}, {"outbox": 1, "outbox_since": 1}) or {}
                pending = doc.get("outbox") or {}
                stale = not pending and "outbox_since" in doc
                written = None
            published: list[str] = []
            try:
                for event_id, entry in pending.items():
                    at = outbox_place(collection.name, doc_id, event_id)
                    await self.bus.publish(self.cipher.open_payload(entry, at=at))
                    published.append(event_id)
            except Exception:
                self._flush_failed.set()
                raise
            finally:
                left = len(pending) - len(published)
                if left:
                    self._waiting[(collection.name, doc_id)] = (left, time.monotonic())
                else:
                    self._waiting.pop((collection.name, doc_id), None)
                if published and not (
                    written and not left and await self._clear(collection, doc_id, written)
                ):
                    await collection.update_one(
                        {"_id": doc_id}, {"$unset": {f"outbox.{event_id}": "" for event_id in published}}
                    )
                    stale = True
            if stale:
                await collection.update_one({"_id": doc_id, "outbox": {}}, {"$unset": {"outbox_since": ""}})
            return len(published)

    @staticmethod
    async def _clear(collection: AsyncCollection[dict[str, Any]], doc_id: str, written: Written) -> bool:
        """Empty an outbox that holds just what `written` put there, if the document is as it left it."""
        fields = {f"outbox.{event_id}": "" for event_id in written.entries}
        result = await collection.update_one(
            {"_id": doc_id, "version": written.version}, {"$unset": {**fields, "outbox_since": ""}}
        )
        return result.matched_count == 1

    async def sweep(self, older_than: timedelta) -> int:
        """Flush every document whose events have waited longer than `older_than`."""
        cutoff = datetime.now(UTC) - older_than
        seen_before = time.monotonic() - older_than.total_seconds()
        total = 0
        for collection in self.collections:
            # `$exists` changes nothing on MongoDB; our FerretDB patch serves it from the index.
            waiting = {"outbox_since": {"$exists": True, "$lt": cutoff}}
            async for doc in collection.find(waiting, {"_id": 1}):
                total += await self.flush(collection, doc["_id"])
        # Waiting since before the cutoff, yet not found: published meanwhile (by another replica too).
        self._waiting = {key: seen for key, seen in self._waiting.items() if seen[1] >= seen_before}
        return total

    async def run(self) -> None:
        # Leave the fast path its moment: only events older than this are the sweeper's.
        grace = timedelta(seconds=self.retry_seconds)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_failed.wait(), self.sweep_seconds)
            await asyncio.sleep(self.retry_seconds)
            self._flush_failed.clear()
            try:
                await self.ask_for_sweep(grace)
            except Exception as exc:
                self._flush_failed.set()
                log.warning("could not ask for an outbox sweep, will retry: %s: %s", type(exc).__name__, exc)
