"""`pharmacy-ops`: the operator's command line.

    pharmacy-ops dlq list                     what sits in the dead-letter queues, and why
    pharmacy-ops dlq show MESSAGE_ID          one dead letter: headers and body
    pharmacy-ops dlq redrive --all            send them back to the service that failed them
    pharmacy-ops events --type OrderCancelled  the journal, filtered
    pharmacy-ops timeline ORDER_ID            one order's saga across every service
    pharmacy-ops replay --to order_service    journalled events again (idempotent consumers)
    pharmacy-ops rebuild order_service        a lost database back, from the journal
    pharmacy-ops backup order_service         one service's database into a compressed archive
    pharmacy-ops restore ARCHIVE              an archive back, into an empty database
    pharmacy-ops rotate-keys --all            patients' data sealed again under the current key

It talks to the broker named by RABBITMQ_URL, in the namespace BROKER_NAMESPACE (as the services do).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from contracts import topology
from operations import backup as backups
from operations import dead_letters, rotation
from operations import replay as replaying
from operations.journal import Journal, JournalSettings
from operations.timeline import saga_timeline
from service_runtime import store
from service_runtime.crypto import FieldCipher
from service_runtime.launcher import database_name
from service_runtime.settings import RuntimeSettings

app = typer.Typer(
    help="Operate the pharmacy platform. Reads RABBITMQ_URL, BROKER_NAMESPACE, MONGODB_URL and "
    "JOURNAL_DATABASE as the services do.",
    no_args_is_help=True,
)
dlq = typer.Typer(
    help="Dead-lettered messages: see why they failed, and send them back once the cause is fixed.",
    no_args_is_help=True,
)
app.add_typer(dlq, name="dlq")
console = Console()

Service = Annotated[
    list[str] | None,
    typer.Option("--service", "-s", help="Only this service's queue (repeatable). Default: all."),
]
Namespace = Annotated[
    str | None, typer.Option(help="Broker namespace. Default: BROKER_NAMESPACE or 'pharmacy'.")
]
AsJson = Annotated[bool, typer.Option("--json", help="JSON for scripts instead of a table.")]


def _broker(namespace: str | None) -> tuple[str, str]:
    settings = RuntimeSettings()
    return settings.rabbitmq_url, namespace or settings.broker_namespace


def _count(n: int) -> str:
    return f"{n} dead letter{'' if n == 1 else 's'}"


def _services(chosen: list[str] | None) -> list[str]:
    unknown = sorted(set(chosen or ()) - set(dead_letters.SERVICES))
    if unknown:
        raise typer.BadParameter(
            f"unknown service {', '.join(unknown)}; one of {', '.join(dead_letters.SERVICES)}"
        )
    return list(chosen or dead_letters.SERVICES)


@dlq.command("list")
def list_dead_letters(service: Service = None, namespace: Namespace = None, as_json: AsJson = False) -> None:
    """List dead letters: service, message id, type, the error, when, after how many attempts."""
    url, ns = _broker(namespace)
    letters = asyncio.run(dead_letters.read(url, ns, _services(service)))
    if as_json:
        typer.echo(json.dumps([letter.summary() for letter in letters], indent=2))
        return
    if not letters:
        console.print("No dead letters.")
        return
    table = Table("service", "message id", "type", "error (first line)", "failed at (UTC)", "tries")
    table.columns[1].no_wrap = True
    for letter in letters:
        table.add_row(
            letter.service,
            letter.message_id,
            letter.type,
            f"{letter.error_type}: {letter.error.splitlines()[0] if letter.error else ''}"[:70],
            letter.failed_at[:19].replace("T", " "),
            str(letter.attempts),
        )
    console.print(table)
    console.print(f"{_count(len(letters))}. `pharmacy-ops dlq show ID` shows one whole.")


@dlq.command("show")
def show_dead_letter(
    message_id: Annotated[str, typer.Argument(help="The message id `dlq list` shows.")],
    service: Service = None,
    namespace: Namespace = None,
) -> None:
    """Show one dead letter whole: its headers (the error among them) and its body."""
    url, ns = _broker(namespace)
    found = [
        m for m in asyncio.run(dead_letters.read(url, ns, _services(service))) if m.message_id == message_id
    ]
    if not found:
        console.print(f"No dead letter with message id {message_id}.")
        raise typer.Exit(1)
    for letter in found:
        try:
            body: object = json.loads(letter.body)
        except ValueError:
            body = letter.body.decode(errors="replace")
        typer.echo(
            json.dumps({**letter.summary(), "headers": letter.headers, "body": body}, indent=2, default=str)
        )


@dlq.command("redrive")
def redrive_dead_letters(
    message_id: Annotated[
        list[str] | None, typer.Option("--message-id", "-m", help="Only this message (repeatable).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter of the chosen services.")] = False,
    payload: Annotated[
        Path | None,
        typer.Option(help="Send this file's content instead of the original body (one --message-id)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be sent; send nothing.")] = False,
    service: Service = None,
    namespace: Namespace = None,
) -> None:
    """Send dead letters back to the queue of the service that failed them, as they were or fixed.

    Consumers are idempotent: a message that was applied after all changes nothing the second time.
    """
    if not message_id and not all_:
        raise typer.BadParameter("name messages with --message-id, or pass --all")
    body = payload.read_bytes() if payload is not None else None
    if body is not None:
        try:
            json.loads(body)
        except ValueError as exc:
            raise typer.BadParameter(f"{payload} is not JSON: {exc}") from exc
    url, ns = _broker(namespace)
    try:
        done = asyncio.run(
            dead_letters.redrive(
                url, ns, _services(service), message_ids=message_id or (), body=body, dry_run=dry_run
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    verb = "would send" if dry_run else "sent"
    sent = [item for item in done if not item.error]
    for item in done:
        fixed = " with the new payload" if item.replaced_body else ""
        if item.error:
            console.print(f"{item.message_id} {item.error}")
        else:
            console.print(f"{verb} {item.message_id} back to {item.queue}{fixed}")
    console.print(f"{_count(len(sent))} {'to redrive (dry run)' if dry_run else 'redriven'}.")
    if len(sent) < len(done):
        console.print(f"{_count(len(done) - len(sent))} not sent: still in the dead-letter queues.")
        raise typer.Exit(1)
    if message_id and len(done) < len(set(message_id)):
        console.print("Some message ids were not found in the dead-letter queues.")
        raise typer.Exit(1)


# --- the journal ---------------------------------------------------------------------------------


def _journal_find(**filters: Any) -> list[dict[str, Any]]:
    async def find() -> list[dict[str, Any]]:
        client, journal = Journal.connect(JournalSettings())
        try:
            return await journal.find(**filters)
        finally:
            await client.close()

    return asyncio.run(find())


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{name}: {value!r} is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _jsonable(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc["event_id"] = doc.pop("_id")
    plain: dict[str, Any] = json.loads(
        json.dumps(doc, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    )
    return plain


@app.command("events")
def list_events(
    event_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Event type (repeatable).")
    ] = None,
    correlation_id: Annotated[str | None, typer.Option(help="One saga: the order id.")] = None,
    service: Annotated[str | None, typer.Option(help="Only events this service published.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601; UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 200,
    as_json: AsJson = False,
) -> None:
    """Events from the journal, filtered, oldest first. Reads MONGODB_URL and JOURNAL_DATABASE."""
    found = _journal_find(
        types=event_type or (),
        correlation_id=correlation_id,
        publisher=service,
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        limit=limit,
    )
    if as_json:
        typer.echo(json.dumps([_jsonable(doc) for doc in found], indent=2))
        return
    table = Table("occurred at (UTC)", "type", "published by", "correlation id", "event id")
    for doc in found:
        table.add_row(
            doc["occurred_at"].isoformat(timespec="milliseconds")[:23].replace("T", " "),
            doc["type"],
            doc.get("publisher") or "?",
            doc["correlation_id"],
            doc["_id"],
        )
    console.print(table)
    console.print(f"{len(found)} event{'' if len(found) == 1 else 's'}.")


@app.command("timeline")
def timeline(
    order_id: Annotated[str, typer.Argument(help="The order id (the saga's correlation id).")],
) -> None:
    """One order's saga across every service, in order, with the time between steps and where it ended."""
    saga = saga_timeline(order_id, _journal_find(correlation_id=order_id))
    if not saga.steps:
        console.print(f"No events for {order_id} in the journal.")
        raise typer.Exit(1)
    table = Table("at (UTC)", "+ms", "event", "published by", "detail")
    for step in saga.steps:
        table.add_row(
            step.occurred_at.isoformat(timespec="milliseconds")[11:23],
            str(step.step_ms),
            step.type,
            step.publisher,
            step.detail[:60],
        )
    console.print(table)
    if saga.ended:
        console.print(f"Ended {saga.ended} after {saga.total_ms} ms.")
    else:
        last = saga.steps[-1].type
        waits = f"{saga.waiting}; " if saga.waiting else ""
        console.print(f"Not ended: the saga stopped after {last} ({waits}{saga.total_ms} ms so far).")


