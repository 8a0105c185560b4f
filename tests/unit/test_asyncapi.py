"""The AsyncAPI documents against the contracts: every routed message with the schema pydantic gives it,
the queues as the runtime declares them, and the files in docs/asyncapi as the code generates them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import asyncapi, topology
from contracts.base import Command, Event, Timer
from contracts.events import ALL_EVENTS
from service_runtime.messaging import Topology
from service_runtime.settings import RuntimeSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "asyncapi"
SERVICES = asyncapi.SERVICES
SCHEMAS = "#/components/schemas/"
# The defaults, whatever the environment of the test run says.
RUNTIME = Topology(RuntimeSettings.model_construct())
Json = dict[str, Any]


@pytest.fixture(scope="module")
def documents() -> dict[str, Json]:
    return {service: asyncapi.document(service) for service in SERVICES}


def pydantic_schemas(model: type[Event] | type[Command]) -> Json:
    """The model's schema and those of the models it uses, as components/schemas should hold them."""
    schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
    return {**schema.pop("$defs", {}), model.__name__: schema}


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: Json, ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = doc
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert key in node, f"{ref} does not resolve"
        node = node[key]
    return node


def test_the_back_end_services_are_documented() -> None:
    assert set(SERVICES) == {
        "inventory_service",
        "order_service",
        "payment_service",
        "prescription_service",
        "delivery_service",
    }
    assert set(SERVICES) == set(topology.SUBSCRIPTIONS) == set(topology.PUBLISHES) == set(topology.COMMANDS)


