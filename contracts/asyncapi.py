"""AsyncAPI 3.0 documents of the back-end services, generated from the contracts and the routing table.

FastStream's own would show one generic subscriber per queue dispatching by type; these say which
events each service takes and publishes, which commands it answers, and the schema of every message.

    python -m contracts.asyncapi --out docs/asyncapi    # write docs/asyncapi/<service>.json
    python -m contracts.asyncapi --check                # exit 1 naming the files the code disagrees with
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contracts import topology
from contracts.base import Command, Envelope, Event, RpcReply, Timer
from contracts.commands import SweepOutbox

Json = dict[str, Any]

VERSION = "1.0.0"
AMQP_BINDINGS = "0.3.0"
SERVICES: tuple[str, ...] = tuple(sorted({*topology.SUBSCRIPTIONS, *topology.PUBLISHES, *topology.COMMANDS}))
SCHEMAS = "#/components/schemas/"
# Defaults of RuntimeSettings (service_runtime/settings.py), which contracts may not import; the queue
# arguments below are the ones service_runtime/messaging.py (Topology) declares. tests/unit/test_asyncapi.py
# checks both against the runtime.
DELIVERY_LIMIT = 5
RPC_TIMEOUT_MS = 10_000
# AMQP message properties, as FastStream and aio-pika name them.
CORRELATION_ID = {
    "location": "$message.header#/correlation_id",
    "description": "The saga's correlation id on events; the request's id on a command and its reply.",
}
REPLY_TO = {
    "location": "$message.header#/reply_to",
    "description": "The caller's exclusive reply queue, <namespace>.replies.<hex>, named in reply_to.",
}


def document(service: str, namespace: str = "pharmacy") -> Json:
    """The AsyncAPI 3.0.0 document of one back-end service, under a broker namespace."""
    takes = topology.SUBSCRIPTIONS.get(service, ())
    publishes = topology.PUBLISHES.get(service, ())
    commands = topology.COMMANDS.get(service, ())
    events = f"{namespace}.{topology.EVENTS_EXCHANGE}"
    event_queue = topology.event_queue(namespace, service)
    writes = [c.TYPE for c in commands if c.WRITE]
    on_event_queue = [e.TYPE for e in takes] + writes + [SweepOutbox.TYPE]

    channels: Json = {_channel_id(e): _routing_key_channel(e, namespace) for e in (*takes, *publishes)}
    partitions = topology.partition_exchange(namespace, service)
    channels["event_queue"] = _queue_channel(
        event_queue,
        f"The first of EVENT_PARTITIONS quorum queues ({event_queue}, {event_queue}.1, ...) bound with "
        f"weight 1 to {partitions}, a consistent-hash exchange on the x-partition-key header, which "
        f"is bound to {events} with the routing keys of the events {service} takes. Events carry their "
        "correlation id there, write commands the aggregate they change (PARTITION_BY), so one "
        "aggregate's messages share a partition. Outbox sweeps are sent to this first one directly. "
        "Each partition has one consumer at a time (single active consumer), which handles up to "
        "EVENT_PREFETCH messages at once, one aggregate's in order. After DELIVERY_LIMIT deliveries "
        f"(default {DELIVERY_LIMIT}) a message is dead-lettered through "
        f"{namespace}.{topology.DEAD_LETTER_EXCHANGE}.",
        _event_queue_arguments(namespace, service),
        on_event_queue,
    )
    channels["dead_letter_queue"] = _queue_channel(
        topology.dead_letter_queue(event_queue),
        f"Quorum queue bound to the {namespace}.{topology.DEAD_LETTER_EXCHANGE} direct exchange with "
        f"routing key {event_queue}: what {service} could not handle, with the reason in x-error, "
        "x-error-type, x-failed-service, x-attempts, x-failed-at, x-original-exchange and "
        "x-original-routing-key headers. `pharmacy-ops dlq` lists and redrives it.",
        {"x-queue-type": "quorum"},
        on_event_queue,
    )
    if timers := [e for e in takes if issubclass(e, Timer)]:
        channels["timer_queue"] = _queue_channel(
            topology.timer_queue(namespace, service),
            f"Quorum queue bound to {events} with the routing keys of {service}'s timers. Nobody "
            "consumes it: each timer waits out its per-message TTL (until fires_at), then the broker "
            f"dead-letters it through {partitions} into the partition its x-partition-key names.",
            _timer_queue_arguments(namespace, service),
            [t.TYPE for t in timers],
        )
    channels["rpc_queue"] = _queue_channel(
        topology.rpc_queue(namespace, service),
        f"Classic queue of the reads {service} answers, taken by every replica. A request waits at "
        f"most RPC_TIMEOUT_SECONDS (default {RPC_TIMEOUT_MS // 1000}); nobody wants the answer after that.",
        {"x-queue-type": "classic", "x-message-ttl": RPC_TIMEOUT_MS},
        [c.TYPE for c in commands if not c.WRITE and c.QUEUE is None],
    )
    for queue in dict.fromkeys(c.QUEUE for c in commands if c.QUEUE is not None):
        channels[f"{queue}_queue"] = _queue_channel(
            topology.work_queue(namespace, service, queue),
            f"Classic queue of {service}'s slow reads of one kind ({queue}), taken by a worker of its "
            "own in every replica (its own channel and prefetch), so they never wait behind, nor delay, "
            "the RPC queue or the events. A request is dropped once its caller has given up.",
            {"x-queue-type": "classic", "x-message-ttl": _queue_ttl_ms(commands, queue)},
            [c.TYPE for c in commands if queue == c.QUEUE],
        )
    channels["rpc_replies"] = {
        "address": None,
        "description": "The caller's reply queue, named by each request's reply_to; replies go through "
        "the default exchange with the request's correlation_id.",
        "messages": {RpcReply.__name__: {"$ref": f"#/components/messages/{RpcReply.__name__}"}},
    }

    operations: Json = {}
    for event in takes:
        operations[f"receive{event.TYPE}"] = _event_operation("receive", event, event_queue)
    for event in publishes:
        operations[f"send{event.TYPE}"] = _event_operation("send", event, event_queue)
    for command in commands:
        operations[f"receive{command.TYPE}"] = _command_operation(command)
    operations[f"send{SweepOutbox.TYPE}"] = _sweep_operation("send")
    operations[f"receive{SweepOutbox.TYPE}"] = _sweep_operation("receive")
    operations["deadLetter"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/dead_letter_queue"},
        "summary": "A message that cannot be handled, or failed its last allowed delivery.",
        "messages": [{"$ref": f"#/channels/dead_letter_queue/messages/{m}"} for m in on_event_queue],
        "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": AMQP_BINDINGS}},
    }

    schemas: Json = {}
    messages: Json = {}
    for event in dict.fromkeys((*takes, *publishes)):
        messages[event.TYPE] = _event_message(event)
        _hoist(event, schemas)
    every_command: tuple[type[Command], ...] = (*commands, SweepOutbox)
    for command in every_command:
        messages[command.TYPE] = _command_message(command, answered=command is not SweepOutbox)
        _hoist(command, schemas)
    messages[RpcReply.__name__] = {
        "name": RpcReply.__name__,
        "title": RpcReply.__name__,
        **_summary(RpcReply),
        "contentType": "application/json",
        "correlationId": CORRELATION_ID,
        "payload": {"$ref": SCHEMAS + RpcReply.__name__},
    }
    _hoist(RpcReply, schemas)
    _hoist(Envelope, schemas)
    schemas.update(_HEADERS)

    return {
        "asyncapi": "3.0.0",
        "info": {"title": service, "version": VERSION, "description": _role(service, namespace)},
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "127.0.0.1:5672",
                "pathname": "/",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ at amqp://127.0.0.1:5672, virtual host /, the local default. "
                "A service connects to RABBITMQ_URL, which overrides it; BROKER_NAMESPACE "
                f"({namespace} here) prefixes every exchange and queue name.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _role(service: str, namespace: str) -> str:
    takes = topology.SUBSCRIPTIONS.get(service, ())
    commands = topology.COMMANDS.get(service, ())
    said = [f"{service} in the pharmacy saga, as contracts/topology.py routes it."]
    if events := [e for e in takes if not issubclass(e, Timer)]:
        said.append(f"It takes {_names(events)} from its event queue, in the order they were published.")
    if publishes := topology.PUBLISHES.get(service, ()):
        said.append(f"It publishes {_names(publishes)} to {namespace}.{topology.EVENTS_EXCHANGE}.")
    if timers := [e for e in takes if issubclass(e, Timer)]:
        said.append(f"{_names(timers)}: a timer it sets itself, delivered to it when it falls due.")
    if reads := [c for c in commands if not c.WRITE and c.QUEUE is None]:
        said.append(f"It answers {_names(reads)} on its RPC queue, from any replica.")
    if slow := [c for c in commands if c.QUEUE is not None]:
        said.append(f"It answers {_names(slow)} on queues of their own, each served by its own worker.")
    if writes := [c for c in commands if c.WRITE]:
        said.append(f"Writes ({_names(writes)}) queue with its events, for its one active consumer.")
    said.append("Events travel in an Envelope whose payload is the event.")
    return " ".join(said)


def _names(models: Iterable[type[Event] | type[Command]]) -> str:
    return ", ".join(m.TYPE for m in models)


def _summary(model: type[BaseModel]) -> Json:
    """The first line of the model's own docstring, if it has one (an inherited one is not about it)."""
    doc = (vars(model).get("__doc__") or "").strip()
    return {"summary": doc.splitlines()[0]} if doc else {}