@app.command("replay")
def replay_events(
    to: Annotated[
        str | None, typer.Option(help="Only to this service's event queue (the types it subscribes to).")
    ] = None,
    to_all: Annotated[bool, typer.Option("--all", help="Through the exchange, to every subscriber.")] = False,
    event_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Event type (repeatable).")
    ] = None,
    correlation_id: Annotated[str | None, typer.Option(help="One saga: the order id.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601; UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be sent; send nothing.")
    ] = False,
    namespace: Namespace = None,
) -> None:
    """Send journalled events again, oldest first, keeping their event ids.

    Consumers are idempotent: what a service already applied it only acknowledges, so replaying the
    same events twice changes nothing. Replay into a service whose data was lost to rebuild it.
    """
    if (to is None) == (not to_all):
        raise typer.BadParameter("say where: --to SERVICE, or --all")
    if to is not None:
        _services([to])
    found = _journal_find(
        types=event_type or (),
        correlation_id=correlation_id,
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        as_delivered=True,
    )
    _send(found, to=to, namespace=namespace, dry_run=dry_run)


def _send(
    found: list[dict[str, Any]],
    *,
    to: str | None,
    namespace: str | None,
    dry_run: bool,
    rebuild: bool = False,
) -> None:
    """Replay with a progress bar, then say what went where and what was left out."""
    url, ns = _broker(namespace)
    going, _ = replaying.plan(found, to, rebuild=rebuild)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("replaying", total=len(going))
        summary = asyncio.run(
            replaying.replay(
                url, ns, found, to=to, dry_run=dry_run, rebuild=rebuild, progress=lambda: bar.advance(task)
            )
        )
    verb = "would deliver" if dry_run else "delivered"
    where = f"to {to}" if to else "to every subscriber"
    console.print(f"{verb} {sum(summary.delivered.values())} events {where}: {dict(summary.delivered)}")
    if summary.skipped:
        console.print(f"left out, {to} does not subscribe to them: {dict(summary.skipped)}")


