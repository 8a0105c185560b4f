"""The shared runtime without a broker or a store: the per-key lock, the command server's replies, the
event consumer's ack / retry / dead-letter decisions and the RPC client, all against fakes; and the
routing table in contracts/ checked against what each service registers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aiormq.exceptions import ChannelInvalidStateError
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import ValidationError
from pymongo.errors import AutoReconnect

from contracts import topology
from contracts.base import Command, Envelope, Timer
from contracts.commands import (
    CancelOrder,
    GetOrder,
    ListOrders,
    ListPharmacies,
    PharmacyView,
    Ping,
    SweepOutbox,
)
from contracts.events import ALL_EVENTS, Location, PaymentRefunded, ReservedLine, StockReserved
from contracts.topology import COMMANDS, SUBSCRIPTIONS
from delivery_service.app import build as build_deliveries
from inventory_service.app import build as build_inventory
from order_service.app import build as build_orders
from payment_service.app import build as build_payments
from prescription_service.app import build as build_prescriptions
from service_runtime import logs
from service_runtime.errors import CommandRefused, PermanentFailure, RetryLater, ServiceUnavailable
from service_runtime.locks import KeyedLock
from service_runtime.messaging import ROUTING_KEYS, CommandServer, EventConsumer, RpcClient, Topology
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings

SETTINGS = RuntimeSettings(broker_namespace="unit", delivery_limit=3, retry_backoff_seconds=0)

# --- KeyedLock ---------------------------------------------------------------------------------------


async def test_keyed_lock_lets_only_one_holder_of_a_key_in_at_a_time() -> None:
    locks = KeyedLock()
    release_first = asyncio.Event()
    entered: list[str] = []

    async def hold(name: str, until: asyncio.Event | None = None) -> None:
        async with locks.hold("order-1"):
            entered.append(name)
            if until is not None:
                await until.wait()

    first = asyncio.create_task(hold("first", release_first))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("second"))
    for _ in range(5):
        await asyncio.sleep(0)

    assert entered == ["first"]  # the second waits while the first holds the key
    release_first.set()
    await asyncio.gather(first, second)
    assert entered == ["first", "second"]


async def test_keyed_lock_lets_different_keys_run_at_the_same_time() -> None:
    locks = KeyedLock()
    both_inside = asyncio.Barrier(2)

    async def hold(key: str) -> None:
        async with locks.hold(key):
            # Each waits for the other inside its lock: this only finishes if both are in at once.
            await both_inside.wait()

    await asyncio.wait_for(asyncio.gather(hold("order-1"), hold("order-2")), timeout=1)


async def test_keyed_lock_keeps_waiters_in_arrival_order() -> None:
    locks = KeyedLock()
    order: list[int] = []

    async def hold(n: int) -> None:
        async with locks.hold("pharmacy-1"):
            await asyncio.sleep(0)
            order.append(n)

    await asyncio.gather(*(hold(n) for n in range(5)))

    assert order == [0, 1, 2, 3, 4]


async def test_keyed_lock_forgets_a_key_once_nobody_holds_or_waits_for_it() -> None:
    locks = KeyedLock()
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def hold(key: str) -> None:
        async with locks.hold(key):
            inside.set()
            await leave.wait()

    tasks = [asyncio.create_task(hold("order-1")), asyncio.create_task(hold("order-1"))]
    tasks.append(asyncio.create_task(hold("order-2")))
    await inside.wait()
    assert len(locks) == 2
    leave.set()
    await asyncio.gather(*tasks)

    assert len(locks) == 0


async def test_keyed_lock_is_released_and_forgotten_when_the_work_fails() -> None:
    locks = KeyedLock()

    with pytest.raises(RuntimeError):
        async with locks.hold("order-1"):
            raise RuntimeError("store went away")

    assert len(locks) == 0
    async with asyncio.timeout(1), locks.hold("order-1"):
        pass


# --- CommandServer.dispatch --------------------------------------------------------------------------


def order_commands() -> CommandServer:
    commands = CommandServer("order_service")

    @commands.on(GetOrder)
    async def get_order(command: GetOrder) -> None:
        if command.order_id == "crashes":
            raise KeyError("secret internal detail")
        raise CommandRefused("not_found", f"order {command.order_id} not found", "order_id")

    @commands.on(ListOrders)
    async def list_orders(command: ListOrders) -> list[PharmacyView]:
        where = Location(latitude=52.5, longitude=13.4)
        return [
            PharmacyView(id=f"p-{n}", name="Apotheke", address="Str. 1", location=where) for n in range(2)
        ]

    return commands


async def test_ping_is_answered_with_the_service_name_without_any_handler() -> None:
    reply = await CommandServer("payment_service").dispatch(Ping.TYPE, b"")

    assert reply.error is None
    assert reply.data == {"service": "payment_service"}


async def test_an_unknown_command_is_answered_invalid() -> None:
    reply = await order_commands().dispatch("ShipToMars", b"{}")

    assert reply.data is None
    assert reply.error is not None
    assert reply.error.code == "invalid"
    assert "ShipToMars" in reply.error.detail


async def test_an_invalid_body_is_answered_invalid_naming_the_field() -> None:
    missing = await order_commands().dispatch(GetOrder.TYPE, json.dumps({"owner_id": None}).encode())
    nested = await order_commands().dispatch(
        ListOrders.TYPE, json.dumps({"owner_id": None, "page": {"limit": 0}}).encode()
    )

    assert missing.error is not None
    assert (missing.error.code, missing.error.field) == ("invalid", "order_id")
    assert nested.error is not None
    assert (nested.error.code, nested.error.field) == ("invalid", "page.limit")


async def test_a_body_that_is_not_json_is_answered_invalid() -> None:
    reply = await order_commands().dispatch(GetOrder.TYPE, b"{not json")

    assert reply.error is not None
    assert reply.error.code == "invalid"


async def test_a_refused_command_is_answered_with_its_code_detail_and_field() -> None:
    body = json.dumps({"owner_id": None, "order_id": "order-9"}).encode()

    reply = await order_commands().dispatch(GetOrder.TYPE, body)

    assert reply.error is not None
    assert (reply.error.code, reply.error.detail, reply.error.field) == (
        "not_found",
        "order order-9 not found",
        "order_id",
    )


async def test_an_unexpected_failure_is_answered_internal_without_leaking_its_detail() -> None:
    body = json.dumps({"owner_id": None, "order_id": "crashes"}).encode()

    reply = await order_commands().dispatch(GetOrder.TYPE, body)

    assert reply.error is not None
    assert reply.error.code == "internal"
    assert "secret" not in reply.error.detail


async def test_a_successful_answer_is_plain_json() -> None:
    reply = await order_commands().dispatch(ListOrders.TYPE, json.dumps({"owner_id": None}).encode())

    assert reply.error is None
    assert reply.data == [
        {
            "id": f"p-{n}",
            "name": "Apotheke",
            "address": "Str. 1",
            "location": {"latitude": 52.5, "longitude": 13.4},
        }
        for n in range(2)
    ]
    assert json.loads(reply.model_dump_json())["data"] == reply.data


# --- EventConsumer.consume, against a fake broker and fake deliveries ------------------------------


@dataclass
class FakeBroker:
    """Records what would have been published, or answers requests with a canned reply."""

    published: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    reply: bytes | BaseException = b'{"data": null}'

    async def publish(self, body: bytes, **options: Any) -> None:
        self.published.append((body, options))

    async def request(self, body: bytes, **options: Any) -> FakeDelivery:
        self.requests.append((body, options))
        if isinstance(self.reply, BaseException):
            raise self.reply
        return FakeDelivery(self.reply)


@dataclass
class FakeRaw:
    exchange: str = "unit.events"
    routing_key: str = "payment.refunded"
    type: str = "PaymentRefunded"
    reply_to: str | None = None
    correlation_id: str | None = None
    channel_open: bool = True

    @property
    def channel(self) -> object:
        # Like aio-pika's IncomingMessage.channel once the channel the message came on has closed.
        if not self.channel_open:
            raise ChannelInvalidStateError
        return object()


@dataclass
class FakeDelivery:
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str = "message-1"
    correlation_id: str = "order-1"
    content_type: str = "application/json"
    raw_message: FakeRaw = field(default_factory=FakeRaw)
    acks: int = 0
    nacks: list[bool] = field(default_factory=list)

    async def ack(self) -> None:
        self.acks += 1

    async def nack(self, requeue: bool = True) -> None:
        self.nacks.append(requeue)


REFUND = PaymentRefunded(payment_id="pay-1", order_id="order-1", amount_cents=1039, reason="cancelled")


def delivery(body: bytes | None = None, *, attempt: int = 1) -> FakeDelivery:
    if body is None:
        body = Envelope.wrap(REFUND, correlation_id="order-1").model_dump_json().encode()
    # Quorum queues put x-delivery-count on redeliveries only.
    headers = {"x-delivery-count": attempt - 1} if attempt > 1 else {}
    return FakeDelivery(body, headers=headers)


def consumer(broker: FakeBroker, handler: Callable[[PaymentRefunded, Envelope], Any]) -> EventConsumer:
    events = EventConsumer(
        "order_service",
        cast(RabbitBroker, broker),
        Topology(SETTINGS),
        SETTINGS,
        CommandServer("order_service"),
    )
    events.on(PaymentRefunded)(handler)
    return events


async def consume(events: EventConsumer, message: FakeDelivery) -> None:
    await events.consume(cast(RabbitMessage, message))


def dead_lettered(broker: FakeBroker) -> dict[str, Any]:
    assert len(broker.published) == 1, broker.published
    _, options = broker.published[0]
    assert options["exchange"].name == "unit.dead-letters"
    assert options["routing_key"] == "unit.order_service.events"
    headers: dict[str, Any] = options["headers"]
    return headers


async def test_a_handled_event_is_acked_after_its_handler_ran_with_the_typed_payload() -> None:
    broker = FakeBroker()
    seen: list[tuple[PaymentRefunded, str, str | None]] = []

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        seen.append((event, envelope.correlation_id, logs.correlation_id.get()))

    message = delivery()
    await consume(consumer(broker, handler), message)

    assert seen == [(REFUND, "order-1", "order-1")]  # log lines inside carry the saga's id
    assert logs.correlation_id.get() is None  # and it does not leak to the next message
    assert (message.acks, message.nacks, broker.published) == (1, [], [])


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        (b"not an envelope", "ValidationError"),
        (
            Envelope(type="SomethingElse", correlation_id="o", payload={}).model_dump_json().encode(),
            "PermanentFailure",
        ),
        (
            Envelope(type="PaymentRefunded", correlation_id="o", payload={"order_id": "o"})
            .model_dump_json()
            .encode(),
            "ValidationError",
        ),
    ],
    ids=["not-an-envelope", "unknown-type", "invalid-payload"],
)
async def test_a_message_that_can_never_be_handled_is_dead_lettered_at_once(
    body: bytes, error_type: str
) -> None:
    broker = FakeBroker()
    called: list[PaymentRefunded] = []

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        called.append(event)

    message = delivery(body)
    await consume(consumer(broker, handler), message)

    headers = dead_lettered(broker)
    assert headers["x-error-type"] == error_type
    assert headers["x-failed-service"] == "order_service"
    assert broker.published[0][0] == body  # the original bytes, for a later replay
    assert called == []
    assert (message.acks, message.nacks) == (1, [])


async def test_a_handler_declaring_permanent_failure_dead_letters_its_message() -> None:
    broker = FakeBroker()

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        raise PermanentFailure("order names an unknown prescription")

    message = delivery()
    await consume(consumer(broker, handler), message)

    headers = dead_lettered(broker)
    assert (headers["x-error-type"], headers["x-error"]) == (
        "PermanentFailure",
        "order names an unknown prescription",
    )
    assert message.acks == 1


@pytest.mark.parametrize("failure", [RetryLater("order not there yet"), RuntimeError("a bug")])
async def test_a_failing_handler_is_retried_in_place_never_put_back_behind_later_messages(
    failure: Exception,
) -> None:
    broker = FakeBroker()
    calls = 0

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        if calls < SETTINGS.delivery_limit:
            raise failure

    message = delivery()
    await consume(consumer(broker, handler), message)

    # A nack would requeue it behind the later messages of its order this consumer holds already.
    assert (calls, message.acks, message.nacks, broker.published) == (SETTINGS.delivery_limit, 1, [], [])


async def test_retries_count_from_the_brokers_redeliveries_so_a_crash_loop_still_ends() -> None:
    broker = FakeBroker()
    calls = 0

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug")

    message = delivery(attempt=SETTINGS.delivery_limit - 1)
    await consume(consumer(broker, handler), message)

    assert dead_lettered(broker)["x-attempts"] == SETTINGS.delivery_limit
    assert (calls, message.acks, message.nacks) == (2, 1, [])


def refund_of(order_id: str, n: int) -> FakeDelivery:
    event = PaymentRefunded(payment_id=f"pay-{n}", order_id=order_id, amount_cents=n, reason="cancelled")
    body = Envelope.wrap(event, correlation_id=order_id).model_dump_json().encode()
    return FakeDelivery(body, headers={"x-partition-key": order_id}, message_id=f"m-{order_id}-{n}")


async def test_one_orders_events_are_handled_in_order_and_other_orders_at_the_same_time() -> None:
    broker = FakeBroker()
    handled: dict[str, list[int]] = {}
    running = 0
    most_at_once = 0

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        # The first events of an order take longest: a later one would overtake them if it could.
        await asyncio.sleep(0.001 * (10 - event.amount_cents))
        handled.setdefault(event.order_id, []).append(event.amount_cents)
        running -= 1

    events = consumer(broker, handler)
    orders = [f"order-{k}" for k in range(5)]
    # As aiormq does: one task per delivery, started in the order the partition delivered them.
    deliveries = [refund_of(order_id, n) for n in range(10) for order_id in orders]
    await asyncio.gather(*(consume(events, message) for message in deliveries))

    assert handled == {order_id: list(range(10)) for order_id in orders}
    assert most_at_once == len(orders)
    assert all(message.acks == 1 for message in deliveries)


async def test_a_handler_still_failing_at_the_delivery_limit_is_dead_lettered_with_its_attempts() -> None:
    broker = FakeBroker()

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        raise RuntimeError("a bug")

    message = delivery(attempt=SETTINGS.delivery_limit)
    await consume(consumer(broker, handler), message)

    headers = dead_lettered(broker)
    assert (headers["x-error-type"], headers["x-attempts"]) == ("RuntimeError", SETTINGS.delivery_limit)
    assert (message.acks, message.nacks) == (1, [])


async def test_an_unreachable_store_is_waited_out_in_place_without_spending_a_delivery() -> None:
    broker = FakeBroker()
    calls = 0

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise AutoReconnect("store restarting")

    # At the last delivery the limit allows: a nack here would dead-letter a good event.
    message = delivery(attempt=SETTINGS.delivery_limit)
    await consume(consumer(broker, handler), message)

    assert (calls, message.acks, message.nacks, broker.published) == (4, 1, [], [])


async def test_a_message_whose_channel_closed_is_left_to_the_broker_to_redeliver() -> None:
    broker = FakeBroker()
    message = delivery()

    async def handler(event: PaymentRefunded, envelope: Envelope) -> None:
        message.raw_message.channel_open = False  # the broker went away mid-handler
        raise AutoReconnect("broker and store restarting")

    await consume(consumer(broker, handler), message)

    # No ack, no nack, no dead letter: another consumer (or this one, reconnected) gets it again.
    assert (message.acks, message.nacks, broker.published) == (0, [], [])


# --- write commands, which arrive on the event queue ------------------------------------------------


def write_command(command: Command, *, reply_by: int | None = None) -> FakeDelivery:
    headers = {} if reply_by is None else {"x-reply-by": reply_by}
    raw = FakeRaw(
        exchange="", routing_key="unit.order_service.events", type=command.TYPE, reply_to="unit.replies.1"
    )
    return FakeDelivery(
        command.model_dump_json().encode(), headers=headers, correlation_id="rq-1", raw_message=raw
    )


def cancelling_consumer(broker: FakeBroker, cancelled: list[str]) -> EventConsumer:
    commands = CommandServer("order_service")

    @commands.on(CancelOrder)
    async def cancel(command: CancelOrder) -> dict[str, str]:
        cancelled.append(command.order_id)
        return {"id": command.order_id, "status": "CANCELLED"}

    return EventConsumer("order_service", cast(RabbitBroker, broker), Topology(SETTINGS), SETTINGS, commands)


async def test_a_write_command_on_the_event_queue_is_carried_out_answered_and_acked() -> None:
    broker, cancelled = FakeBroker(), list[str]()
    message = write_command(
        CancelOrder(owner_id=None, order_id="o-1"), reply_by=int((time.time() + 10) * 1000)
    )

    await consume(cancelling_consumer(broker, cancelled), message)

    assert (cancelled, message.acks, message.nacks) == (["o-1"], 1, [])
    [(body, options)] = broker.published
    assert (options["routing_key"], options["correlation_id"]) == ("unit.replies.1", "rq-1")
    assert json.loads(body) == {"data": {"id": "o-1", "status": "CANCELLED"}, "error": None}


async def test_a_write_command_its_caller_stopped_waiting_for_is_dropped_not_carried_out() -> None:
    broker, cancelled = FakeBroker(), list[str]()
    message = write_command(
        CancelOrder(owner_id=None, order_id="o-1"), reply_by=int((time.time() - 1) * 1000)
    )

    await consume(cancelling_consumer(broker, cancelled), message)

    assert (cancelled, message.acks, broker.published) == ([], 1, [])


async def test_a_write_command_sent_to_the_rpc_queue_is_refused_there() -> None:
    cancelled: list[str] = []
    events = cancelling_consumer(FakeBroker(), cancelled)
    message = write_command(CancelOrder(owner_id=None, order_id="o-1"))

    response = await events.commands.answer(cast(RabbitMessage, message))

    assert cancelled == []
    assert json.loads(response.body)["error"]["code"] == "internal"


# --- RpcClient, against a fake broker ------------------------------------------------------------


@dataclass
class FakeRequester:
    """The transport under RpcClient, answering with the fake broker's canned reply."""

    broker: FakeBroker

    async def request(
        self,
        body: bytes,
        *,
        queue: str,
        message_type: str,
        timeout: float,
        expire: bool = True,
        exchange: str = "",
        partition_key: str | None = None,
    ) -> bytes:
        delivery = await self.broker.request(
            body,
            queue=queue,
            message_type=message_type,
            timeout=timeout,
            expire=expire,
            exchange=exchange,
            partition_key=partition_key,
        )
        return delivery.body