def _hoist(model: type[BaseModel], schemas: Json) -> None:
    """Put the model's JSON Schema, and those of the models it uses, into components/schemas."""
    schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
    for name, nested in {**schema.pop("$defs", {}), model.__name__: schema}.items():
        if schemas.setdefault(name, nested) != nested:
            raise ValueError(f"two different schemas are both called {name}")


def _event_queue_arguments(namespace: str, service: str) -> Json:
    name = topology.event_queue(namespace, service)
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": f"{namespace}.{topology.DEAD_LETTER_EXCHANGE}",
        "x-dead-letter-routing-key": name,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-single-active-consumer": True,
    }


def _timer_queue_arguments(namespace: str, service: str) -> Json:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": topology.partition_exchange(namespace, service),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def _queue_channel(name: str, description: str, arguments: Json, messages: Iterable[str]) -> Json:
    queue = {"name": name, "durable": True, "exclusive": False, "autoDelete": False, "vhost": "/"}
    return {
        "address": name,
        "description": description,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        "bindings": {"amqp": {"is": "queue", "queue": queue, "bindingVersion": AMQP_BINDINGS}},
        # The AMQP binding has no place for queue arguments: a specification extension holds them.
        "x-queue-arguments": arguments,
    }


def _channel_id(event: type[Event]) -> str:
    # AsyncAPI keys are letters, digits, hyphens and underscores: order.created is order_created here.
    return event.ROUTING_KEY.replace(".", "_")