@app.command("rebuild")
def rebuild(
    service: Annotated[
        str, typer.Argument(help=f"The service to rebuild: {' or '.join(topology.REBUILT_FROM_OWN)}.")
    ],
    since: Annotated[
        str | None,
        typer.Option(help="Only events from this time (ISO 8601): when the backup you restored was taken."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be sent; send nothing.")
    ] = False,
    namespace: Namespace = None,
) -> None:
    """Bring a service whose database was lost back to its state, by replaying the journal into it.

    Start the service on its empty (or restored) database first. It applies every event it
    subscribes to, and its own events that record what it decided on a command, in the order it first
    took them, and publishes nothing: what it would publish is in the journal already. Consumers are
    idempotent, so rebuilding twice, or over a restored backup, changes nothing more. The journal must
    reach back to the first event (JOURNAL_RETENTION_DAYS), or to the backup given with --since.

    inventory_service, payment_service and delivery_service keep what only commands bring (catalogue,
    stock, payment methods, couriers): restore those from a backup.
    """
    if service not in topology.REBUILT_FROM_OWN:
        console.print(
            f"[red]{service} cannot be rebuilt from the journal[/red]: it keeps what only commands bring. "
            f"Restore it from a backup. Rebuildable: {', '.join(topology.REBUILT_FROM_OWN)}."
        )
        raise typer.Exit(1)
    found = _journal_find(since=_when(since, "--since"), as_delivered=True)
    if not found:
        console.print("The journal holds no events to rebuild from.")
        raise typer.Exit(1)
    _send(found, to=service, namespace=namespace, dry_run=dry_run, rebuild=True)


# --- backups -------------------------------------------------------------------------------------

errors = Console(stderr=True)
# Whose database a backup or a key rotation reads; none with --all.
ServiceDatabase = Annotated[
    str | None,
    typer.Argument(
        metavar="SERVICE", help=f"Whose database: {', '.join(backups.TARGETS)}.", show_default=False
    ),
]
DatabasePrefix = Annotated[
    str,
    typer.Option(help="Databases are named PREFIX_orders, PREFIX_inventory, ... as `make run` names them."),
]


def _fail(message: str) -> NoReturn:
    errors.print(Text(message, style="red"))
    raise typer.Exit(1)


def _archive_path(out: Path | None, service: str, at: datetime, *, every: bool) -> Path:
    """`--out` ending in .tar.gz names the archive (one SERVICE); anything else is a folder for it."""
    if out is not None and out.name.endswith(".tar.gz"):
        if every:
            raise typer.BadParameter("with --all, --out is a folder: one archive per database goes in it")
        return out
    return (out or Path("backups")) / backups.default_archive_name(service, at)


def _show_backup(item: backups.Backup) -> None:
    manifest = item.manifest
    console.print(_collections_table(manifest, f"{manifest.service}: {manifest.database}"))
    console.print(f"{manifest.documents} documents -> {item.path} ({decimal(item.size)})")
    if manifest.changed_collections:
        changed = ", ".join(manifest.changed_collections)
        console.print(Text(f"Kept although it changed while being read: {changed}", style="yellow"))
    else:
        console.print("Read twice, unchanged in between.")


def _collections_table(manifest: backups.Manifest, title: str) -> Table:
    table = Table("collection", "documents", "indexes", "size", "sha256", title=title, title_justify="left")
    for entry in manifest.collections:
        table.add_row(
            entry.name, str(entry.count), str(len(entry.indexes)), decimal(entry.bytes), entry.sha256[:16]
        )
    return table


@app.command("backup")
def back_up(
    service: ServiceDatabase = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every service's database and the journal's, an archive each.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The archive's file (ending in .tar.gz), or else a folder for it. Default: backups/"
        ),
    ] = None,
    database_prefix: DatabasePrefix = "pharmacy",
    database: Annotated[
        str | None, typer.Option(help="Back up the database of this name instead (one SERVICE).")
    ] = None,
    allow_changes: Annotated[
        bool,
        typer.Option(
            "--allow-changes",
            help="Keep the copy even if the database kept changing while it was read (see above).",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Copy a service's database into one compressed archive (.tar.gz) with a manifest.

    The archive holds manifest.json (service, database, time, tool and server versions, and for each
    collection its count, indexes and sha256) and each collection's documents as BSON. Restore it
    with `pharmacy-ops restore ARCHIVE`. Reads MONGODB_URL.

    The store has no snapshots, so the database is read twice and the copy is kept only if nothing
    changed in between (it tries three times). Back up while the platform is idle, or with the
    service stopped.
    """
    if every == (service is not None):
        raise typer.BadParameter("name one SERVICE, or pass --all")
    if service is not None and service not in backups.TARGETS:
        raise typer.BadParameter(f"unknown service {service}; one of {', '.join(backups.TARGETS)}")
    if database is not None and every:
        raise typer.BadParameter("--database names one database: use it with one SERVICE, not --all")
    at = datetime.now(UTC)
    chosen = list(backups.TARGETS) if service is None else [service]
    done: list[backups.Backup] = []
    failed = False
    client = backups.connect(RuntimeSettings().mongodb_url)
    try:
        for name in chosen:
            try:
                done.append(
                    backups.back_up(
                        client,
                        service=name,
                        database=database or database_name(name, database_prefix),
                        out=_archive_path(out, name, at, every=every),
                        allow_changes=allow_changes,
                    )
                )
                if not as_json:
                    _show_backup(done[-1])
            except backups.NothingToBackUp as exc:
                if not every:
                    _fail(str(exc))
                errors.print(Text(f"skipped {name}: {exc}", style="yellow"))
            except backups.BackupError as exc:
                if not every:
                    _fail(str(exc))
                errors.print(Text(f"{name}: {exc}", style="red"))
                failed = True
    finally:
        client.close()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"archive": str(b.path), "bytes": b.size, "manifest": b.manifest.model_dump(mode="json")}
                    for b in done
                ],
                indent=2,
            )
        )
    if failed or not done:
        _fail("Some databases were not backed up." if done else "Nothing was backed up.")


@app.command("restore")
def restore(
    archives: Annotated[
        list[Path],
        typer.Argument(
            metavar="ARCHIVE", help="Archives `pharmacy-ops backup` wrote (one or more).", show_default=False
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="If the target holds documents, drop its collections first.")
    ] = False,
    database: Annotated[
        str | None,
        typer.Option(
            help="Into the database of this name instead of the one it was taken from (one ARCHIVE)."
        ),
    ] = None,
    database_prefix: Annotated[
        str | None,
        typer.Option(
            help="Into PREFIX_orders, PREFIX_inventory, ... instead of the databases they were taken from."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Write archives back, each into an empty database: the one it was taken from, unless told otherwise.

    Every archive is checked whole first (its manifest's and every collection's sha256, and the
    counts): a corrupt or altered archive is refused and nothing is written. A database that holds
    documents is refused unless --force, which drops its collections first. Indexes come back from
    the manifest, and everything is read back against the checksums at the end. Stop the service
    first, so that it writes nothing meanwhile. Reads MONGODB_URL.

    If a restore fails midway it says so, and the database is left marked as partly restored: run
    the same restore again with --force to finish it.
    """
    if database is not None and (len(archives) > 1 or database_prefix is not None):
        raise typer.BadParameter(
            "--database names one database: use it with one ARCHIVE, without --database-prefix"
        )
    client = backups.connect(RuntimeSettings().mongodb_url)
    try:
        with ExitStack() as opened:
            try:
                checked = [opened.enter_context(backups.verified(path)) for path in archives]
                targets = [
                    database
                    or (database_name(a.manifest.service, database_prefix) if database_prefix else None)
                    or a.manifest.database
                    for a in checked
                ]
                backups.check_targets(checked, targets)
                if not force:
                    for target in targets:
                        backups.refuse_unless_empty(target, backups.documents_in(client, target))
                restored = [
                    backups.restore(client, archive, database=target, force=force)
                    for archive, target in zip(checked, targets, strict=True)
                ]
            except backups.BackupError as exc:
                _fail(str(exc))
    finally:
        client.close()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "archive": str(archive.path),
                        "database": done.database,
                        "service": done.manifest.service,
                        "taken_at": done.manifest.created_at.isoformat(),
                        "collections": {c.name: c.count for c in done.manifest.collections},
                        "replaced": done.replaced,
                    }
                    for archive, done in zip(checked, restored, strict=True)
                ],
                indent=2,
            )
        )
        return
    for archive, done in zip(checked, restored, strict=True):
        manifest = done.manifest
        console.print(_collections_table(manifest, f"{manifest.service}: {done.database}"))
        console.print(
            f"{manifest.documents} documents from {archive.path} (taken "
            f"{manifest.created_at.isoformat(timespec='seconds')}) -> {done.database}; "
            "read back, matching the archive's checksums."
        )
        if done.replaced:
            console.print(f"Replaced what it held (--force): {done.replaced}")