def rpc(broker: FakeBroker) -> RpcClient:
    return RpcClient(FakeRequester(broker), SETTINGS)


async def test_rpc_sends_a_command_to_the_service_that_owns_it_and_validates_the_answer() -> None:
    where = {"latitude": 52.5, "longitude": 13.4}
    broker = FakeBroker(
        reply=json.dumps({"data": [{"id": "p", "name": "n", "address": "a", "location": where}]}).encode()
    )

    answer = await rpc(broker).ask(ListPharmacies(), list[PharmacyView])

    assert answer == [
        PharmacyView(id="p", name="n", address="a", location=Location(latitude=52.5, longitude=13.4))
    ]
    _, options = broker.requests[0]
    assert (options["queue"], options["message_type"]) == ("unit.inventory_service.rpc", "ListPharmacies")


async def test_rpc_raises_a_refusal_with_the_code_and_field_the_service_gave() -> None:
    error = {"code": "not_found", "detail": "order o not found", "field": "order_id"}
    broker = FakeBroker(reply=json.dumps({"error": error}).encode())

    with pytest.raises(CommandRefused) as refused:
        await rpc(broker).ask(GetOrder(owner_id=None, order_id="o"), dict)

    assert (refused.value.code, refused.value.detail, refused.value.field) == (
        "not_found",
        "order o not found",
        "order_id",
    )
    assert broker.requests[0][1]["queue"] == "unit.order_service.rpc"