def _routing_key_channel(event: type[Event], namespace: str) -> Json:
    exchange = f"{namespace}.{topology.EVENTS_EXCHANGE}"
    publishers = [s for s, published in topology.PUBLISHES.items() if event in published]
    subscribers = [s for s, taken in topology.SUBSCRIPTIONS.items() if event in taken]
    kind = "timer" if issubclass(event, Timer) else "event"
    if subscribers:
        bound = f"bound to the {kind} queue{'s' if len(subscribers) > 1 else ''} of {', '.join(subscribers)}"
        if not issubclass(event, Timer):
            # The journal's archiver records every event but timers (operations/journal.py).
            bound += f" and to {topology.journal_queue(namespace)}"
    else:
        # No service takes it (topology.JOURNALLED_ONLY): every service binds the journal's queue to it.
        bound = f"taken by no service; bound to {topology.journal_queue(namespace)}, for the record"
    return {
        "address": event.ROUTING_KEY,
        "description": f"Routing key {event.ROUTING_KEY} on the {exchange} topic exchange: "
        f"published by {', '.join(publishers) or 'no service'}; {bound}.",
        "messages": {event.TYPE: {"$ref": f"#/components/messages/{event.TYPE}"}},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": exchange,
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDINGS,
            }
        },
    }


def _event_operation(action: str, event: type[Event], event_queue: str) -> Json:
    channel = _channel_id(event)
    if action == "send":
        summary = f"Publish {event.TYPE}, persistent and mandatory, confirmed by the broker."
        if issubclass(event, Timer):
            summary += " Its AMQP expiration is the time left until fires_at."
        binding: Json = {"deliveryMode": 2, "mandatory": True}
    else:
        summary = f"Take {event.TYPE} from {event_queue}; acknowledged once its effect is stored."
        binding = {"ack": True}
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{event.TYPE}"}],
        "bindings": {"amqp": {**binding, "bindingVersion": AMQP_BINDINGS}},
    }


def _queue_ttl_ms(commands: Iterable[type[Command]], queue: str) -> int:
    return int(max(c.QUEUE_SECONDS for c in commands if queue == c.QUEUE) * 1000)


def _command_operation(command: type[Command]) -> Json:
    channel = "event_queue" if command.WRITE else f"{command.QUEUE}_queue" if command.QUEUE else "rpc_queue"
    where = (
        f"queued on the partition of its {command.PARTITION_BY}, in order with that aggregate's events"
        if command.WRITE
        else f"by the {command.QUEUE} worker of any replica"
        if command.QUEUE
        else "from any replica"
    )
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": f"Answer {command.TYPE} with an RpcReply, {where}.",
        "messages": [{"$ref": f"#/channels/{channel}/messages/{command.TYPE}"}],
        "reply": {
            "address": REPLY_TO,
            "channel": {"$ref": "#/channels/rpc_replies"},
            "messages": [{"$ref": f"#/channels/rpc_replies/messages/{RpcReply.__name__}"}],
        },
        "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDINGS}},
    }


