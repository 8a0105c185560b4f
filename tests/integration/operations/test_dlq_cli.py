"""`pharmacy-ops dlq` on the real broker: list, show and redrive what a running service dead-lettered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, dead_letters, eventually, prescription_uploaded
from typer.testing import CliRunner

from contracts import topology
from contracts.base import Envelope
from contracts.events import OrderCreated, PrescriptionUploaded
from operations.cli import app
from order_service.app import Settings, build
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]


async def ops(namespace: Namespace, *args: str) -> Any:
    """Run the CLI as an operator would (in a thread: it runs its own event loop)."""
    env = {"RABBITMQ_URL": namespace.backing.rabbitmq_url, "BROKER_NAMESPACE": namespace.name}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result


async def poisoned(
    namespace: Namespace, probe: EventProbe, running: Start
) -> tuple[Service, PrescriptionUploaded, bytes]:
    """A running order service and one upload it dead-lettered, because its payload was broken."""
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    broken = Envelope.wrap(upload, correlation_id=upload.order_id).model_dump(mode="json")
    broken["payload"]["lines"] = "two boxes"
    body = json.dumps(broken).encode()
    await probe.publish_raw(body, PrescriptionUploaded.ROUTING_KEY, message_id="upload-1")
    queue = topology.event_queue(namespace.name, "order_service")
    await eventually(lambda: dead_letters(namespace.backing.rabbitmq_url, queue), bool, what="a dead letter")
    return service, upload, body


async def test_list_and_show_say_what_failed_and_leave_it_in_place(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    await poisoned(namespace, probe, running)

    listed = await ops(namespace, "dlq", "list", "--json")
    shown = await ops(namespace, "dlq", "show", "upload-1")

    assert listed.exit_code == 0, listed.output
    [letter] = json.loads(listed.output)
    assert (letter["service"], letter["message_id"], letter["error_type"]) == (
        "order_service",
        "upload-1",
        "ValidationError",
    )
    assert "lines" in letter["error"]
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["body"]["payload"]["lines"] == "two boxes"
    assert detail["headers"]["x-failed-service"] == "order_service"
    queue = topology.event_queue(namespace.name, "order_service")
    assert len(await dead_letters(namespace.backing.rabbitmq_url, queue)) == 1  # still there


async def test_redrive_with_a_fixed_payload_gets_the_order_made_and_empties_the_queue(
    namespace: Namespace, probe: EventProbe, running: Start, tmp_path: Path
) -> None:
    service, upload, _ = await poisoned(namespace, probe, running)
    fixed = tmp_path / "fixed.json"
    fixed.write_text(Envelope.wrap(upload, correlation_id=upload.order_id).model_dump_json())

    dry = await ops(namespace, "dlq", "redrive", "-m", "upload-1", "--payload", str(fixed), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would send upload-1" in dry.output
    queue = topology.event_queue(namespace.name, "order_service")
    assert len(await dead_letters(namespace.backing.rabbitmq_url, queue)) == 1

    sent = await ops(namespace, "dlq", "redrive", "-m", "upload-1", "--payload", str(fixed))

    assert sent.exit_code == 0, sent.output
    await probe.wait_for(OrderCreated, correlation_id=upload.order_id)
    assert await dead_letters(namespace.backing.rabbitmq_url, queue) == []
    assert await service.db["orders"].count_documents({"_id": upload.order_id}) == 1


async def test_redrive_as_it_was_once_the_cause_is_gone(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    # The same upload, dead-lettered while the service had no handler for it, succeeds when redriven.
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    route = service.events.routes.pop(PrescriptionUploaded.TYPE)
    await probe.publish(upload, correlation_id=upload.order_id)
    queue = topology.event_queue(namespace.name, "order_service")
    await eventually(lambda: dead_letters(namespace.backing.rabbitmq_url, queue), bool, what="a dead letter")
    service.events.routes[PrescriptionUploaded.TYPE] = route  # the fix is deployed

    sent = await ops(namespace, "dlq", "redrive", "--all", "--service", "order_service")

    assert sent.exit_code == 0, sent.output
    await probe.wait_for(OrderCreated, correlation_id=upload.order_id)
    assert await dead_letters(namespace.backing.rabbitmq_url, queue) == []


async def unbind_partitions(namespace: Namespace, service: str) -> None:
    """The service's partition exchange as it is declared, but with no queue bound: nothing it is sent
    reaches a queue (as when the queues a dead letter came from are gone)."""
    name = topology.partition_exchange(namespace.name, service)
    connection = await aio_pika.connect(namespace.backing.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(name)
        await channel.declare_exchange(
            name,
            aio_pika.ExchangeType.X_CONSISTENT_HASH,
            durable=True,
            arguments={"hash-header": topology.PARTITION_HEADER},
        )


async def test_a_redrive_no_queue_takes_leaves_the_dead_letter_where_it_is(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    await poisoned(namespace, probe, running)
    await unbind_partitions(namespace, "order_service")

    sent = await ops(namespace, "dlq", "redrive", "-m", "upload-1")

    assert sent.exit_code == 1, sent.output
    assert "upload-1 not sent: no queue took the copy (NO_ROUTE)" in sent.output
    assert "1 not sent" in sent.output
    queue = topology.event_queue(namespace.name, "order_service")
    [kept] = await dead_letters(namespace.backing.rabbitmq_url, queue)
    assert kept.message_id == "upload-1"


async def test_redrive_refuses_what_it_cannot_do(namespace: Namespace) -> None:
    nothing_named = await ops(namespace, "dlq", "redrive")
    unknown = await ops(namespace, "dlq", "list", "--service", "shipping_service")

    assert nothing_named.exit_code == 2
    assert "--all" in nothing_named.output
    assert unknown.exit_code == 2
    assert "unknown service shipping_service" in unknown.output
