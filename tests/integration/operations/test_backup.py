"""`pharmacy-ops backup` and `restore` on the real store: the five services as processes take a few
dozen orders, every database is backed up, wiped and restored, and comes back byte for byte."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, Backing, make_platform
from pymongo import MongoClient
from pymongo.database import Database
from typer.testing import CliRunner, Result

from operations.cli import app
from service_runtime.launcher import ARCHIVER, SERVICES, Platform, delete_namespace, drop_databases

pytestmark = pytest.mark.integration

GOOD_CARD, DECLINED_CARD = "4242424242424242", "4000000000000002"
ORDERS = 24
TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}
RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
# Every collection of a database: its documents as raw BSON in `_id` order, and its indexes.
Snapshot = dict[str, tuple[list[bytes], list[dict[str, Any]]]]


@dataclass
class BackedUp:
    """A platform that took orders and was backed up, now stopped, with what it held at the time."""

    platform: Platform
    backing: Backing
    before: dict[str, Snapshot]
    archives: dict[str, Path]

    def ops(self, *args: str) -> Result:
        return CliRunner().invoke(
            app, list(args), env={"MONGODB_URL": self.backing.mongodb_url}, terminal_width=200
        )

    def archive(self, service: str) -> str:
        return str(self.archives[service])


def said(result: Result) -> str:
    """What the CLI printed, with the line breaks Rich put in taken out again."""
    return " ".join(result.output.split())


def snapshot(mongo: MongoClient[dict[str, Any]], database: str) -> Snapshot:
    db: Database[Any] = mongo.get_database(database, codec_options=RAW)
    return {
        name: (
            [bytes(doc.raw) for doc in db[name].find({}, sort=[("_id", 1)])],
            sorted((dict(spec) for spec in db[name].list_indexes()), key=lambda spec: str(spec["name"])),
        )
        for name in sorted(db.list_collection_names())
    }


def take_orders(api: Api) -> None:
    """Two pharmacies, three medications with stock, five patients with cards, and ORDERS uploads."""
    admin = api.token(ADMIN_EMAIL, ADMIN_PASSWORD)
    pharmacies = []
    for n, (latitude, longitude) in enumerate(((48.85, 2.35), (48.86, 2.36))):
        answer = api.http.post(
            "/pharmacies",
            headers=admin,
            json={
                "name": f"Pharmacie {n}",
                "address": f"{n} rue de Rivoli",
                "latitude": latitude,
                "longitude": longitude,
            },
        )
        assert answer.status_code == 201, answer.text
        pharmacies.append(answer.json()["id"])
    medications = []
    for name, price in (("Amoxicillin", "4.20"), ("Ibuprofen", "2.10"), ("Insulin", "31.99")):
        answer = api.http.post(
            "/medications",
            headers=admin,
            json={
                "name": name,
                "strength": "500 mg",
                "form": "capsule",
                "price": price,
                "prescription_only": False,
            },
        )
        assert answer.status_code == 201, answer.text
        medications.append(answer.json()["id"])
    for pharmacy in pharmacies:
        for quantity, medication in zip((40, 25, 3), medications, strict=True):
            answer = api.http.put(
                f"/pharmacies/{pharmacy}/stock/{medication}", headers=admin, json={"quantity": quantity}
            )
            assert answer.status_code == 200, answer.text
    patients = []
    for n in range(5):
        _, headers = api.new_patient()
        card = DECLINED_CARD if n == 4 else GOOD_CARD
        answer = api.http.post(
            "/payment-methods",
            headers=headers,
            json={"card_number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        )
        assert answer.status_code == 201, answer.text
        patients.append((headers, answer.json()["id"]))

    def upload(n: int) -> tuple[str, dict[str, str]]:
        headers, card = patients[n % len(patients)]
        answer = api.http.post(
            "/prescriptions",
            headers=headers,
            json={
                "lines": [{"medication_id": medications[n % 3], "quantity": 1 + n % 4}],
                "delivery_location": {"latitude": 48.855, "longitude": 2.355},
                "payment_method_id": card,
            },
        )
        assert answer.status_code == 202, answer.text
        return answer.json()["order_id"], headers

    # Several at once, as patients would: the sagas interleave across the services.
    with ThreadPoolExecutor(max_workers=6) as patients_at_once:
        orders = list(patients_at_once.map(upload, range(ORDERS)))
    for order_id, headers in orders:
        api.wait_for_status(order_id, headers, TERMINAL, timeout=30)


def settled(mongo: MongoClient[dict[str, Any]], databases: list[str]) -> dict[str, Snapshot]:
    """What every database holds once the last events of the sagas are applied: twice the same."""
    deadline = time.monotonic() + 20
    last = {db: snapshot(mongo, db) for db in databases}
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = {db: snapshot(mongo, db) for db in databases}
        if now == last:
            return now
        last = now
    raise AssertionError("the databases kept changing after every order had ended")


@pytest.fixture(scope="module")
def backed_up(backing: Backing, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackedUp]:
    platform = make_platform(backing, "backup")
    mongo: MongoClient[dict[str, Any]] = MongoClient(backing.mongodb_url)
    folder = tmp_path_factory.mktemp("backups")
    try:
        platform.start(timeout=60)
        api = Api(platform.url)
        try:
            take_orders(api)
        finally:
            api.http.close()
        names = [*SERVICES, ARCHIVER]
        before = settled(mongo, [platform.database(name) for name in names])
        state = BackedUp(platform, backing, before, {})
        done = state.ops(
            "backup", "--all", "--database-prefix", platform.database_prefix, "--out", str(folder), "--json"
        )
        assert done.exit_code == 0, done.output
        state.archives = {
            item["manifest"]["service"]: Path(item["archive"]) for item in json.loads(done.stdout)
        }
        assert sorted(state.archives) == sorted(names)
        platform.stop()  # an operator restores with the services stopped
        yield state
    finally:
        platform.stop()
        mongo.close()
        asyncio.run(delete_namespace(backing.rabbitmq_url, platform.namespace))
        asyncio.run(drop_databases(backing.mongodb_url, platform.database_prefix))


def test_every_database_wiped_and_restored_comes_back_byte_for_byte(backed_up: BackedUp) -> None:
    platform, prefix = backed_up.platform, backed_up.platform.database_prefix
    orders = backed_up.before[platform.database("order_service")]["orders"][0]
    stock = backed_up.before[platform.database("inventory_service")]
    assert len(orders) == ORDERS
    assert all(documents for documents, _ in stock.values())
    with tarfile.open(backed_up.archive("order_service")) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["service"] == "order_service"
    assert manifest["database"] == platform.database("order_service")
    assert {c["name"]: c["count"] for c in manifest["collections"]}["orders"] == ORDERS
    assert manifest["unchanged_on_second_read"] is True

    asyncio.run(drop_databases(backed_up.backing.mongodb_url, prefix))
    restored = backed_up.ops("restore", *map(str, backed_up.archives.values()))

    assert restored.exit_code == 0, restored.output
    assert "read back, matching the archive's checksums" in said(restored)
    with MongoClient[dict[str, Any]](backed_up.backing.mongodb_url) as mongo:
        for database, held in backed_up.before.items():
            assert snapshot(mongo, database) == held, database


def test_restore_over_documents_is_refused_unless_forced(backed_up: BackedUp) -> None:
    copy = f"{backed_up.platform.database_prefix}_copy_users"
    archive = backed_up.archive("user_service")
    original = backed_up.before[backed_up.platform.database("user_service")]
    assert backed_up.ops("restore", archive, "--database", copy).exit_code == 0
    with MongoClient[dict[str, Any]](backed_up.backing.mongodb_url) as mongo:
        mongo[copy]["users"].delete_one({})
        mongo[copy]["stray"].insert_one({"_id": "left over"})

        refused = backed_up.ops("restore", archive, "--database", copy)

        assert refused.exit_code == 1
        assert f"{copy} is not empty (" in said(refused)
        assert "--force drops its collections first" in said(refused)
        assert "Traceback" not in refused.output
        assert mongo[copy]["stray"].count_documents({}) == 1  # untouched

        forced = backed_up.ops("restore", archive, "--database", copy, "--force")

        assert forced.exit_code == 0, forced.output
        assert "Replaced what it held (--force)" in said(forced)
        assert snapshot(mongo, copy) == original


def test_a_tampered_archive_is_refused_and_nothing_is_written(backed_up: BackedUp, tmp_path: Path) -> None:
    target = f"{backed_up.platform.database_prefix}_tampered_orders"
    with tarfile.open(backed_up.archive("order_service")) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    flipped = bytearray(files["orders.bson"])
    flipped[len(flipped) // 2] ^= 0x01
    counted = json.loads(files["manifest.json"])
    counted["collections"][0]["count"] += 1
    cases = {
        "data.tar.gz": ({**files, "orders.bson": bytes(flipped)}, "orders.bson does not match its checksum"),
        "manifest.tar.gz": (
            {**files, "manifest.json": json.dumps(counted).encode()},
            "the manifest does not match its checksum",
        ),
    }
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(Path(backed_up.archive("order_service")).read_bytes()[:300])

    for name, (members, reason) in cases.items():
        with tarfile.open(tmp_path / name, "w:gz") as tar:
            for member, body in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        refused = backed_up.ops("restore", str(tmp_path / name), "--database", target)
        assert refused.exit_code == 1, refused.output
        assert reason in said(refused)
    cut = backed_up.ops("restore", str(truncated), "--database", target)
    missing = backed_up.ops("restore", str(tmp_path / "nowhere.tar.gz"), "--database", target)

    assert (cut.exit_code, missing.exit_code) == (1, 1)
    assert "is not a readable archive" in said(cut)
    assert "no archive at" in said(missing)
    with MongoClient[dict[str, Any]](backed_up.backing.mongodb_url) as mongo:
        assert target not in mongo.list_database_names()


def test_a_restore_that_fails_midway_says_so_and_force_finishes_it(backed_up: BackedUp) -> None:
    target = f"{backed_up.platform.database_prefix}_halfway_users"
    archive = backed_up.archive("user_service")
    with MongoClient[dict[str, Any]](backed_up.backing.mongodb_url) as mongo:
        # An empty collection in the way, with an index of the archive's name on another key.
        mongo[target]["users"].create_index([("full_name", 1)], name="email_index_1")

        failed = backed_up.ops("restore", archive, "--database", target)

        assert failed.exit_code == 1
        assert f"restore into {target} stopped while creating the indexes of users" in said(failed)
        assert "PARTLY restored" in said(failed)
        assert "run the same restore again with --force" in said(failed)
        assert "Traceback" not in failed.output

        again = backed_up.ops("restore", archive, "--database", target)

        assert again.exit_code == 1
        assert f"{target} is partly restored" in said(again)

        forced = backed_up.ops("restore", archive, "--database", target, "--force")

        assert forced.exit_code == 0, forced.output
        assert snapshot(mongo, target) == backed_up.before[backed_up.platform.database("user_service")]
