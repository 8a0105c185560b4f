"""The shared runtime on a real broker and store: dead-lettering, the outbox after a crash, and RPC."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, dead_letters, eventually, prescription_uploaded, rpc_client

from contracts import topology
from contracts.base import Envelope
from contracts.commands import GetOrder, OrderView
from contracts.events import (
    OrderCreated,
    PrescriptionUploaded,
    ReservedLine,
    StockReserved,
)
from order_service import domain
from order_service.app import Settings, build
from order_service.store import orders
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, ServiceUnavailable
from service_runtime.service import Service, wrap

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]


NOT_AN_ENVELOPE = b"{this is not json"
INVALID_PAYLOAD = Envelope(
    type=PrescriptionUploaded.TYPE, correlation_id="bad-payload", payload={"order_id": "o-1", "lines": "many"}
)
UNKNOWN_TYPE = Envelope(type="PrescriptionFaxed", correlation_id="unknown-type", payload={})


@pytest.mark.parametrize(
    ("body", "error_type", "error_mentions"),
    [
        (NOT_AN_ENVELOPE, "ValidationError", "Invalid JSON"),
        (INVALID_PAYLOAD.model_dump_json().encode(), "ValidationError", "prescription_id"),
        (UNKNOWN_TYPE.model_dump_json().encode(), "PermanentFailure", "PrescriptionFaxed"),
    ],
    ids=["not-json", "invalid-payload", "unknown-type"],
)
async def test_bad_message_is_dead_lettered_and_the_queue_keeps_flowing(
    namespace: Namespace,
    probe: EventProbe,
    running: Start,
    body: bytes,
    error_type: str,
    error_mentions: str,
) -> None:
    service = await running(build(namespace.settings(Settings)))
    queue = topology.event_queue(namespace.name, "order_service")

    await probe.publish_raw(body, PrescriptionUploaded.ROUTING_KEY, message_id="poison-1")
    good = prescription_uploaded()
    await probe.publish(good, correlation_id=good.order_id)

    await probe.wait_for(OrderCreated, correlation_id=good.order_id)
    letters = await eventually(
        lambda: dead_letters(namespace.backing.rabbitmq_url, queue),
        lambda found: len(found) > 0,
        what=f"a message in {topology.dead_letter_queue(queue)}",
    )
    assert len(letters) == 1
    letter = letters[0]
    assert letter.body == body
    assert letter.message_id == "poison-1"
    headers: dict[str, Any] = dict(letter.headers)
    assert error_mentions in str(headers["x-error"])
    assert headers["x-error-type"] == error_type
    assert headers["x-failed-service"] == "order_service"
    assert headers["x-original-routing-key"] == PrescriptionUploaded.ROUTING_KEY
    assert await service.db["orders"].count_documents({}) == 1


async def test_message_that_keeps_failing_is_dead_lettered_at_the_delivery_limit(
    namespace: Namespace, probe: EventProbe, running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service_runtime.messaging")
    settings = namespace.settings(Settings)
    await running(build(settings))
    queue = topology.event_queue(namespace.name, "order_service")
    # Stock for an order that never comes: every attempt says "retry later".
    orphan = StockReserved(
        order_id="no-such-order",
        patient_id="patient-1",
        pharmacy_id="pharmacy-1",
        lines=(ReservedLine(medication_id="amoxicillin-500", quantity=1, unit_price_cents=450),),
        total_cents=450,
        payment_method_id="pm-1",
    )

    sent = await probe.publish(orphan, correlation_id="no-such-order")
    letters = await eventually(
        lambda: dead_letters(namespace.backing.rabbitmq_url, queue),
        lambda found: len(found) > 0,
        what=f"the orphan in {topology.dead_letter_queue(queue)}",
    )
    good = prescription_uploaded()
    await probe.publish(good, correlation_id=good.order_id)
    await probe.wait_for(OrderCreated, correlation_id=good.order_id)

    assert len(letters) == 1
    assert letters[0].message_id == str(sent.event_id)
    headers: dict[str, Any] = dict(letters[0].headers)
    assert headers["x-error-type"] == "RetryLater"
    assert "no-such-order" in str(headers["x-error"])
    assert headers["x-attempts"] == settings.delivery_limit
    # Retried with backoff, then dead-lettered by the consumer on its last allowed attempt.
    retries = [r.getMessage() for r in caplog.records if "will retry" in r.getMessage()]
    assert [m.split(" failed")[0] for m in retries if "no-such-order" in m] == [
        f"attempt {n}" for n in range(1, settings.delivery_limit)
    ]


async def test_events_a_crash_left_in_an_outbox_are_published_at_start(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = build(namespace.settings(Settings))
    upload = prescription_uploaded()
    cause = Envelope.wrap(upload, correlation_id=upload.order_id)
    order, events = domain.open_order(upload, utc_now())
    (pending,) = wrap(events, cause, order.id)
    # What a save writes, with the process gone before the relay published: state and outbox together.
    assert await orders(service).add(order, [pending], caused_by=str(cause.event_id))
    await service.db["orders"].update_one(
        {"_id": order.id}, {"$set": {"outbox_since": utc_now() - timedelta(minutes=5)}}
    )

    await running(service)
    published = await probe.wait_for(OrderCreated, correlation_id=upload.order_id)

    assert published.event_id == pending.event_id
    assert published.causation_id == str(cause.event_id)
    assert OrderCreated.model_validate(published.payload).prescription_id == upload.prescription_id
    stored = await eventually(
        lambda: service.db["orders"].find_one({"_id": order.id}),
        lambda doc: doc.get("outbox") == {} and "outbox_since" not in doc,
        what="the published event to leave the outbox",
    )
    assert stored["status"] == "PENDING"

    # The upload the crash never acknowledged comes again: it must not open a second order.
    await probe.publish(upload, correlation_id=upload.order_id, envelope=cause)
    later = prescription_uploaded()
    await probe.publish(later, correlation_id=later.order_id)
    await probe.wait_for(OrderCreated, correlation_id=later.order_id)
    assert await service.db["orders"].count_documents({"prescription_id": upload.prescription_id}) == 1
    assert [e.event_id for e in probe.of_type(OrderCreated) if e.correlation_id == upload.order_id] == [
        pending.event_id
    ]


async def test_asking_for_an_unknown_order_is_refused_as_not_found(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    settings = namespace.settings(Settings)
    await running(build(settings))
    upload = prescription_uploaded()
    await probe.publish(upload, correlation_id=upload.order_id)
    await probe.wait_for(OrderCreated, correlation_id=upload.order_id)

    async with rpc_client(settings) as rpc:
        found = await rpc.ask(GetOrder(owner_id=upload.patient_id, order_id=upload.order_id), OrderView)
        with pytest.raises(CommandRefused) as missing:
            await rpc.ask(GetOrder(owner_id=None, order_id="nope"), OrderView)
        with pytest.raises(CommandRefused) as someone_elses:
            await rpc.ask(GetOrder(owner_id="another-patient", order_id=upload.order_id), OrderView)

    assert isinstance(found, OrderView)
    assert (found.id, found.status, found.lines) == (upload.order_id, "PENDING", upload.lines)
    assert missing.value.code == "not_found"
    assert someone_elses.value.code == "not_found"


async def test_asking_a_service_that_never_started_is_unavailable_at_once(namespace: Namespace) -> None:
    settings = namespace.settings(Settings, rpc_timeout_seconds=0.5)
    loop = asyncio.get_running_loop()

    async with rpc_client(settings) as rpc:
        started = loop.time()
        with pytest.raises(ServiceUnavailable):
            await rpc.ask(GetOrder(owner_id=None, order_id="nope"), OrderView)
        elapsed = loop.time() - started

    assert elapsed < 3


async def test_asking_a_stopped_service_is_unavailable_after_the_timeout(namespace: Namespace) -> None:
    settings = namespace.settings(Settings, rpc_timeout_seconds=0.5)
    service = build(settings)
    await service.start()
    await service.stop()  # its RPC queue stays, with nobody taking from it
    loop = asyncio.get_running_loop()

    async with rpc_client(settings) as rpc:
        started = loop.time()
        with pytest.raises(ServiceUnavailable):
            await rpc.ask(GetOrder(owner_id=None, order_id="nope"), OrderView)
        elapsed = loop.time() - started

    assert 0.4 <= elapsed < 3
