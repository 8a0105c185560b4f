"""Backups of one service's database: a compressed archive with a manifest, and its restore.

An archive is a gzip'd tar holding `manifest.json` first, then one `<collection>.bson` per
collection: its documents as raw BSON, concatenated in `_id` order (the layout mongodump uses), so
documents come back byte for byte, types and field order included. The manifest names the service
and database, when and by which tool and server the copy was taken, and for each collection its
options, its indexes, its document count and the sha256 of its file; its own `sha256` covers the rest
of the manifest, so the whole archive is checked by one hash chain.

What "consistent" means here: FerretDB on SQLite has neither snapshots nor multi-document
transactions, so no read sees the whole database at one instant. Each document is read whole; the
backup then reads every collection a second time and keeps the copy only when nothing changed in
between (else it tries again, then gives up unless told to keep a changing copy). A copy taken that
way matches the database as it stood while it was quiet. Services write only while they work on
messages or requests: back up while the platform is idle, or stop the service first.

Restore verifies the archive whole before it writes anything, writes only into a database without
documents (unless forced, which drops the target's collections first), marks the database while it
writes, and reads everything back against the manifest's checksums at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, cast

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pydantic import BaseModel, ConfigDict, ValidationError
from pymongo import IndexModel, MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from service_runtime.launcher import ARCHIVER, SERVICES

FORMAT = "pharmacy-ops-backup/1"
MANIFEST = "manifest.json"
# Every database `pharmacy-ops backup` knows by name: the five services' and the journal's.
TARGETS = (*SERVICES, ARCHIVER)
# Written first and dropped last by a restore: a database that still holds it was partly restored.
RESTORE_MARKER = "_restore_in_progress"
# Restored documents go to the store in batches of this many.
BATCH = 500
RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
# What `listIndexes` reports that is not the index itself.
_INDEX_BOOKKEEPING = {"v", "ns"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class BackupError(Exception):
    """A backup or restore that cannot go on, said in words the operator can act on."""


class NothingToBackUp(BackupError):
    pass


class DatabaseKeptChanging(BackupError):
    pass


class ArchiveRefused(BackupError):
    """The archive is missing, unreadable, or does not match its own checksums: nothing was written."""


class TargetNotEmpty(BackupError):
    pass


class RestoreIncomplete(BackupError):
    """Writing started and did not finish: the database is partly restored."""


class CollectionEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    file: str
    count: int
    bytes: int
    sha256: str
    # As the store reports them, in relaxed extended JSON (`v` and `ns` left out).
    options: dict[str, Any]
    indexes: list[dict[str, Any]]


class Manifest(BaseModel):
    """What an archive holds; `sha256` is the hash of every other field (see `digest`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["pharmacy-ops-backup/1"]
    service: str
    database: str
    created_at: datetime
    tool_version: str
    server_version: str
    # True when a second read found every collection as the first read left it.
    unchanged_on_second_read: bool
    changed_collections: list[str]
    collections: list[CollectionEntry]
    sha256: str

    @property
    def documents(self) -> int:
        return sum(c.count for c in self.collections)


def digest(fields: Mapping[str, Any]) -> str:
    """The sha256 of a manifest's fields other than `sha256`, in a canonical JSON form."""
    rest = {key: value for key, value in fields.items() if key != "sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Backup:
    """An archive written: where, how big, and its manifest."""

    path: Path
    size: int
    manifest: Manifest


@dataclass(frozen=True)
class Restored:
    database: str
    manifest: Manifest
    replaced: dict[str, int]


def connect(mongodb_url: str) -> MongoClient[dict[str, Any]]:
    return MongoClient(mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000)


def _raw(client: MongoClient[dict[str, Any]], database: str) -> Database[RawBSONDocument]:
    """The database with documents as the store sent them: bytes, never decoded and encoded again."""
    return cast(Database[RawBSONDocument], client.get_database(database, codec_options=RAW))


def tool_version() -> str:
    try:
        return metadata.version("pharmacy-platform")
    except metadata.PackageNotFoundError:
        return "unknown"


def default_archive_name(service: str, at: datetime) -> str:
    return f"{service}-{at.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


# --- backup ---------------------------------------------------------------------------------------


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """A BSON mapping as relaxed extended JSON: readable in the manifest, and exact to load back."""
    plain: dict[str, Any] = json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
    return plain


def _read_collection(
    db: Database[RawBSONDocument], name: str, sink: Callable[[bytes], object]
) -> tuple[int, str]:
    """Every document of a collection in `_id` order, raw, into `sink`; their count and sha256."""
    hasher = hashlib.sha256()
    count = 0
    for document in db[name].find({}, sort=[("_id", 1)], batch_size=BATCH):
        hasher.update(document.raw)
        sink(bytes(document.raw))
        count += 1
    return count, hasher.hexdigest()


def _shape(db: Database[RawBSONDocument], name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A collection's options and indexes, other than the `_id` index every collection has."""
    [info] = list(db.list_collections(filter={"name": name}))
    indexes = [
        _plain({k: v for k, v in spec.items() if k not in _INDEX_BOOKKEEPING})
        for spec in db[name].list_indexes()
        if spec["name"] != "_id_"
    ]
    return _plain(info.get("options") or {}), indexes


def _collections(db: Database[RawBSONDocument]) -> list[str]:
    names = sorted(n for n in db.list_collection_names() if not n.startswith("system."))
    if RESTORE_MARKER in names:
        raise BackupError(
            f"{db.name} is partly restored (an interrupted `pharmacy-ops restore`): finish that first"
        )
    for name in names:
        if not _SAFE_NAME.match(name):
            raise BackupError(f"{db.name}.{name}: this collection name cannot be a file name in an archive")
    return names


def _read_twice(
    db: Database[RawBSONDocument], work: Path, attempts: int, pause: float
) -> tuple[list[CollectionEntry], list[str]]:
    """Copy every collection to `work`, then read it all again; the copy and what changed since."""
    changed: list[str] = []
    entries: list[CollectionEntry] = []
    for attempt in range(1, attempts + 1):
        names = _collections(db)
        entries = []
        for name in names:
            options, indexes = _shape(db, name)
            path = work / f"{name}.bson"
            with path.open("wb") as file:
                count, sha256 = _read_collection(db, name, file.write)
            entries.append(
                CollectionEntry(
                    name=name,
                    file=path.name,
                    count=count,
                    bytes=path.stat().st_size,
                    sha256=sha256,
                    options=options,
                    indexes=indexes,
                )
            )
        again = {name: (_read_collection(db, name, len), _shape(db, name)) for name in _collections(db)}
        changed = sorted(
            {e.name for e in entries if again.get(e.name) != ((e.count, e.sha256), (e.options, e.indexes))}
            | (set(again) - set(names))
        )
        if not changed:
            break
        if attempt < attempts:
            time.sleep(pause)
    return entries, changed


def back_up(
    client: MongoClient[dict[str, Any]],
    *,
    service: str,
    database: str,
    out: Path,
    allow_changes: bool = False,
    attempts: int = 3,
    pause: float = 1.0,
) -> Backup:
    """Copy one database into a new archive at `out` (written aside, then renamed into place).

    Refuses (DatabaseKeptChanging) when the database changed between the two reads `attempts` times
    in a row, unless `allow_changes`; the manifest then says which collections changed.
    """
    if out.exists():
        raise BackupError(f"{out} exists already: choose another --out")
    if database not in client.list_database_names():
        raise NothingToBackUp(f"there is no database {database} (is the --database-prefix right?)")
    db = _raw(client, database)
    created_at = datetime.now(UTC)
    server = client.server_info()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pharmacy-backup-", dir=out.parent) as work:
        entries, changed = _read_twice(db, Path(work), attempts, pause)
        if not entries:
            raise NothingToBackUp(f"{database} has no collections: nothing to back up")
        if changed and not allow_changes:
            raise DatabaseKeptChanging(
                f"{database} changed while it was read, {attempts} times in a row "
                f"({', '.join(changed)}). Back up while the platform is idle or with {service} stopped, "
                "or pass --allow-changes to keep a copy whose collections may not match each other."
            )
        fields: dict[str, Any] = {
            "format": FORMAT,
            "service": service,
            "database": database,
            "created_at": created_at,
            "tool_version": tool_version(),
            "server_version": _server_version(server),
            "unchanged_on_second_read": not changed,
            "changed_collections": changed,
            "collections": [e.model_dump() for e in entries],
            "sha256": "",
        }
        draft = Manifest.model_validate(fields).model_dump(mode="json")
        manifest = Manifest.model_validate({**draft, "sha256": digest(draft)})
        partial = out.with_name(f".{out.name}.partial")
        _write_archive(partial, manifest, Path(work))
        os.replace(partial, out)
    return Backup(out, out.stat().st_size, manifest)


def _server_version(build: Mapping[str, Any]) -> str:
    """FerretDB answers as MongoDB of some version and names itself beside it."""
    version = f"MongoDB-compatible {build.get('version', '?')}"
    return f"FerretDB {build['ferretdbVersion']} ({version})" if "ferretdbVersion" in build else version


def _write_archive(path: Path, manifest: Manifest, work: Path) -> None:
    """The manifest first, so `tar -xzOf ARCHIVE manifest.json` finds it at once; then each collection."""
    mtime = int(manifest.created_at.timestamp())

    def member(name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, mtime, 0o644
        return info

    try:
        with tarfile.open(path, "w:gz") as tar:
            body = json.dumps(manifest.model_dump(mode="json"), indent=2).encode()
            tar.addfile(member(MANIFEST, len(body)), io.BytesIO(body))
            for entry in manifest.collections:
                with (work / entry.file).open("rb") as file:
                    tar.addfile(member(entry.file, entry.bytes), file)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


# --- restore --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedArchive:
    """An archive whose every file matched its manifest, unpacked into a folder of our own."""

    path: Path
    manifest: Manifest
    folder: Path

    def documents(self, entry: CollectionEntry) -> Iterator[RawBSONDocument]:
        with (self.folder / entry.file).open("rb") as file:
            yield from bson.decode_file_iter(file, codec_options=RAW)


def _read_manifest(tar: tarfile.TarFile, path: Path) -> Manifest:
    try:
        member = tar.extractfile(MANIFEST)
    except KeyError:
        member = None
    if member is None:
        raise ArchiveRefused(f"{path} holds no {MANIFEST}: not a pharmacy-ops backup")
    try:
        fields = json.loads(member.read())
    except ValueError as exc:
        raise ArchiveRefused(f"{path}: {MANIFEST} is not JSON ({exc})") from exc
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise ArchiveRefused(f"{path}: not a {FORMAT} archive")
    if fields.get("sha256") != digest(fields):
        raise ArchiveRefused(f"{path}: the manifest does not match its checksum; the archive was altered")
    try:
        return Manifest.model_validate(fields)
    except ValidationError as exc:
        raise ArchiveRefused(f"{path}: the manifest is malformed ({exc.error_count()} errors)") from exc


def _unpack(tar: tarfile.TarFile, path: Path, manifest: Manifest, folder: Path) -> None:
    """Copy each collection's file out of the archive, checking its size, count and sha256."""
    expected = {entry.file: entry for entry in manifest.collections}
    unknown = sorted(set(tar.getnames()) - set(expected) - {MANIFEST})
    if unknown:
        raise ArchiveRefused(f"{path} holds files its manifest does not list: {', '.join(unknown)}")
    for entry in manifest.collections:
        if not _SAFE_NAME.match(entry.file):
            raise ArchiveRefused(f"{path}: {entry.file!r} is not a file name this tool writes")
        try:
            member = tar.extractfile(entry.file)
        except KeyError:
            member = None
        if member is None:
            raise ArchiveRefused(f"{path} lacks {entry.file}, which its manifest lists")
        hasher = hashlib.sha256()
        with (folder / entry.file).open("wb") as file:
            while chunk := member.read(1 << 20):
                hasher.update(chunk)
                file.write(chunk)
        if hasher.hexdigest() != entry.sha256:
            raise ArchiveRefused(
                f"{path}: {entry.file} does not match its checksum; the archive is corrupt or was altered"
            )
        try:
            with (folder / entry.file).open("rb") as file:
                count = sum(1 for _ in bson.decode_file_iter(file, codec_options=RAW))
        except bson.errors.BSONError as exc:
            raise ArchiveRefused(f"{path}: {entry.file} is not BSON ({exc})") from exc
        if count != entry.count:
            raise ArchiveRefused(
                f"{path}: {entry.file} holds {count} documents, its manifest says {entry.count}"
            )


@contextmanager
def verified(path: Path) -> Iterator[VerifiedArchive]:
    """Open an archive and check it whole (manifest checksum, every file's sha256 and count).

    Raises ArchiveRefused before anything is written anywhere; the unpacked files go when it closes.
    """
    if not path.is_file():
        raise ArchiveRefused(f"no archive at {path}")
    with tempfile.TemporaryDirectory(prefix="pharmacy-restore-") as folder:
        try:
            with tarfile.open(path, "r:gz") as tar:
                manifest = _read_manifest(tar, path)
                _unpack(tar, path, manifest, Path(folder))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ArchiveRefused(f"{path} is not a readable archive ({type(exc).__name__}: {exc})") from exc
        yield VerifiedArchive(path, manifest, Path(folder))


def documents_in(client: MongoClient[dict[str, Any]], database: str) -> dict[str, int]:
    """The collections of a database that hold documents, with their counts."""
    db = client[database]
    names = sorted(n for n in db.list_collection_names() if not n.startswith("system."))
    return {name: n for name in names if (n := db[name].count_documents({}))}


def refuse_unless_empty(database: str, present: Mapping[str, int]) -> None:
    """Raise TargetNotEmpty, saying what the database holds, unless it holds no documents."""
    if RESTORE_MARKER in present:
        raise TargetNotEmpty(
            f"{database} is partly restored: a restore into it was interrupted. "
            "Run the restore again with --force to finish it."
        )
    if present:
        held = ", ".join(f"{name}: {count}" for name, count in present.items())
        raise TargetNotEmpty(
            f"{database} is not empty ({held} documents). A restore goes into an empty database only; "
            "--force drops its collections first."
        )


def restore(
    client: MongoClient[dict[str, Any]], archive: VerifiedArchive, *, database: str, force: bool = False
) -> Restored:
    """Write a verified archive into `database`, which must hold no documents unless `force`.

    `force` drops every collection of the target first. A failure once writing has begun raises
    RestoreIncomplete; the database keeps a `_restore_in_progress` collection until a restore ends.
    """
    present = documents_in(client, database)
    db = _raw(client, database)
    if not force:
        refuse_unless_empty(database, present)
    manifest = archive.manifest
    written: list[str] = []
    step = "dropping the target's collections"
    try:
        if force:
            for name in db.list_collection_names():
                if not name.startswith("system."):
                    db.drop_collection(name)
        step = "marking the database as being restored"
        db[RESTORE_MARKER].insert_one(
            RawBSONDocument(
                bson.encode({"_id": "restore", "archive": str(archive.path), "started_at": datetime.now(UTC)})
            )
        )
        existing = set(db.list_collection_names())
        for entry in manifest.collections:
            step = f"writing {entry.name}"
            if entry.name not in existing:
                db.create_collection(entry.name, **json_util.loads(json.dumps(entry.options)))
            _insert(db, entry.name, archive.documents(entry))
            if entry.indexes:
                step = f"creating the indexes of {entry.name}"
                db[entry.name].create_indexes([_index(spec) for spec in entry.indexes])
            written.append(entry.name)
        step = "reading everything back"
        for entry in manifest.collections:
            if _read_collection(db, entry.name, len) != (entry.count, entry.sha256):
                raise BackupError(f"{entry.name} reads back different from the archive")
        db.drop_collection(RESTORE_MARKER)
    except (PyMongoError, BackupError, OSError) as exc:
        raise RestoreIncomplete(
            f"restore into {database} stopped while {step}: {type(exc).__name__}: {exc}. "
            f"The database is PARTLY restored (done: {', '.join(written) or 'nothing'}). "
            "Fix the cause and run the same restore again with --force to finish it."
        ) from exc
    return Restored(database, manifest, present)


def _insert(db: Database[RawBSONDocument], name: str, documents: Iterator[RawBSONDocument]) -> None:
    batch: list[RawBSONDocument] = []
    for document in documents:
        batch.append(document)
        if len(batch) == BATCH:
            db[name].insert_many(batch, ordered=True)
            batch = []
    if batch:
        db[name].insert_many(batch, ordered=True)


def _index(spec: Mapping[str, Any]) -> IndexModel:
    options = json_util.loads(json.dumps(dict(spec)))
    keys: Mapping[str, Any] = options.pop("key")
    return IndexModel(list(keys.items()), **options)


def check_targets(archives: Sequence[VerifiedArchive], databases: Sequence[str]) -> None:
    """Two archives must not go into one database."""
    seen: dict[str, Path] = {}
    for archive, database in zip(archives, databases, strict=True):
        if database in seen:
            raise ArchiveRefused(f"{seen[database]} and {archive.path} would both restore into {database}")
        seen[database] = archive.path