async def test_rpc_queues_a_write_on_its_orders_partition_and_never_lets_the_broker_expire_it() -> None:
    broker = FakeBroker(reply=json.dumps({"data": {}}).encode())

    await rpc(broker).ask(CancelOrder(owner_id=None, order_id="o"), dict)

    body, options = broker.requests[0]
    # Hashed on the order's id, as the order's events are: it queues behind them, in the same partition.
    assert (options["exchange"], options["partition_key"]) == ("unit.order_service.partitions", "o")
    # An expired message on a quorum event queue would be dead-lettered; x-reply-by drops it instead.
    assert options["expire"] is False
    # A request id, so that a redelivered write creates nothing twice.
    assert len(json.loads(body)["request_id"]) == 32


async def test_rpc_says_the_service_is_unavailable_when_nobody_answers() -> None:
    broker = FakeBroker(reply=TimeoutError())

    with pytest.raises(ServiceUnavailable, match="order_service"):
        await rpc(broker).ask(GetOrder(owner_id=None, order_id="o"), dict)
    assert await rpc(broker).ping("order_service") is False


# --- the routing table and the services built on it ----------------------------------------------


def test_every_event_has_at_least_one_subscriber_or_is_the_journals_alone() -> None:
    heard = {event for events in SUBSCRIPTIONS.values() for event in events}

    assert [e.TYPE for e in ALL_EVENTS if e not in heard and e not in topology.JOURNALLED_ONLY] == []


