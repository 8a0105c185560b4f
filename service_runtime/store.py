"""The only door to MongoDB: aggregate repositories whose writes carry their outbox along."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.monitoring import CommandListener

from contracts.base import Envelope
from service_runtime import tracing
from service_runtime.aggregate import Aggregate
from service_runtime.crypto import FieldCipher, place
from service_runtime.errors import ConcurrentModification
from service_runtime.settings import RuntimeSettings

Document = dict[str, Any]
A = TypeVar("A", bound=Aggregate)

# Fields the repository owns; the rest of a document is the aggregate's state.
_BOOKKEEPING = {"id", "version", "processed_event_ids"}


class UniqueViolation(Exception):
    """The write would give a document a value a unique index already holds for another one."""


def is_unique_violation(exc: Exception) -> bool:
    """MongoDB answers a unique-index violation with code 11000 (DuplicateKeyError), and FerretDB 1.24 on
    SQLite does on insert; on update, FerretDB answers code 1 with SQLite's own message instead."""
    if isinstance(exc, DuplicateKeyError):
        return True
    if not isinstance(exc, OperationFailure) or exc.code != 1:
        return False
    return "UNIQUE constraint failed" in str((exc.details or {}).get("errmsg", ""))


@contextmanager
def unique_violations() -> Iterator[None]:
    """Raise UniqueViolation for a write inside that breaks a unique index, on either store."""
    try:
        yield
    except OperationFailure as exc:
        if is_unique_violation(exc):
            raise UniqueViolation(str(exc)) from exc
        raise


def connect(
    settings: RuntimeSettings, *, listeners: Sequence[CommandListener] = ()
) -> AsyncMongoClient[Document]:
    """A client that hands back timezone-aware UTC datetimes and fails fast when the store is gone.

    `listeners` see every command the client sends (a test counts a request's round trips with one)."""
    return AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000, event_listeners=listeners
    )


# True while a write command is carried out. The events it decides carry, as `decided_after`
# (`x-decided-after`), the last event the aggregate had handled: where, among that aggregate's events,
# the decision was taken, so a rebuild from the journal takes it again at the same place.
deciding: ContextVar[bool] = ContextVar("deciding", default=False)
DECIDED_AFTER = "decided_after"


def _placed(entry: Document, after: str | None) -> Document:
    """An outbox entry, with the event its decision followed when it was decided on a command."""
    if after is not None:
        entry[DECIDED_AFTER] = after
    return entry


def outbox_place(collection: str, doc_id: str, event_id: str) -> str:
    """Where an outbox entry's sealed payload lives (see crypto.place)."""
    return place(collection, doc_id, f"outbox.{event_id}.payload")


def pending(
    events: Sequence[Envelope],
    cipher: FieldCipher,
    *,
    collection: str,
    doc_id: str,
    decided_after: str | None = None,
) -> Document:
    """An outbox: each event as stored, its payload sealed, under its id, with the trace context it was
    decided in. Events carry prescriptions' lines and delivery locations: at rest, they are sealed too."""
    return {
        str(e.event_id): cipher.seal_payload(
            tracing.remember(_placed(e.model_dump(mode="json"), decided_after)),
            at=outbox_place(collection, doc_id, str(e.event_id)),
        )
        for e in events
    }


@dataclass(frozen=True)
class Written:
    """The events a write just put in a document's outbox, as stored, and the version it gave it.

    `alone`: the outbox held nothing else before, so once these are published, it is empty.
    """

    version: int
    entries: Document
    alone: bool


# Writes whose events nobody flushed (a caller that never publishes) are forgotten past this many.
_WRITTEN_KEPT = 10_000


