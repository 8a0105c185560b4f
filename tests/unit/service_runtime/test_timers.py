"""Durable timers without a broker: the timer queue's arguments, what the routing table says about timers,
and the per-message TTL the event bus gives a Timer. The broker's side is in tests/integration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

import aio_pika
import pytest
from conftest import RecordingConnection
from faststream.rabbit import RabbitBroker
from pydantic import ValidationError

from contracts import topology
from contracts.base import Envelope, Timer
from contracts.events import ALL_EVENTS, ReservationDeadline, ReservationExpired
from inventory_service.handlers import InventorySettings
from service_runtime.messaging import EventBus, Topology
from service_runtime.settings import RuntimeSettings

SETTINGS = RuntimeSettings(broker_namespace="unit")


def deadline(fires_at: datetime) -> ReservationDeadline:
    return ReservationDeadline(
        reservation_id="order-1", order_id="order-1", pharmacy_id="p", fires_at=fires_at
    )


async def published(event: ReservationDeadline | ReservationExpired) -> tuple[str, aio_pika.Message]:
    """The routing key and message EventBus publishes `event` with."""
    connection = RecordingConnection()
    bus = EventBus(cast(RabbitBroker, SimpleNamespace(_connection=connection)), Topology(SETTINGS))
    await bus.publish(Envelope.wrap(event, correlation_id="order-1").model_dump(mode="json"))
    [(_, routing_key, message)] = connection.published
    return routing_key, message


def test_the_timer_queue_dead_letters_due_timers_into_the_partition_of_their_order() -> None:
    spec = Topology(SETTINGS).timer_queue("inventory_service")

    assert spec.name == "unit.inventory_service.timers.v2"
    assert spec.durable
    # The partition exchange hashes the x-partition-key header the timer carries from its publisher.
    assert spec.arguments == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "unit.inventory_service.partitions",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_every_timer_has_a_subscriber_and_is_a_known_event() -> None:
    timers = [e for e in ALL_EVENTS if issubclass(e, Timer)]
    subscribed = {e for events in topology.SUBSCRIPTIONS.values() for e in events}

    assert timers == [ReservationDeadline]
    assert set(timers) <= subscribed
    assert ReservationDeadline in topology.SUBSCRIPTIONS["inventory_service"]


async def test_a_timer_is_published_to_expire_when_it_falls_due() -> None:
    routing_key, message = await published(deadline(datetime.now(UTC) + timedelta(minutes=15)))

    held = message.expiration
    assert isinstance(held, timedelta)
    assert timedelta(minutes=14, seconds=59) < held <= timedelta(minutes=15)
    assert routing_key == ReservationDeadline.ROUTING_KEY


async def test_a_timer_published_after_it_fell_due_is_not_held_at_all() -> None:
    # The outbox relay publishes late after a crash: the deadline fires at once, never with a negative TTL.
    _, message = await published(deadline(datetime.now(UTC) - timedelta(minutes=1)))

    assert message.expiration == timedelta(0)
    assert message.properties.expiration == "0"  # as the broker reads it: due now


async def test_an_ordinary_event_is_published_without_an_expiry() -> None:
    expired = ReservationExpired(reservation_id="order-1", order_id="order-1", pharmacy_id="p", reason="r")

    _, message = await published(expired)

    assert message.expiration is None


def test_a_timer_must_say_when_in_utc_terms() -> None:
    with pytest.raises(ValidationError):
        deadline(datetime(2026, 11, 26, 9, 0))  # naive: no time zone


def test_the_reservation_hold_defaults_to_15_minutes_and_must_be_positive() -> None:
    assert InventorySettings().reservation_hold_seconds == 900
    assert InventorySettings(reservation_hold_seconds=1.5).reservation_hold_seconds == 1.5
    for wrong in (0, -1):
        with pytest.raises(ValidationError):
            InventorySettings(reservation_hold_seconds=wrong)


def test_the_reservation_hold_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESERVATION_HOLD_SECONDS", "60")

    assert InventorySettings().reservation_hold_seconds == 60