@pytest.mark.parametrize("service", SERVICES)
def test_the_document_is_asyncapi_3_about_the_service(documents: dict[str, Json], service: str) -> None:
    doc = documents[service]

    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == service
    assert doc["info"]["version"]
    assert doc["servers"]["rabbitmq"]["protocol"] == "amqp"
    assert doc["servers"]["rabbitmq"]["protocolVersion"] == "0.9.1"
    assert "RABBITMQ_URL" in doc["servers"]["rabbitmq"]["description"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_ref_resolves_inside_the_document(documents: dict[str, Json], service: str) -> None:
    doc = documents[service]
    found = list(refs(doc))

    assert found
    for ref in found:
        resolve(doc, ref)


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_sends_or_receives_messages_of_its_own_channel(
    documents: dict[str, Json], service: str
) -> None:
    for name, operation in documents[service]["operations"].items():
        assert operation["action"] in {"send", "receive"}, name
        channel = operation["channel"]["$ref"]
        assert operation["messages"], name
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name
        if "reply" in operation:
            reply_channel = operation["reply"]["channel"]["$ref"]
            for message in operation["reply"]["messages"]:
                assert message["$ref"].startswith(f"{reply_channel}/messages/"), name


@pytest.mark.parametrize("service", SERVICES)
def test_every_routed_message_has_the_schema_pydantic_gives(documents: dict[str, Json], service: str) -> None:
    doc = documents[service]
    messages, schemas = doc["components"]["messages"], doc["components"]["schemas"]
    models: tuple[type[Event] | type[Command], ...] = (
        *topology.SUBSCRIPTIONS[service],
        *topology.PUBLISHES[service],
        *topology.COMMANDS[service],
    )

    for model in models:
        message = messages[model.TYPE]
        assert message["name"] == model.TYPE
        assert message["contentType"] == "application/json"
        assert message["bindings"]["amqp"]["messageType"] == model.TYPE
        for name, schema in pydantic_schemas(model).items():
            assert schemas[name] == schema, f"{name} differs from pydantic's schema"
        if issubclass(model, Event):
            envelope, event = message["payload"]["allOf"]
            assert envelope == {"$ref": SCHEMAS + "Envelope"}
            assert event["properties"]["type"] == {"const": model.TYPE}
            assert event["properties"]["payload"] == {"$ref": SCHEMAS + model.__name__}
        else:
            assert message["payload"] == {"$ref": SCHEMAS + model.__name__}


@pytest.mark.parametrize("service", SERVICES)
def test_the_operations_follow_the_routing_table(documents: dict[str, Json], service: str) -> None:
    operations = documents[service]["operations"]

    for event in topology.SUBSCRIPTIONS[service]:
        operation = operations[f"receive{event.TYPE}"]
        assert operation["action"] == "receive"
        assert operation["channel"]["$ref"] == f"#/channels/{event.ROUTING_KEY.replace('.', '_')}"
    for event in topology.PUBLISHES[service]:
        operation = operations[f"send{event.TYPE}"]
        assert operation["action"] == "send"
        assert operation["bindings"]["amqp"]["deliveryMode"] == 2
    for command in topology.COMMANDS[service]:
        operation = operations[f"receive{command.TYPE}"]
        queue = "event_queue" if command.WRITE else f"{command.QUEUE}_queue" if command.QUEUE else "rpc_queue"
        assert operation["action"] == "receive"
        assert operation["channel"]["$ref"] == f"#/channels/{queue}"
        assert operation["reply"]["messages"] == [{"$ref": "#/channels/rpc_replies/messages/RpcReply"}]


@pytest.mark.parametrize("service", SERVICES)
def test_the_channels_are_the_queues_and_exchange_the_runtime_declares(
    documents: dict[str, Json], service: str
) -> None:
    channels = documents[service]["channels"]
    event_queue = RUNTIME.event_queue(service)
    declared = {
        "event_queue": event_queue,
        "dead_letter_queue": RUNTIME.dead_letter_queue(event_queue.name),
        "rpc_queue": RUNTIME.rpc_queue(service),
    }
    if any(issubclass(e, Timer) for e in topology.SUBSCRIPTIONS[service]):
        declared["timer_queue"] = RUNTIME.timer_queue(service)
    for command in topology.COMMANDS[service]:
        if command.QUEUE is not None:
            ttl_ms = int(command.QUEUE_SECONDS * 1000)
            declared[f"{command.QUEUE}_queue"] = RUNTIME.work_queue(service, command.QUEUE, ttl_ms=ttl_ms)

    assert {name for name in channels if name.endswith("_queue")} == set(declared)
    for name, queue in declared.items():
        assert channels[name]["address"] == queue.name
        assert channels[name]["bindings"]["amqp"]["queue"]["durable"] == queue.durable
        assert channels[name]["x-queue-arguments"] == queue.arguments
    for event in {*topology.SUBSCRIPTIONS[service], *topology.PUBLISHES[service]}:
        channel = channels[event.ROUTING_KEY.replace(".", "_")]
        assert channel["address"] == event.ROUTING_KEY
        exchange = channel["bindings"]["amqp"]["exchange"]
        assert (exchange["name"], exchange["type"]) == (RUNTIME.events.name, RUNTIME.events.type.value)


def test_every_event_has_exactly_one_publisher() -> None:
    publishers = [event for published in topology.PUBLISHES.values() for event in published]

    assert sorted(e.TYPE for e in publishers) == sorted(e.TYPE for e in ALL_EVENTS)


def test_every_subscribed_event_is_published() -> None:
    published = {event for events in topology.PUBLISHES.values() for event in events}

    for service, events in topology.SUBSCRIPTIONS.items():
        assert set(events) <= published, f"{service} waits for an event nobody publishes"


@pytest.mark.parametrize("service", SERVICES)
def test_the_publishers_table_names_the_events_each_service_creates(service: str) -> None:
    by_name = {event.__name__: event for event in ALL_EVENTS}
    created = set()
    for source in (ROOT / service).glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in by_name:
                created.add(by_name[node.func.id])

    assert created == set(topology.PUBLISHES[service])


def test_the_committed_documents_are_the_generated_ones() -> None:
    stale = asyncapi.stale(DOCS)

    assert not stale, f"run `make asyncapi`: {[str(p.relative_to(ROOT)) for p in stale]} are stale"


def test_check_names_the_stale_missing_and_left_over_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert asyncapi.main(["--out", str(tmp_path)]) == 0
    assert asyncapi.main(["--out", str(tmp_path), "--check"]) == 0

    (tmp_path / "order_service.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "payment_service.json").unlink()
    (tmp_path / "shipping_service.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()

    assert asyncapi.main(["--out", str(tmp_path), "--check"]) == 1
    said = capsys.readouterr().err
    for name in ("order_service.json", "payment_service.json", "shipping_service.json"):
        assert name in said
    assert "inventory_service.json" not in said