def test_an_event_for_the_journal_alone_is_no_services_and_no_timer() -> None:
    heard = {event for events in SUBSCRIPTIONS.values() for event in events}

    assert [e.TYPE for e in topology.JOURNALLED_ONLY if e in heard or issubclass(e, Timer)] == []


def test_every_subscribed_event_is_a_known_event() -> None:
    heard = {event for events in SUBSCRIPTIONS.values() for event in events}

    assert [e.TYPE for e in heard if e not in ALL_EVENTS] == []


def test_routing_keys_and_type_names_are_unique() -> None:
    keys = [e.ROUTING_KEY for e in ALL_EVENTS]
    types = [e.TYPE for e in ALL_EVENTS]

    assert len(set(keys)) == len(keys)
    assert len(set(types)) == len(types)
    assert {e.TYPE: e.ROUTING_KEY for e in ALL_EVENTS} == ROUTING_KEYS


def test_every_command_but_ping_has_exactly_one_owner() -> None:
    owners: dict[str, list[str]] = {}
    for service, commands in COMMANDS.items():
        for command in commands:
            owners.setdefault(command.TYPE, []).append(service)

    assert {t: s for t, s in owners.items() if t != Ping.TYPE and len(s) != 1} == {}
    assert sorted(owners[Ping.TYPE]) == sorted(COMMANDS)


