"""The only door to MongoDB: aggregate repositories whose writes carry their outbox along."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from contracts.base import Envelope
from service_runtime import tracing
from service_runtime.aggregate import Aggregate
from service_runtime.errors import ConcurrentModification
from service_runtime.settings import RuntimeSettings

Document = dict[str, Any]
A = TypeVar("A", bound=Aggregate)

# Fields the repository owns; the rest of a document is the aggregate's state.
_BOOKKEEPING = {"id", "version", "processed_event_ids"}


def connect(settings: RuntimeSettings) -> AsyncMongoClient[Document]:
    """A client that hands back timezone-aware UTC datetimes and fails fast when the store is gone."""
    return AsyncMongoClient(settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000)


# The id of the last event a service's consumer handled before the write command in hand: where, among
# the events it consumed, the command's decision was taken. Its events carry it (`x-decided-after`), so a
# rebuild from the journal takes the decision again at the same place. Unset outside a write command.
decided_after: ContextVar[str | None] = ContextVar("decided_after", default=None)
DECIDED_AFTER = "decided_after"


def _placed(entry: Document) -> Document:
    """An outbox entry, with the event its decision followed when it was decided on a command."""
    if (after := decided_after.get()) is not None:
        entry[DECIDED_AFTER] = after
    return entry


def pending(events: Sequence[Envelope]) -> Document:
    """An outbox: each event as stored, under its id, with the trace context it was decided in."""
    return {str(e.event_id): tracing.remember(_placed(e.model_dump(mode="json"))) for e in events}


def outbox_fields(events: Sequence[Envelope]) -> Document:
    """The `$set` that appends events to a document's outbox, in the same write as the state change."""
    if not events:
        return {}
    fields: Document = {f"outbox.{event_id}": envelope for event_id, envelope in pending(events).items()}
    fields["outbox_since"] = datetime.now(UTC)
    return fields


class Repository(Generic[A]):
    """Load and save one kind of aggregate; every save is one conditional, atomic document update."""

    def __init__(self, collection: AsyncCollection[Document], model: type[A]) -> None:
        self.collection = collection
        self.model = model

    def _load(self, doc: Document) -> A:
        doc = dict(doc)
        doc["id"] = doc.pop("_id")
        doc.pop("outbox", None)
        doc.pop("outbox_since", None)
        return self.model.model_validate(doc)

    async def get(self, aggregate_id: str) -> A | None:
        doc = await self.collection.find_one({"_id": aggregate_id})
        return None if doc is None else self._load(doc)

    async def find(
        self,
        query: Mapping[str, Any],
        *,
        sort: Sequence[tuple[str, int]] = (("_id", 1),),
        skip: int = 0,
        limit: int = 0,
    ) -> list[A]:
        cursor = self.collection.find(dict(query), sort=list(sort), skip=skip, limit=limit)
        return [self._load(doc) async for doc in cursor]

    async def add(
        self, aggregate: A, events: Sequence[Envelope] = (), *, caused_by: str | None = None
    ) -> bool:
        """Insert a new aggregate with its first events. False when one with this id already exists."""
        doc = aggregate.model_dump(exclude=_BOOKKEEPING)
        doc["_id"] = aggregate.id
        doc["version"] = 1
        doc["processed_event_ids"] = [caused_by] if caused_by else []
        if events:
            doc["outbox"] = pending(events)
            doc["outbox_since"] = datetime.now(UTC)
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        aggregate.version = 1
        return True

    async def save(
        self, aggregate: A, events: Sequence[Envelope] = (), *, caused_by: str | None = None
    ) -> None:
        """Write the aggregate's new state and events if nobody changed it since it was read."""
        state = aggregate.model_dump(exclude=_BOOKKEEPING)
        update: Document = {"$set": {**state, "version": aggregate.version + 1, **outbox_fields(events)}}
        if caused_by:
            update["$push"] = {"processed_event_ids": caused_by}
        result = await self.collection.update_one({"_id": aggregate.id, "version": aggregate.version}, update)
        if result.matched_count == 0:
            raise ConcurrentModification(
                f"{self.collection.name}/{aggregate.id} changed since version {aggregate.version}"
            )
        aggregate.version += 1
        if caused_by:
            aggregate.processed_event_ids.append(caused_by)
