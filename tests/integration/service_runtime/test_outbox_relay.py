"""The outbox relay on the real store: what a write put in the outbox is published and cleared without
reading the document back, a change in between is not lost, and a crash's leftover mark is swept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from conftest import Namespace

from contracts.base import Envelope
from contracts.events import PaymentRefunded
from service_runtime.aggregate import Aggregate
from service_runtime.crypto import FieldCipher
from service_runtime.outbox import OutboxRelay
from service_runtime.settings import RuntimeSettings
from service_runtime.store import Document, Repository, connect

pytestmark = pytest.mark.integration

CIPHER = FieldCipher({"test": bytes(32)}, "test")


class Tab(Aggregate):
    total: int = 0


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, envelope: dict[str, Any]) -> None:
        self.published.append(envelope["event_id"])


def refund(order_id: str) -> Envelope:
    event = PaymentRefunded(payment_id="p", order_id=order_id, amount_cents=1, reason="test")
    return Envelope.wrap(event, correlation_id=order_id)


async def _no_sweep(older_than: timedelta) -> None:
    return None


@pytest_asyncio.fixture
async def tabs(namespace: Namespace) -> AsyncIterator[tuple[Repository[Tab], OutboxRelay, RecordingBus]]:
    settings = namespace.settings(RuntimeSettings)
    client = connect(settings)
    repository = Repository(client[settings.mongodb_database]["tabs"], Tab, CIPHER)
    bus = RecordingBus()
    relay = OutboxRelay(bus, _no_sweep, CIPHER, sweep_seconds=60, retry_seconds=1)  # type: ignore[arg-type]
    relay.watch(repository.collection)
    yield repository, relay, bus
    await client.close()


async def stored(repository: Repository[Tab], doc_id: str) -> Document:
    doc = await repository.collection.find_one({"_id": doc_id})
    assert doc is not None
    return doc


async def test_what_a_write_put_in_the_outbox_is_published_and_cleared_in_one_update(
    tabs: tuple[Repository[Tab], OutboxRelay, RecordingBus],
) -> None:
    repository, relay, bus = tabs
    created = refund("tab-1")
    assert await repository.add(Tab(id="tab-1"), [created])

    published = await relay.flush(repository.collection, "tab-1", repository.written.pop("tab-1"))

    assert (published, bus.published) == (1, [str(created.event_id)])
    doc = await stored(repository, "tab-1")
    assert "outbox_since" not in doc
    assert not doc.get("outbox")


async def test_a_change_between_the_write_and_its_flush_keeps_its_own_events_waiting(
    tabs: tuple[Repository[Tab], OutboxRelay, RecordingBus],
) -> None:
    repository, relay, bus = tabs
    first, second = refund("tab-2"), refund("tab-2")
    assert await repository.add(Tab(id="tab-2"), [first])
    written = repository.written.pop("tab-2")
    # Another change of the same document, with its own event, before the first write's flush.
    tab = await repository.get("tab-2")
    assert tab is not None
    tab.total = 5
    await repository.save(tab, [second])

    await relay.flush(repository.collection, "tab-2", written)

    assert bus.published == [str(first.event_id)]
    doc = await stored(repository, "tab-2")
    assert (doc["total"], list(doc["outbox"])) == (5, [str(second.event_id)])
    assert "outbox_since" in doc  # the second event still waits: the sweep must find it


async def test_a_sweep_clears_the_waiting_mark_a_crash_left_on_an_empty_outbox(
    tabs: tuple[Repository[Tab], OutboxRelay, RecordingBus],
) -> None:
    repository, relay, bus = tabs
    # A crash came after the entries were cleared and before the mark was.
    left = {"_id": "tab-3", "total": 0, "version": 1, "processed_event_ids": []}
    await repository.collection.insert_one({**left, "outbox": {}, "outbox_since": datetime.now(UTC)})

    assert await relay.sweep(timedelta(0)) == 0
    assert "outbox_since" not in await stored(repository, "tab-3")
    assert bus.published == []
