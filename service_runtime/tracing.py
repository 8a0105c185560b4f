"""Distributed tracing with OpenTelemetry: one order is one trace, across HTTP, RPC and events.

The W3C trace context (`traceparent`, `tracestate`) travels in AMQP message headers. An event is
published by the outbox relay, maybe later and from a sweep, so the context it was decided in is kept
beside the envelope in its outbox entry and becomes the parent of the span that publishes it.

Off unless an OTLP/HTTP endpoint is configured: then the API's no-op tracer only passes on a context
that arrives, at the cost of parsing one header.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from faststream.rabbit.annotations import RabbitMessage
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_runtime.settings import RuntimeSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

# Replaced by tests that record spans in memory; resolves to the installed provider otherwise.
tracer: Tracer = trace.get_tracer("service_runtime")
PROPAGATOR = TraceContextTextMapPropagator()
# Key of an outbox entry, beside the envelope's fields (which Envelope ignores): the decision's context.
OUTBOX_FIELD = "trace_context"
# Health checks and the relay's notes to itself: a trace each would bury the orders' traces.
HOUSEKEEPING = frozenset({"Ping", "SweepOutbox"})
_installed: TracerProvider | None = None


def traces_endpoint(settings: RuntimeSettings) -> str | None:
    """Where spans go (OTLP over HTTP), or None when tracing is off, as it is by default."""
    if settings.otel_sdk_disabled:
        return None
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint:
        # The specification's rule for the base endpoint: the signal's path is appended.
        return settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    return None


def tracer_provider(service: str, settings: RuntimeSettings) -> TracerProvider | None:
    """A provider exporting this service's spans in batches, or None when tracing is off."""
    endpoint = traces_endpoint(settings)
    if endpoint is None:
        return None
    # Only now: a process that does not trace never loads the SDK, the exporter or protobuf.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Sampler, batch sizes and delays, exporter headers and timeout: the standard OTEL_* variables.
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service, "deployment.environment.name": settings.environment})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def setup(service: str, settings: RuntimeSettings) -> TracerProvider | None:
    """Install the process's tracer provider once; None (and nothing installed) when tracing is off.

    The provider flushes what it holds when the process exits.
    """
    global _installed
    if _installed is None and (provider := tracer_provider(service, settings)) is not None:
        trace.set_tracer_provider(provider)
        _installed = provider
        log.info("tracing to %s", traces_endpoint(settings))
    return _installed


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads AMQP headers, whose string values may arrive as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        return [value.decode() if isinstance(value, bytes) else str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


def inject(context: Context | None = None) -> dict[str, str]:
    """Headers carrying the current (or the given) trace context; empty when there is none."""
    headers: dict[str, str] = {}
    PROPAGATOR.inject(headers, context)
    return headers


def extract(headers: Mapping[str, Any] | None) -> Context:
    """The trace context that message or request headers carry (an empty context when none)."""
    return PROPAGATOR.extract(headers or {}, getter=_GETTER)


def remember(entry: dict[str, Any]) -> dict[str, Any]:
    """An outbox entry, with the trace context its event was decided in when there is one."""
    if carrier := inject():
        entry[OUTBOX_FIELD] = carrier
    return entry


def decided_in(entry: Mapping[str, Any]) -> Context | None:
    """The context an outbox entry was decided in, or None (saved untraced, or before tracing)."""
    carrier = entry.get(OUTBOX_FIELD)
    return extract(carrier) if isinstance(carrier, Mapping) and carrier else None


def current_ids() -> tuple[str, str] | None:
    """Trace and span id of the span in hand, as hex, for log lines; None outside any trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def failed(exc: BaseException) -> None:
    """Mark the span in hand as failed, for a failure the code handles rather than raises."""
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _messaging(operation: str, kind: str, destination: str, routing_key: str) -> dict[str, Any]:
    return {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.type": kind,
    }


def handling(
    method: Callable[[S, RabbitMessage], Awaitable[R]],
) -> Callable[[S, RabbitMessage], Coroutine[Any, Any, R]]:
    """A CONSUMER span (SERVER for a request awaiting its reply) around handling one delivery.

    Its parent is the context in the message's headers: the producer's span. FastStream reads the
    method's signature through the wrapper and passes the message by keyword.
    """

    @functools.wraps(method)
    async def traced(self: S, message: RabbitMessage) -> R:
        raw = message.raw_message
        kind = raw.type or ""
        if kind in HOUSEKEEPING:
            return await method(self, message)
        attributes = _messaging("process", kind, raw.exchange or "", raw.routing_key or "")
        attributes["messaging.message.id"] = message.message_id or ""
        attributes["messaging.message.conversation_id"] = message.correlation_id or ""
        with tracer.start_as_current_span(
            f"process {kind or '(untyped)'}",
            context=extract(message.headers),
            kind=SpanKind.SERVER if raw.reply_to else SpanKind.CONSUMER,
            attributes=attributes,
        ):
            return await method(self, message)

    return traced


def publishing(
    method: Callable[[S, dict[str, Any]], Awaitable[R]],
) -> Callable[[S, dict[str, Any]], Coroutine[Any, Any, R]]:
    """A PRODUCER span around publishing one stored envelope (an outbox entry).

    Its parent is the context the event was decided in, kept in the entry, else the current one: a
    sweep long after the handler still continues the handler's trace. `inject()` inside the method
    hands this span on in the message's headers.
    """

    @functools.wraps(method)
    async def traced(self: S, entry: dict[str, Any]) -> R:
        kind = str(entry.get("type", ""))
        attributes = _messaging("publish", kind, "", "")
        attributes["messaging.message.id"] = str(entry.get("event_id", ""))
        attributes["messaging.message.conversation_id"] = str(entry.get("correlation_id", ""))
        with tracer.start_as_current_span(
            f"publish {kind}", context=decided_in(entry), kind=SpanKind.PRODUCER, attributes=attributes
        ):
            return await method(self, entry)

    return traced


def destination(exchange: str, routing_key: str) -> None:
    """Name where the span in hand sends its message, once the publishing method knows it."""
    span = trace.get_current_span()
    span.set_attribute("messaging.destination.name", exchange)
    span.set_attribute("messaging.rabbitmq.destination.routing_key", routing_key)


def requesting(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A CLIENT span around one RPC round trip, from the `message_type` and `queue` keywords.

    `inject()` inside the method carries it to the server in the request's headers.
    """

    @functools.wraps(method)
    async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        kind, queue = str(kwargs.get("message_type", "")), str(kwargs.get("queue", ""))
        if kind in HOUSEKEEPING:
            return await method(*args, **kwargs)
        # Sent through the default exchange: the routing key is the queue's name.
        attributes = _messaging("send", kind, "", queue)
        with tracer.start_as_current_span(f"send {kind}", kind=SpanKind.CLIENT, attributes=attributes):
            return await method(*args, **kwargs)

    return traced


class HttpServerSpans:
    """ASGI middleware: a SERVER span per HTTP request, named by method and route template.

    A caller's `traceparent` is honoured, so a client with a trace of its own sees the order in it.
    """

    def __init__(self, app: ASGIApp, untraced_paths: Collection[str] = ()) -> None:
        self.app = app
        self.untraced_paths = frozenset(untraced_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.untraced_paths:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with tracer.start_as_current_span(
            method, context=extract(headers), kind=SpanKind.SERVER, attributes=attributes
        ) as span:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    _answered(span, int(message["status"]))
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            finally:
                # The router has set the matched route by now: a name of few values, not one per id.
                if (route := _route(scope)) is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)


def _route(scope: Scope) -> str | None:
    """The matched route's template, with the prefix of the router it was included with."""
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        return None
    # FastAPI's included routes know their path without the router's prefix: take the prefix from the URL.
    path: str = scope["path"]
    prefix = "/".join(path.split("/")[: max(1, path.count("/") - template.count("/") + 1)])
    return prefix + template


def _answered(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
