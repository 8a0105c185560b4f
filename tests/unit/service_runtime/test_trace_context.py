"""Tracing without a broker: the context in AMQP headers, through the outbox entry, and off by default."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from conftest import RecordingConnection
from fastapi import APIRouter, FastAPI
from faststream.rabbit import RabbitBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from contracts.base import Envelope
from contracts.events import PaymentApproved
from service_runtime import tracing
from service_runtime.crypto import FieldCipher
from service_runtime.logs import JsonFormatter
from service_runtime.messaging import EventBus, Topology
from service_runtime.settings import RuntimeSettings
from service_runtime.store import outbox_place, pending


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans recorded in memory, by a provider of this test's own (the process's stays untouched)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


CIPHER = FieldCipher({"unit": bytes(32)}, "unit")


def stored(envelope: Envelope) -> dict[str, Any]:
    """An outbox entry as the relay hands it to the bus: kept with its payload sealed, then opened."""
    [(event_id, entry)] = pending([envelope], CIPHER, collection="payments", doc_id="p-1").items()
    return CIPHER.open_payload(entry, at=outbox_place("payments", "p-1", event_id))


def approved() -> Envelope:
    return Envelope.wrap(
        PaymentApproved(payment_id="pay-1", order_id="order-1", patient_id="patient-1", amount_cents=1260),
        correlation_id="order-1",
    )


def test_tracing_is_off_without_an_otlp_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    settings = RuntimeSettings()

    assert tracing.traces_endpoint(settings) is None
    assert tracing.tracer_provider("order_service", settings) is None
    assert tracing.setup("order_service", settings) is None
    # Nothing installed: the API's no-op spans, recording nothing, carrying no context of their own.
    with tracing.tracer.start_as_current_span("nothing") as span:
        assert not span.is_recording()
        assert tracing.inject() == {}
        assert tracing.remember({"type": "OrderCreated"}) == {"type": "OrderCreated"}
    assert tracing.current_ids() is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_otlp_endpoint_comes_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")
    assert tracing.traces_endpoint(RuntimeSettings()) == "http://127.0.0.1:4318/v1/traces"

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9999/traces")
    assert tracing.traces_endpoint(RuntimeSettings()) == "http://127.0.0.1:9999/traces"

    provider = tracing.tracer_provider("payment_service", RuntimeSettings())
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "payment_service"
    provider.shutdown()

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.traces_endpoint(RuntimeSettings()) is None


def test_the_trace_context_goes_into_amqp_headers_and_comes_back_out(spans: InMemorySpanExporter) -> None:
    with tracing.tracer.start_as_current_span("sending") as span:
        headers = tracing.inject()
    sent = span.get_span_context()

    assert headers["traceparent"].startswith(f"00-{sent.trace_id:032x}-{sent.span_id:016x}-")
    # AMQP may hand string headers back as bytes; other headers travel beside them untouched.
    received = {"traceparent": headers["traceparent"].encode(), "x-publisher": "order_service"}
    carried = trace.get_current_span(tracing.extract(received)).get_span_context()
    assert (carried.trace_id, carried.span_id, carried.is_remote) == (sent.trace_id, sent.span_id, True)

    assert not trace.get_current_span(tracing.extract(None)).get_span_context().is_valid
    assert not trace.get_current_span(tracing.extract({"traceparent": "garbage"})).get_span_context().is_valid


async def test_an_event_saved_in_one_span_is_published_later_as_its_child(
    spans: InMemorySpanExporter,
) -> None:
    envelope = approved()
    with tracing.tracer.start_as_current_span("process StockReserved") as handling:
        entry = stored(envelope)
    connection = RecordingConnection()
    bus = EventBus(
        cast(RabbitBroker, SimpleNamespace(_connection=connection)),
        Topology(RuntimeSettings(broker_namespace="unit")),
    )

    # Later, from a sweep: no span in hand, only what the outbox entry kept.
    assert tracing.current_ids() is None
    await bus.publish(entry)

    # The envelope's contract is unchanged: the context sits beside its fields.
    assert set(entry) - set(envelope.model_dump()) == {tracing.OUTBOX_FIELD}
    assert Envelope.model_validate(entry) == envelope
    publish = only(spans, "publish PaymentApproved")
    decided = handling.get_span_context()
    assert publish.kind is SpanKind.PRODUCER
    assert publish.context is not None
    assert publish.parent is not None
    assert (publish.context.trace_id, publish.parent.span_id) == (decided.trace_id, decided.span_id)
    assert publish.attributes is not None
    assert publish.attributes["messaging.message.id"] == str(envelope.event_id)
    assert publish.attributes["messaging.message.conversation_id"] == "order-1"
    assert publish.attributes["messaging.destination.name"] == "unit.events"
    # The consumer's parent is the publishing span, whose context rides in the message's headers.
    traceparent = connection.published[0][2].headers["traceparent"]
    assert isinstance(traceparent, str)
    assert traceparent.startswith(f"00-{decided.trace_id:032x}-{publish.context.span_id:016x}-")


async def test_an_event_saved_untraced_starts_a_trace_of_its_own(spans: InMemorySpanExporter) -> None:
    entry = stored(approved())
    connection = RecordingConnection()
    bus = EventBus(
        cast(RabbitBroker, SimpleNamespace(_connection=connection)),
        Topology(RuntimeSettings(broker_namespace="unit")),
    )

    await bus.publish(entry)

    assert tracing.OUTBOX_FIELD not in entry
    assert only(spans, "publish PaymentApproved").parent is None
    assert "traceparent" in connection.published[0][2].headers


class Handler:
    """Stands in for EventConsumer: one method taking a delivery."""

    def __init__(self) -> None:
        self.seen: tuple[str, str] | None = None

    @tracing.handling
    async def consume(self, message: Any) -> str:
        self.seen = tracing.current_ids()
        return "done"


def delivery(headers: dict[str, Any], *, kind: str, reply_to: str | None = None) -> Any:
    raw = SimpleNamespace(
        type=kind, exchange="unit.events", routing_key="payment.approved", reply_to=reply_to
    )
    return SimpleNamespace(raw_message=raw, headers=headers, message_id="event-1", correlation_id="order-1")


async def test_handling_a_delivery_continues_the_trace_in_its_headers(spans: InMemorySpanExporter) -> None:
    with tracing.tracer.start_as_current_span("publish PaymentApproved") as producer:
        headers = tracing.inject()
    handler = Handler()

    # By keyword, as FastStream calls a subscriber (the decorator's type only speaks of positions).
    delivered = delivery(headers, kind="PaymentApproved")
    assert await handler.consume(message=delivered) == "done"  # type: ignore[call-arg]

    span = only(spans, "process PaymentApproved")
    sent = producer.get_span_context()
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert span.context is not None
    assert (span.context.trace_id, span.parent.span_id) == (sent.trace_id, sent.span_id)
    assert handler.seen == (f"{sent.trace_id:032x}", f"{span.context.span_id:016x}")
    assert dict(span.attributes or {}) == {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": "unit.events",
        "messaging.rabbitmq.destination.routing_key": "payment.approved",
        "messaging.message.type": "PaymentApproved",
        "messaging.message.id": "event-1",
        "messaging.message.conversation_id": "order-1",
    }


async def test_a_request_is_served_in_a_server_span_and_housekeeping_in_none(
    spans: InMemorySpanExporter,
) -> None:
    handler = Handler()

    await handler.consume(delivery({}, kind="CreateMedication", reply_to="amq.rabbitmq.reply-to"))
    await handler.consume(delivery({}, kind="SweepOutbox"))
    await handler.consume(delivery({}, kind="Ping", reply_to="amq.rabbitmq.reply-to"))

    assert [(s.name, s.kind) for s in spans.get_finished_spans()] == [
        ("process CreateMedication", SpanKind.SERVER)
    ]


def test_a_handled_failure_marks_the_span_in_hand(spans: InMemorySpanExporter) -> None:
    with tracing.tracer.start_as_current_span("process OrderCreated"):
        tracing.failed(ValueError("no such pharmacy"))

    span = only(spans, "process OrderCreated")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: no such pharmacy"


def test_log_lines_carry_the_trace_id_while_a_span_is_in_hand(spans: InMemorySpanExporter) -> None:
    formatter = JsonFormatter("order_service")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "confirmed", None, None)

    assert "trace_id" not in json.loads(formatter.format(record))
    with tracing.tracer.start_as_current_span("process PaymentApproved") as span:
        line = json.loads(formatter.format(record))
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert line["span_id"] == f"{span.get_span_context().span_id:016x}"


async def test_each_http_request_is_a_server_span_named_by_its_route(spans: InMemorySpanExporter) -> None:
    app = FastAPI()
    orders = APIRouter()

    @orders.get("/orders/{order_id}")
    async def order(order_id: str) -> dict[str, str]:
        return {"id": order_id}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(tracing.HttpServerSpans, untraced_paths={"/health"})
    app.include_router(orders, prefix="/api/v1")
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
        assert (await http.get("/api/v1/orders/o-1", headers={"traceparent": caller})).status_code == 200
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/nowhere")).status_code == 404

    served, missing = spans.get_finished_spans()
    assert (served.name, served.kind) == ("GET /api/v1/orders/{order_id}", SpanKind.SERVER)
    assert served.context is not None
    assert served.parent is not None
    assert (f"{served.context.trace_id:032x}", f"{served.parent.span_id:016x}") == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert dict(served.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/api/v1/orders/o-1",
        "http.route": "/api/v1/orders/{order_id}",
        "http.response.status_code": 200,
    }
    assert (missing.name, (missing.attributes or {})["http.response.status_code"]) == ("GET", 404)