class Repository(Generic[A]):
    """Load and save one kind of aggregate; every save is one conditional, atomic document update.

    `sealed` names the aggregate's fields kept encrypted; `name.*` seals each value of a mapping on its
    own, so its keys stay queryable. Queries never filter on what is sealed.
    """

    def __init__(
        self,
        collection: AsyncCollection[Document],
        model: type[A],
        cipher: FieldCipher,
        *,
        sealed: Sequence[str] = (),
    ) -> None:
        self.collection = collection
        self.model = model
        self.cipher = cipher
        self.sealed = tuple(sealed)
        # Per document, what its last write with events put in its outbox: the relay publishes that
        # without reading the document again (Service.publish_pending takes it).
        self.written: dict[str, Written] = {}

    def _remember(self, doc_id: str, written: Written) -> None:
        self.written.pop(doc_id, None)
        self.written[doc_id] = written
        if len(self.written) > _WRITTEN_KEPT:
            self.written.pop(next(iter(self.written)))

    def _each_sealed(self, doc_id: str, state: Document, change: Callable[[Any, str], Any]) -> Document:
        """The state with `change(value, place)` applied to every sealed value in it."""
        for path in self.sealed:
            name = path.removesuffix(".*")
            if name not in state:
                continue
            at = place(self.collection.name, doc_id, name)
            if path.endswith(".*"):
                state[name] = {key: change(value, f"{at}.{key}") for key, value in state[name].items()}
            else:
                state[name] = change(state[name], at)
        return state

    def _sealed(self, aggregate: A) -> Document:
        state = aggregate.model_dump(exclude=_BOOKKEEPING)
        return self._each_sealed(aggregate.id, state, lambda value, at: self.cipher.seal(value, at=at))

    def _load(self, doc: Document) -> A:
        doc = dict(doc)
        doc["id"] = doc.pop("_id")
        waiting = bool(doc.pop("outbox", None))
        doc.pop("outbox_since", None)
        doc = self._each_sealed(doc["id"], doc, lambda value, at: self.cipher.open(value, at=at))
        aggregate = self.model.model_validate(doc)
        aggregate._outbox_waiting = waiting
        return aggregate

    def _outbox(self, aggregate: A, events: Sequence[Envelope]) -> Document:
        """The outbox entries of the events a change of this aggregate caused, as stored."""
        handled = aggregate.processed_event_ids
        return pending(
            events,
            self.cipher,
            collection=self.collection.name,
            doc_id=aggregate.id,
            decided_after=handled[-1] if deciding.get() and handled else None,
        )

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

    def document(self, aggregate: A) -> Document:
        """The document that stores an aggregate as it stands (sealed, with its version and applied
        events), for writing many at once: a restore, a benchmark's past orders."""
        doc = self._sealed(aggregate)
        doc["_id"] = aggregate.id
        doc["version"] = aggregate.version
        doc["processed_event_ids"] = list(aggregate.processed_event_ids)
        return doc

    async def add(
        self, aggregate: A, events: Sequence[Envelope] = (), *, caused_by: str | None = None
    ) -> bool:
        """Insert a new aggregate with its first events. False when one with this id already exists, or
        when it takes a value a unique index holds for another."""
        doc = self._sealed(aggregate)
        doc["_id"] = aggregate.id
        doc["version"] = 1
        doc["processed_event_ids"] = [caused_by] if caused_by else []
        if events:
            doc["outbox"] = pending(events, self.cipher, collection=self.collection.name, doc_id=aggregate.id)
            doc["outbox_since"] = datetime.now(UTC)
        try:
            with unique_violations():
                await self.collection.insert_one(doc)
        except UniqueViolation:
            return False
        aggregate.version = 1
        if events:
            self._remember(aggregate.id, Written(1, doc["outbox"], alone=True))
            aggregate._outbox_waiting = True
        return True

    async def save(
        self, aggregate: A, events: Sequence[Envelope] = (), *, caused_by: str | None = None
    ) -> None:
        """Write the aggregate's new state and events if nobody changed it since it was read.

        UniqueViolation when the new state takes a value a unique index holds for another aggregate.
        """
        state = self._sealed(aggregate)
        outbox = self._outbox(aggregate, events) if events else {}
        appended: Document = {f"outbox.{event_id}": entry for event_id, entry in outbox.items()}
        if outbox:
            appended["outbox_since"] = datetime.now(UTC)
        update: Document = {"$set": {**state, "version": aggregate.version + 1, **appended}}
        if caused_by:
            update["$push"] = {"processed_event_ids": caused_by}
        with unique_violations():
            result = await self.collection.update_one(
                {"_id": aggregate.id, "version": aggregate.version}, update
            )
        if result.matched_count == 0:
            raise ConcurrentModification(
                f"{self.collection.name}/{aggregate.id} changed since version {aggregate.version}"
            )
        aggregate.version += 1
        if caused_by:
            aggregate.processed_event_ids.append(caused_by)
        if outbox:
            self._remember(
                aggregate.id, Written(aggregate.version, outbox, alone=not aggregate._outbox_waiting)
            )
            aggregate._outbox_waiting = True