BUILDS: list[tuple[Callable[[], Service], str]] = [
    (build_orders, "order_service"),
    (build_inventory, "inventory_service"),
    (build_payments, "payment_service"),
    (build_prescriptions, "prescription_service"),
    (build_deliveries, "delivery_service"),
]


@pytest.mark.parametrize(("build", "name"), BUILDS, ids=[name for _, name in BUILDS])
async def test_each_service_handles_exactly_the_events_and_commands_the_routing_table_sends_it(
    build: Callable[[], Service], name: str
) -> None:
    service = build()  # wiring only: nothing connects until start()
    try:
        service.events.check_against_topology()
        assert service.name == name
        assert set(service.events.routes) == {e.TYPE for e in SUBSCRIPTIONS[name]}
        # Every service answers Ping and sweeps its own outbox; those two come with the runtime.
        assert set(service.commands.routes) - {SweepOutbox.TYPE} == {
            c.TYPE for c in COMMANDS[name] if c.QUEUE is None
        } - {Ping.TYPE}
        # A slow read is served by the worker of its own queue, and only there.
        for command in COMMANDS[name]:
            if command.QUEUE is not None:
                assert command.TYPE in service.workers[command.QUEUE].routes
    finally:
        await service.client.close()


async def test_the_topology_check_fails_a_service_that_forgets_an_event() -> None:
    service = build_orders()
    try:
        forgotten = SUBSCRIPTIONS["order_service"][0].TYPE
        del service.events.routes[forgotten]

        with pytest.raises(RuntimeError, match=forgotten):
            service.events.check_against_topology()
    finally:
        await service.client.close()


