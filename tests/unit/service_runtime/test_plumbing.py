"""Runtime pieces and the routing table, without a broker."""

from __future__ import annotations

import asyncio
import json

import pytest

from contracts.base import Envelope
from contracts.commands import GetOrder, OrderView
from contracts.events import ALL_EVENTS, PaymentRefunded
from contracts.topology import COMMANDS, SUBSCRIPTIONS
from inventory_service.app import build as build_inventory
from order_service.app import build as build_orders
from payment_service.app import build as build_payments
from prescription_service.app import build as build_prescriptions
from service_runtime.errors import CommandRefused
from service_runtime.locks import KeyedLock
from service_runtime.messaging import CommandServer


async def test_keyed_lock_serialises_one_key_and_lets_others_run() -> None:
    locks = KeyedLock()
    log: list[str] = []

    async def work(key: str, name: str) -> None:
        async with locks.hold(key):
            log.append(f"{name} in")
            await asyncio.sleep(0.01)
            log.append(f"{name} out")

    await asyncio.gather(work("order-1", "a"), work("order-1", "b"), work("order-2", "c"))

    assert log.index("a out") < log.index("b in")
    assert log.index("c in") < log.index("a out")
    assert len(locks) == 0


def server() -> CommandServer:
    commands = CommandServer("order_service")

    @commands.on(GetOrder)
    async def get_order(command: GetOrder) -> OrderView:
        if command.order_id == "boom":
            raise RuntimeError("database on fire")
        raise CommandRefused("not_found", f"order {command.order_id} not found")

    return commands


async def test_command_server_answers_every_case_with_a_reply() -> None:
    commands = server()

    ping = await commands.dispatch("Ping", b"{}")
    unknown = await commands.dispatch("FlyToTheMoon", b"{}")
    invalid = await commands.dispatch("GetOrder", b'{"owner_id": null}')
    refused = await commands.dispatch("GetOrder", json.dumps({"owner_id": None, "order_id": "o-1"}).encode())
    failed = await commands.dispatch("GetOrder", json.dumps({"owner_id": None, "order_id": "boom"}).encode())

    assert ping.data == {"service": "order_service"}
    assert unknown.error is not None
    assert unknown.error.code == "invalid"
    assert invalid.error is not None
    assert (invalid.error.code, invalid.error.field) == ("invalid", "order_id")
    assert refused.error is not None
    assert refused.error.code == "not_found"
    assert failed.error is not None
    assert failed.error.code == "internal"
    assert "fire" not in failed.error.detail  # internals stay in the log


def test_every_event_has_a_listener_and_a_routing_key_of_its_own() -> None:
    heard = {event for events in SUBSCRIPTIONS.values() for event in events}
    assert set(ALL_EVENTS) <= heard
    keys = [event.ROUTING_KEY for event in ALL_EVENTS]
    assert len(keys) == len(set(keys))
    assert len({e.TYPE for e in ALL_EVENTS}) == len(ALL_EVENTS)


@pytest.mark.parametrize("build", [build_orders, build_inventory, build_payments, build_prescriptions])
def test_each_service_handles_exactly_what_the_routing_table_sends_it(build: object) -> None:
    service = build()  # type: ignore[operator]
    service.events.check_against_topology()
    expected = {c.TYPE for c in COMMANDS[service.name]} - {"Ping"}
    assert set(service.commands.routes) == expected


def test_envelopes_round_trip_and_readers_tolerate_new_fields() -> None:
    event = PaymentRefunded(payment_id="p", order_id="o", amount_cents=5, reason="r")
    envelope = Envelope.wrap(event, correlation_id="o", causation_id="c")

    again = Envelope.model_validate_json(envelope.model_dump_json())
    newer = {**again.payload, "currency": "EUR"}

    assert again == envelope
    assert PaymentRefunded.model_validate(newer) == event
