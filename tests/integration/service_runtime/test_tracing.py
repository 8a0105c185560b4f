"""One order is one trace: the five services as processes, exporting spans to an OTLP/HTTP receiver here.

The receiver decodes what the services' OTLP exporters POST to /v1/traces, as a collector would.
"""

from __future__ import annotations

import gzip
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    SERVICES,
    Api,
    Backing,
    add_card,
    open_shop,
    started_platform,
    upload,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from contracts import topology
from service_runtime.launcher import Platform

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAGA = ("PrescriptionUploaded", "OrderCreated", "StockReserved", "PaymentApproved", "OrderConfirmed")
# Every handling of the saga's events: by each service that subscribes to them.
HANDLERS = {
    (service, f"process {event.TYPE}")
    for service, events in topology.SUBSCRIPTIONS.items()
    for event in events
    if event.TYPE in SAGA
}
KINDS = {
    ProtoSpan.SPAN_KIND_SERVER: "SERVER",
    ProtoSpan.SPAN_KIND_CLIENT: "CLIENT",
    ProtoSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    ProtoSpan.SPAN_KIND_CONSUMER: "CONSUMER",
    ProtoSpan.SPAN_KIND_INTERNAL: "INTERNAL",
}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    attributes: dict[str, Any]


class OtlpReceiver:
    """Accepts OTLP/HTTP protobuf exports on 127.0.0.1 and keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver.keep(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def keep(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=KINDS.get(span.kind, "UNSPECIFIED"),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            start_ns=span.start_time_unix_nano,
                            attributes={
                                a.key: a.value.string_value or a.value.int_value for a in span.attributes
                            },
                        )
                    )
        with self.lock:
            self.spans.extend(found)

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced_platform(backing: Backing, receiver: OtlpReceiver) -> Iterator[Platform]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # A short batch delay: spans reach the receiver within a fraction of a second.
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"})
    with started_platform(backing, "tracing", env=env) as platform:
        yield platform


def place_confirmed_order(api: Api) -> str:
    """Stock a pharmacy as admin, then a patient with a good card uploads a prescription; the order's id."""
    admin = api.token(ADMIN_EMAIL, ADMIN_PASSWORD)
    shop = open_shop(api, admin, quantity=5)
    _, patient = api.new_patient()
    order_id = str(upload(api, patient, shop, add_card(api, patient), quantity=2)["order_id"])
    assert api.wait_for_status(order_id, patient, {"CONFIRMED", "REJECTED", "CANCELLED"})["status"] == (
        "CONFIRMED"
    )
    return order_id


def ancestry(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    """The span and its parents, up to the root of its trace (or the first parent not received)."""
    chain = [span]
    while chain[-1].parent_id in by_id:
        chain.append(by_id[chain[-1].parent_id])
    return chain


def render(spans: list[ReceivedSpan]) -> str:
    """One trace as an indented tree: service, kind and name of each span, children by start time."""
    children: dict[str, list[ReceivedSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_ns):
        children.setdefault(span.parent_id, []).append(span)
    ids = {s.span_id for s in spans}
    lines = [f"trace {spans[0].trace_id}"]

    def walk(span: ReceivedSpan, depth: int) -> None:
        lines.append(f"{'  ' * depth}{span.service:<21} {span.kind:<9} {span.name}")
        for child in children.get(span.span_id, []):
            walk(child, depth + 1)

    for root in [s for s in sorted(spans, key=lambda s: s.start_ns) if s.parent_id not in ids]:
        walk(root, 1)
    return "\n".join(lines)


def test_an_order_through_the_gateway_is_one_trace_across_the_five_services(
    traced_platform: Platform, receiver: OtlpReceiver
) -> None:
    api = Api(traced_platform.url)
    try:
        order_id = place_confirmed_order(api)
    finally:
        api.http.close()

    def consumed(spans: list[ReceivedSpan], kind: str) -> list[ReceivedSpan]:
        return [
            s
            for s in spans
            if s.name == f"process {kind}"
            and s.attributes.get("messaging.message.conversation_id") == order_id
        ]

    def all_handled(spans: list[ReceivedSpan]) -> bool:
        seen = {(s.service, s.name) for kind in SAGA for s in consumed(spans, kind)}
        return seen >= HANDLERS

    # A span is exported once it ends, in batches: a handler's span reaches the receiver after its children.
    deadline = time.monotonic() + 15
    while not all_handled(receiver.received()) and time.monotonic() < deadline:
        time.sleep(0.1)
    spans = receiver.received()

    # Up to CONFIRMED: delivery_service takes part from the dispensing on, which this order never reaches.
    assert {s.service for s in spans} >= set(SERVICES) - {"delivery_service"}
    [upload] = [s for s in spans if s.name == "POST /api/v1/prescriptions"]
    assert (upload.service, upload.kind, upload.attributes["http.response.status_code"]) == (
        "user_service",
        "SERVER",
        202,
    )
    trace = [s for s in spans if s.trace_id == upload.trace_id]
    by_id = {s.span_id: s for s in trace}
    print(render(trace))
    assert {(s.service, s.name) for kind in SAGA for s in consumed(spans, kind)} == HANDLERS
    for kind in SAGA:
        for span in consumed(spans, kind):
            # Every consumer of the order's events is in the upload's trace, under the span that published it.
            assert (span.trace_id, span.kind) == (upload.trace_id, "CONSUMER"), span
            producer = by_id[span.parent_id]
            assert (producer.name, producer.kind) == (f"publish {kind}", "PRODUCER"), producer
            assert producer.attributes["messaging.message.id"] == span.attributes["messaging.message.id"]
    # The chain has no gap: from the last event back to the upload, each span's parent was received.
    [confirmed] = [s for s in consumed(spans, "OrderConfirmed") if s.service == "prescription_service"]
    path = [(s.service, s.kind, s.name) for s in reversed(ancestry(confirmed, by_id))]
    assert path == [
        ("user_service", "SERVER", "POST /api/v1/prescriptions"),
        ("user_service", "CLIENT", "send UploadPrescription"),
        ("prescription_service", "SERVER", "process UploadPrescription"),
        ("prescription_service", "PRODUCER", "publish PrescriptionUploaded"),
        ("order_service", "CONSUMER", "process PrescriptionUploaded"),
        ("order_service", "PRODUCER", "publish OrderCreated"),
        ("inventory_service", "CONSUMER", "process OrderCreated"),
        ("inventory_service", "PRODUCER", "publish StockReserved"),
        ("payment_service", "CONSUMER", "process StockReserved"),
        ("payment_service", "PRODUCER", "publish PaymentApproved"),
        ("order_service", "CONSUMER", "process PaymentApproved"),
        ("order_service", "PRODUCER", "publish OrderConfirmed"),
        ("prescription_service", "CONSUMER", "process OrderConfirmed"),
    ]