# --- envelopes and events ------------------------------------------------------------------------


def stock_reserved() -> StockReserved:
    return StockReserved(
        order_id="order-1",
        patient_id="patient-1",
        pharmacy_id="pharmacy-1",
        lines=(ReservedLine(medication_id="ibuprofen", quantity=2, unit_price_cents=420),),
        total_cents=840,
        payment_method_id="card-1",
    )


def test_an_envelope_round_trips_through_json_with_its_event() -> None:
    event = stock_reserved()

    envelope = Envelope.wrap(event, correlation_id="order-1", causation_id="cause-1")
    again = Envelope.model_validate_json(envelope.model_dump_json())

    assert again == envelope
    assert (again.type, again.version, again.correlation_id, again.causation_id) == (
        "StockReserved",
        StockReserved.VERSION,
        "order-1",
        "cause-1",
    )
    assert again.occurred_at.tzinfo is not None
    assert StockReserved.model_validate(again.payload) == event


def test_every_wrap_is_a_new_message() -> None:
    first = Envelope.wrap(stock_reserved(), correlation_id="order-1")
    second = Envelope.wrap(stock_reserved(), correlation_id="order-1")

    assert first.event_id != second.event_id


def test_a_reader_tolerates_fields_a_newer_writer_added() -> None:
    envelope = Envelope.wrap(stock_reserved(), correlation_id="order-1")
    newer = {**envelope.model_dump(mode="json"), "schema": "v2"}
    newer["payload"] = {**newer["payload"], "currency": "EUR", "courier": {"name": "bike"}}

    read = Envelope.model_validate_json(json.dumps(newer))

    assert read.event_id == envelope.event_id
    assert StockReserved.model_validate(read.payload) == stock_reserved()


def test_events_are_frozen_values() -> None:
    assert [e.TYPE for e in ALL_EVENTS if e.model_config.get("frozen") is not True] == []
    with pytest.raises(ValidationError):
        stock_reserved().total_cents = 1  # type: ignore[misc]