# --- field encryption keys -----------------------------------------------------------------------


@app.command("rotate-keys")
def rotate_keys(
    service: ServiceDatabase = None,
    every: Annotated[bool, typer.Option("--all", help="Every service's database and the journal's.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be sealed again; write nothing.")
    ] = False,
    database_prefix: DatabasePrefix = "pharmacy",
) -> None:
    """Seal patients' data again under the current key, so that older keys can be removed.

    Run it after FIELD_ENCRYPTION_KEY_ID names a new key (the older ones still listed in
    FIELD_ENCRYPTION_KEYS) and every service was restarted with it. A value a service writes
    meanwhile is never overwritten: it was sealed with the new key already. Once every database
    shows nothing left to seal again, remove the older keys. Reads MONGODB_URL and the keys.
    """
    if every == (service is not None):
        raise typer.BadParameter("name one SERVICE, or pass --all")
    if service is not None and service not in backups.TARGETS:
        raise typer.BadParameter(f"unknown service {service}; one of {', '.join(backups.TARGETS)}")
    settings = RuntimeSettings()
    cipher = FieldCipher.from_settings(settings)
    chosen = list(backups.TARGETS) if service is None else [service]

    async def rotate_all() -> dict[str, list[rotation.Rotated]]:
        client = store.connect(settings)
        try:
            return {
                name: await rotation.rotate(
                    client[database_name(name, database_prefix)], cipher, dry_run=dry_run
                )
                for name in chosen
            }
        finally:
            await client.close()

    done = asyncio.run(rotate_all())
    verb = "to seal again" if dry_run else "sealed again"
    table = Table("database", "collection", "documents", verb, f"under {cipher.current} already", "left")
    for name, counts in done.items():
        for count in counts:
            table.add_row(
                database_name(name, database_prefix),
                count.collection,
                str(count.documents),
                str(count.resealed),
                str(count.current),
                str(count.left),
            )
    console.print(table)
    resealed = sum(c.resealed for counts in done.values() for c in counts)
    left = sum(c.left for counts in done.values() for c in counts)
    console.print(f"{resealed} values {verb} under key {cipher.current}.")
    if left:
        _fail(f"{left} values kept changing while being sealed again: run rotate-keys again.")


if __name__ == "__main__":
    app()
