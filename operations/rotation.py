"""Key rotation: patients' data sealed again under the current key, so that older keys can be retired.

Every sealed value names its key and opens only where it was sealed (service_runtime/crypto.py), so
rotation needs no list of fields: it walks every document of a database and re-seals each value whose
key is not the current one. It writes a document back only if its old values are still there (compare
and set): a service that wrote the document meanwhile wins, and sealed with the current key already.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from service_runtime.crypto import FieldCipher, is_sealed, key_id, place

Document = dict[str, Any]
# A document found changed this many times in a row is left for the next run.
ATTEMPTS = 5


@dataclass
class Rotated:
    """One collection's count: values re-sealed (or to re-seal), already current, and left behind."""

    collection: str
    documents: int = 0
    resealed: int = 0
    current: int = 0
    left: int = 0


def sealed_values(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every sealed value of a document with its dotted path. Sealed values are never inside lists."""
    for name, value in doc.items():
        path = f"{prefix}{name}"
        if is_sealed(value):
            yield path, value
        elif isinstance(value, Mapping):
            yield from sealed_values(value, f"{path}.")


async def rotate(db: AsyncDatabase[Document], cipher: FieldCipher, *, dry_run: bool) -> list[Rotated]:
    """Re-seal every value of every collection of `db` not under the cipher's current key."""
    counts = []
    for name in sorted(await db.list_collection_names()):
        collection = db[name]
        count = Rotated(name)
        async for doc in collection.find({}):
            count.documents += 1
            await _rotate_document(collection, doc, cipher, count, dry_run=dry_run)
        counts.append(count)
    return counts


async def _rotate_document(
    collection: AsyncCollection[Document],
    doc: Document | None,
    cipher: FieldCipher,
    count: Rotated,
    *,
    dry_run: bool,
) -> None:
    for _ in range(ATTEMPTS):
        if doc is None:  # removed meanwhile
            return
        values = dict(sealed_values(doc))
        stale = {path: value for path, value in values.items() if key_id(value) != cipher.current}
        if dry_run or not stale:
            count.resealed += len(stale)
            count.current += len(values) - len(stale)
            return
        resealed = {
            path: cipher.reseal(value, at=place(collection.name, doc["_id"], path))
            for path, value in stale.items()
        }
        written = await collection.update_one({"_id": doc["_id"], **stale}, {"$set": resealed})
        if written.matched_count:
            count.resealed += len(stale)
            count.current += len(values) - len(stale)
            return
        doc = await collection.find_one({"_id": doc["_id"]})
    count.left += len(stale)
