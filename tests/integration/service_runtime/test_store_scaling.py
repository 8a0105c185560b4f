"""The store serves our queries from indexes and never loses a conditional update.

On the embedded FerretDB these check our patch (scripts/ferretdb/): updates are atomic per collection,
`_id` and equality on an indexed field are pushed down to SQLite and served by the index, and that
pushdown still finds documents whose field is an array holding the value. On MongoDB the query-plan
checks are skipped; the rest holds there as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from bson import Int64

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import Backing, unique
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

Document = dict[str, Any]
WRITERS = 20
INCREMENTS = 50


@pytest_asyncio.fixture
async def db(backing: Backing) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(backing.mongodb_url)
    name = unique("t_store")
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def ferretdb(db: AsyncDatabase[Document]) -> bool:
    return "ferretdbVersion" in await db.client.admin.command("buildInfo")


async def test_concurrent_conditional_updates_lose_no_increment(
    backing: Backing, db: AsyncDatabase[Document]
) -> None:
    await db.counters.insert_one({"_id": "c", "version": 1, "count": 0})

    async def writer() -> int:
        # A connection of its own, as another consumer or replica would have.
        client: AsyncMongoClient[Document] = AsyncMongoClient(backing.mongodb_url, maxPoolSize=1)
        counters = client[db.name].counters
        saved = 0
        try:
            for _ in range(INCREMENTS):
                doc = await counters.find_one({"_id": "c"})
                assert doc is not None
                result = await counters.update_one(
                    {"_id": "c", "version": doc["version"]},
                    {"$set": {"count": doc["count"] + 1, "version": doc["version"] + 1}},
                )
                saved += result.modified_count
        finally:
            await client.close()
        return saved

    saved = sum(await asyncio.gather(*(writer() for _ in range(WRITERS))))

    final = await db.counters.find_one({"_id": "c"})
    assert final is not None
    assert saved > 0
    assert final["count"] == saved, f"{saved - final['count']} of {saved} saved increments were lost"
    assert final["version"] == 1 + saved


async def explained(db: AsyncDatabase[Document], collection: str, query: Document) -> Document:
    answer: Document = await db.command("explain", {"find": collection, "filter": query})
    return answer


async def test_id_and_indexed_equality_are_served_by_an_index(db: AsyncDatabase[Document]) -> None:
    if not await ferretdb(db):
        pytest.skip("query plans are FerretDB's; MongoDB plans these with its own indexes")
    await db.orders.create_index([("patient_id", ASCENDING), ("created_at", DESCENDING)])
    await db.orders.create_index([("outbox_since", ASCENDING)])
    await db.orders.insert_many(
        [{"_id": f"o{i}", "version": 1, "patient_id": f"p{i % 10}", "status": "NEW"} for i in range(100)]
    )

    for query in (
        {"_id": "o1"},
        {"_id": "o1", "version": 1},
        {"_id": {"$in": ["o1", "o2"]}},
        {"patient_id": "p3"},
        {"patient_id": {"$in": ["p3", "p4"]}},
        {"patient_id": "p3", "status": {"$ne": "CANCELLED"}, "hidden_at": None},
        {"outbox_since": {"$exists": True, "$lt": datetime.now(UTC)}},  # the outbox sweep
    ):
        plan = await explained(db, "orders", query)
        assert plan["filterPushdown"] is True, query
        steps = " ".join(plan["queryPlanner"]["Plan"])
        assert "USING INDEX" in steps, (query, steps)
        assert "SCAN" not in steps, (query, steps)

    # Not indexed: read whole, filtered by FerretDB (what our services must never do on a hot path).
    plan = await explained(db, "orders", {"status": "NEW"})
    assert plan["filterPushdown"] is False


async def test_pushed_down_equality_still_matches_arrays_holding_the_value(
    db: AsyncDatabase[Document],
) -> None:
    await db.things.create_index([("owner_id", ASCENDING)])
    await db.things.insert_many(
        [
            {"_id": "plain", "owner_id": "a"},
            {"_id": "in-array", "owner_id": ["b", "a"]},
            {"_id": "other-array", "owner_id": ["b"]},
            {"_id": "other", "owner_id": "b"},
            {"_id": "missing"},
            {"_id": "object", "owner_id": {"a": 1}},
        ]
    )

    found = {doc["_id"] async for doc in db.things.find({"owner_id": "a"})}
    assert found == {"plain", "in-array"}
    assert await db.things.count_documents({"owner_id": "a"}) == 2
    found = {doc["_id"] async for doc in db.things.find({"owner_id": {"$in": ["a", "c"]}})}
    assert found == {"plain", "in-array"}
    updated = await db.things.update_many({"owner_id": "a"}, {"$set": {"seen": True}})
    assert updated.modified_count == 2
    deleted = await db.things.delete_many({"owner_id": "a", "seen": True})
    assert deleted.deleted_count == 2

    await db.things.create_index([("since", ASCENDING)])
    await db.things.insert_many(
        [{"_id": "dated", "since": datetime(2026, 1, 1, tzinfo=UTC)}, {"_id": "null", "since": None}]
    )
    present = {doc["_id"] async for doc in db.things.find({"since": {"$exists": True}})}
    assert present == {"dated", "null"}
    waiting = {
        doc["_id"] async for doc in db.things.find({"since": {"$exists": True, "$lt": datetime.now(UTC)}})
    }
    assert waiting == {"dated"}
    assert {doc["_id"] async for doc in db.things.find({"owner_id": "b"})} == {"other-array", "other"}


NEWEST_FIRST = [("created_at", DESCENDING), ("_id", ASCENDING)]


async def test_a_page_of_a_sorted_list_is_read_from_an_index(db: AsyncDatabase[Document]) -> None:
    if not await ferretdb(db):
        pytest.skip("query plans are FerretDB's; MongoDB plans these with its own indexes")
    await db.orders.create_index([("created_at", DESCENDING)])
    await db.orders.create_index([("status", ASCENDING), ("created_at", DESCENDING)])
    await db.users.create_index([("created_at", ASCENDING)])
    await db.medications.create_index([("discontinued", ASCENDING), ("catalogue_key", ASCENDING)])
    await db.prescriptions.create_index([("listed", ASCENDING), ("uploaded_at", DESCENDING)])
    await db.prescriptions.create_index(
        [("patient_id", ASCENDING), ("listed", ASCENDING), ("uploaded_at", DESCENDING)]
    )
    at = datetime(2026, 1, 1, tzinfo=UTC)
    await db.orders.insert_many(
        [{"_id": f"o{i}", "status": "NEW", "created_at": at + timedelta(seconds=i)} for i in range(100)]
    )

    for collection, query, sort, skip in (
        ("orders", {}, NEWEST_FIRST, 0),  # an admin's list of every order
        ("orders", {}, NEWEST_FIRST, 900),  # ... a page far in
        ("orders", {"status": "NEW"}, NEWEST_FIRST, 40),  # staff's list of one status
        ("orders", {"status": "NEW", "created_at": {"$lt": at}}, NEWEST_FIRST, 0),
        ("users", {}, [("created_at", ASCENDING), ("_id", ASCENDING)], 20),
        ("medications", {"discontinued": False}, [("catalogue_key", ASCENDING), ("_id", ASCENDING)], 20),
        ("prescriptions", {"listed": True}, [("uploaded_at", DESCENDING), ("_id", ASCENDING)], 0),
        (
            "prescriptions",
            {"patient_id": "p", "listed": True},
            [("uploaded_at", DESCENDING), ("_id", ASCENDING)],
            0,
        ),
    ):
        find = {
            "find": collection,
            "filter": query,
            "sort": dict(sort),
            "skip": Int64(skip),
            "limit": Int64(20),
        }
        plan: Document = await db.command("explain", find)
        assert plan["sortPushdown"] is True, (collection, query)
        assert plan["limitPushdown"] is True, (collection, query)
        steps = " ".join(plan["queryPlanner"]["Plan"])
        assert "USING INDEX" in steps, (collection, query, steps)
        assert "SCAN" not in steps, (collection, query, steps)
        assert "TEMP B-TREE" not in steps, (collection, query, steps)

    # A sort the indexes cannot serve is still sorted, by FerretDB, after reading every document.
    unindexed = {"find": "orders", "filter": {}, "sort": {"prescription_id": 1}, "limit": Int64(5)}
    plan = await db.command("explain", unindexed)
    assert plan["sortPushdown"] is False


async def test_a_page_read_from_an_index_is_that_page_of_the_whole_sorted_list(
    db: AsyncDatabase[Document],
) -> None:
    """Whatever the types a field holds (arrays, nulls, numbers, dates before 1970, ties), a page read
    through the patch's sort pushdown is the same page of the list sorted without it (no limit)."""
    await db.t.create_index([("created_at", DESCENDING)])
    await db.t.create_index([("status", ASCENDING), ("created_at", DESCENDING)])
    await db.t.create_index([("flag", ASCENDING), ("name", ASCENDING)])
    # Two equal fields before the sorted one, the second holding arrays, nulls and other types too.
    await db.t.create_index([("status", ASCENDING), ("name", ASCENDING), ("created_at", DESCENDING)])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    odd: list[Any] = [None, 5, 2.5, "text", ["x", "y"], {"k": 1}, True, at - timedelta(days=30000), [at], []]
    docs: list[Document] = []
    for i in range(300):
        doc: Document = {"_id": f"d{i:03d}" if i % 10 else i}
        if i % 7:
            doc["created_at"] = odd[i % len(odd)] if i % 11 == 0 else at + timedelta(minutes=i % 40)
        doc["status"] = ["NEW", "DONE", ["NEW", "X"], None, "NEW"][i % 5] if i % 13 else odd[i % len(odd)]
        doc["name"] = ["a", "b", "Ab", "é", 'a"q', "", 7, ["a", "z"], None][i % 9]
        doc["flag"] = [True, False, None][i % 3]
        docs.append(doc)
    await db.t.insert_many(docs)

    moment = at + timedelta(minutes=20)
    checked = 0
    for query, sort in (
        ({}, NEWEST_FIRST),
        ({}, [("created_at", ASCENDING), ("_id", DESCENDING)]),
        ({"status": "NEW"}, NEWEST_FIRST),
        ({"status": {"$in": ["DONE"]}}, [("created_at", ASCENDING), ("_id", ASCENDING)]),
        ({"status": "NEW", "created_at": {"$lt": moment}}, NEWEST_FIRST),
        ({"created_at": {"$gte": moment, "$lte": moment + timedelta(minutes=9)}}, NEWEST_FIRST),
        ({"flag": False}, [("name", ASCENDING), ("_id", ASCENDING)]),
        ({"flag": True}, [("name", DESCENDING), ("_id", ASCENDING)]),
        ({"name": "a", "status": "NEW"}, NEWEST_FIRST),  # the index's equal fields in another order
        ({"status": "NEW", "name": "b"}, [("created_at", ASCENDING), ("_id", ASCENDING)]),
    ):
        whole = [doc["_id"] async for doc in db.t.find(query, sort=sort)]
        assert whole, query
        for skip, limit in ((0, 1), (0, 7), (3, 5), (40, 20), (0, 1000), (len(whole) - 2, 10)):
            page = [doc["_id"] async for doc in db.t.find(query, sort=sort, skip=skip, limit=limit)]
            assert page == whole[skip : skip + limit], (query, sort, skip, limit)
            checked += 1
    assert checked == 60


async def test_the_verification_queue_is_served_by_its_index(db: AsyncDatabase[Document]) -> None:
    if not await ferretdb(db):
        pytest.skip("query plans are FerretDB's; MongoDB plans these with its own indexes")
    # As prescription_service/store.py makes it, for the queue: one status, oldest first.
    await db.prescriptions.create_index([("status", ASCENDING), ("uploaded_at", ASCENDING)])
    await db.prescriptions.insert_many(
        [
            {
                "_id": f"rx{i}",
                "status": "PENDING_VERIFICATION" if i % 3 else "FILLED",
                "uploaded_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i),
            }
            for i in range(100)
        ]
    )

    answer: Document = await db.command(
        "explain",
        {
            "find": "prescriptions",
            "filter": {"status": "PENDING_VERIFICATION"},
            "sort": {"uploaded_at": 1, "_id": 1},
            "limit": Int64(50),
        },
    )

    steps = " ".join(answer["queryPlanner"]["Plan"])
    assert answer["filterPushdown"] is True
    assert answer["sortPushdown"] is True  # the oldest 50 read from the index, not every waiting one
    assert "USING INDEX" in steps, steps
    assert "SCAN" not in steps, steps