def _sweep_operation(action: str) -> Json:
    summary = (
        "Ask whichever replica consumes the first partition to publish what the outboxes still hold."
        if action == "send"
        else "Publish the events still in the outboxes; nobody is answered."
    )
    return {
        "action": action,
        "channel": {"$ref": "#/channels/event_queue"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/event_queue/messages/{SweepOutbox.TYPE}"}],
    }


def _event_message(event: type[Event]) -> Json:
    envelope = {
        "type": "object",
        "properties": {
            "type": {"const": event.TYPE},
            "version": {"const": event.VERSION},
            "payload": {"$ref": SCHEMAS + event.__name__},
        },
    }
    return {
        "name": event.TYPE,
        "title": event.TYPE,
        **_summary(event),
        "contentType": "application/json",
        "correlationId": CORRELATION_ID,
        "headers": {"$ref": SCHEMAS + "EventHeaders"},
        # The Envelope once, with the event's schema as its payload.
        "payload": {"allOf": [{"$ref": SCHEMAS + Envelope.__name__}, envelope]},
        "bindings": {"amqp": {"messageType": event.TYPE, "bindingVersion": AMQP_BINDINGS}},
    }


def _command_message(command: type[Command], *, answered: bool) -> Json:
    message: Json = {
        "name": command.TYPE,
        "title": command.TYPE,
        **_summary(command),
        "contentType": "application/json",
        "correlationId": CORRELATION_ID,
        "payload": {"$ref": SCHEMAS + command.__name__},
        "bindings": {"amqp": {"messageType": command.TYPE, "bindingVersion": AMQP_BINDINGS}},
    }
    if answered:
        message["headers"] = {"$ref": SCHEMAS + "CommandHeaders"}
    return message


# W3C trace context, present when the sender was tracing (service_runtime/tracing.py).
_TRACE_HEADERS: Json = {
    "traceparent": {"type": "string", "description": "W3C trace context: the sender's span."},
    "tracestate": {"type": "string", "description": "W3C trace context: vendor state, if any."},
}
# Headers the runtime sets (service_runtime/messaging.py: EventBus.publish, AmqpRequester.request).
_HEADERS: Json = {
    "EventHeaders": {
        "type": "object",
        "properties": {
            "x-event-version": {"type": "integer", "description": "The envelope's version."},
            "x-causation-id": {"type": "string", "description": "The event that caused this one, or ''."},
            "x-publisher": {"type": "string", "description": "The service that published it."},
            "x-decided-after": {
                "type": "string",
                "description": "For an event decided on a command: the last event the aggregate it "
                "changed had handled then, or ''. A rebuild from the journal replays it right after "
                "that one.",
            },
            topology.PARTITION_HEADER: {
                "type": "string",
                "description": "The saga's correlation id: each service's partition exchange hashes "
                "it, so one order's events reach one partition queue, in order.",
            },
            **_TRACE_HEADERS,
        },
    },
    "CommandHeaders": {
        "type": "object",
        "properties": {
            "x-reply-by": {
                "type": "integer",
                "description": "Epoch milliseconds after which the caller no longer waits: a write "
                "still queued then is dropped, not carried out.",
            },
            topology.PARTITION_HEADER: {
                "type": "string",
                "description": "On a write: the aggregate it changes (the command's PARTITION_BY "
                "field), which the service's partition exchange hashes.",
            },
            **_TRACE_HEADERS,
        },
    },
}


def render(doc: Json) -> str:
    return json.dumps(doc, sort_keys=True, indent=2) + "\n"


def stale(out: Path, namespace: str = "pharmacy") -> list[Path]:
    """The files under `out` that differ from what the code generates, are missing, or are left over."""
    wanted = {out / f"{service}.json": render(document(service, namespace)) for service in SERVICES}
    differ = [p for p, text in wanted.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    return differ + sorted(set(out.glob("*.json")) - wanted.keys())


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or, with --check, compare) one AsyncAPI document per back-end service."""
    parser = argparse.ArgumentParser(prog="python -m contracts.asyncapi", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/asyncapi"), help="default: docs/asyncapi")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    if args.check:
        if found := stale(args.out):
            names = " ".join(str(p) for p in found)
            print(f"stale AsyncAPI documents, run `make asyncapi`: {names}", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        (args.out / f"{service}.json").write_text(render(document(service)), encoding="utf-8")
        print(args.out / f"{service}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
