"""The event journal on the real broker and store: the archiver keeps every event once, and
`pharmacy-ops events` and `timeline` read it back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, prescription_uploaded
from typer.testing import CliRunner

from contracts.base import Envelope
from contracts.events import OrderCreated
from operations.cli import app
from operations.journal import Archiver, JournalSettings
from order_service.app import Settings, build
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]


@pytest_asyncio.fixture
async def archiver(namespace: Namespace) -> AsyncIterator[Archiver]:
    settings = namespace.settings(JournalSettings, journal_database=f"{namespace.name}_journal")
    running = Archiver(settings)
    await running.start()
    yield running
    await running.stop()


async def ops(namespace: Namespace, *args: str) -> Any:
    env = {
        "MONGODB_URL": namespace.backing.mongodb_url,
        "JOURNAL_DATABASE": f"{namespace.name}_journal",
        "RABBITMQ_URL": namespace.backing.rabbitmq_url,
        "BROKER_NAMESPACE": namespace.name,
    }
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env, terminal_width=200)


async def test_every_event_is_journalled_once_and_read_back_as_a_timeline(
    namespace: Namespace, probe: EventProbe, running: Start, archiver: Archiver
) -> None:
    await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    sent = await probe.publish(upload, correlation_id=upload.order_id)
    created = await probe.wait_for(OrderCreated, correlation_id=upload.order_id)
    await probe.publish(upload, correlation_id=upload.order_id, envelope=sent)  # a duplicate

    journalled = await eventually(
        lambda: archiver.journal.find(correlation_id=upload.order_id),
        lambda found: len(found) == 2 and archiver.recorded >= 2,
        what="the upload and OrderCreated in the journal",
    )
    assert [d["_id"] for d in journalled] == [str(sent.event_id), str(created.event_id)]
    assert journalled[1]["publisher"] == "order_service"
    assert Envelope.model_validate(journalled[1]["envelope"]) == created

    as_json = await ops(namespace, "events", "--type", "OrderCreated", "--json")
    shown = await ops(namespace, "timeline", upload.order_id)
    missing = await ops(namespace, "timeline", "no-such-order")

    assert as_json.exit_code == 0, as_json.output
    [event] = [e for e in json.loads(as_json.output) if e["correlation_id"] == upload.order_id]
    assert (event["event_id"], event["publisher"]) == (str(created.event_id), "order_service")
    assert shown.exit_code == 0, shown.output
    assert shown.output.index("PrescriptionUploaded") < shown.output.index("OrderCreated")
    assert "Not ended: the saga stopped after OrderCreated" in shown.output
    assert missing.exit_code == 1
    assert "No events for no-such-order" in missing.output


async def test_events_filters_by_time(namespace: Namespace, probe: EventProbe, archiver: Archiver) -> None:
    upload = prescription_uploaded()
    sent = await probe.publish(upload, correlation_id=upload.order_id)
    await eventually(
        lambda: archiver.journal.find(correlation_id=upload.order_id), bool, what="the upload journalled"
    )
    at = sent.occurred_at.isoformat()

    before = await ops(namespace, "events", "--until", at, "--json")
    from_then = await ops(namespace, "events", "--since", at, "--json")
    bad = await ops(namespace, "events", "--since", "yesterday")

    assert json.loads(before.output) == []
    assert [e["event_id"] for e in json.loads(from_then.output)] == [str(sent.event_id)]
    assert bad.exit_code == 2
    assert "not an ISO 8601 time" in bad.output


async def test_replaying_twice_changes_nothing_and_replay_rebuilds_a_lost_order(
    namespace: Namespace, probe: EventProbe, running: Start, archiver: Archiver
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    await probe.publish(upload, correlation_id=upload.order_id)
    await probe.wait_for(OrderCreated, correlation_id=upload.order_id)
    await eventually(
        lambda: archiver.journal.find(correlation_id=upload.order_id),
        lambda found: len(found) == 2,
        what="the saga so far in the journal",
    )
    orders = service.db["orders"]
    # Once its OrderCreated has left the outbox, the order is as it stays.
    before = await eventually(
        lambda: orders.find_one({"_id": upload.order_id}),
        lambda doc: not doc.get("outbox") and "outbox_since" not in doc,
        what="the order's outbox to empty",
    )
    replay = ("replay", "--to", "order_service", "--correlation-id", upload.order_id)

    dry = await ops(namespace, *replay, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would deliver 1 events to order_service: {'PrescriptionUploaded': 1}" in dry.output
    assert "left out, order_service does not subscribe to them: {'OrderCreated': 1}" in dry.output

    settled = service.events.settled
    for _ in range(2):
        sent = await ops(namespace, *replay)
        assert sent.exit_code == 0, sent.output
        assert "delivered 1 events to order_service" in sent.output
    await eventually(lambda: _settled(service), lambda n: n >= settled + 2, what="both replays handled")
    assert await orders.find_one({"_id": upload.order_id}) == before  # applied already: nothing changed

    await orders.delete_one({"_id": upload.order_id})  # the order is lost
    rebuilt = await ops(namespace, *replay)

    assert rebuilt.exit_code == 0, rebuilt.output
    again = await eventually(
        lambda: orders.find_one({"_id": upload.order_id}),
        lambda doc: doc is not None,
        what="the order rebuilt",
    )
    assert (again["status"], again["prescription_id"], again["patient_id"]) == (
        "PENDING",
        upload.prescription_id,
        upload.patient_id,
    )


async def _settled(service: Service) -> int:
    return service.events.settled
