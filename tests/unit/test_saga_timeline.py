"""An order's saga summarised from the journal's documents (operations/timeline.py), as the CLI prints
it and the journal answers the operator's screens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from contracts import topology
from contracts.commands import FailedService
from operations.timeline import saga_timeline

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def doc(n: int, kind: str, ms: int, publisher: str = "order_service", **payload: Any) -> dict[str, Any]:
    return {
        "_id": f"event-{n}",
        "type": kind,
        "occurred_at": START + timedelta(milliseconds=ms),
        "publisher": publisher,
        "envelope": {"payload": payload},
    }


def test_each_step_says_the_time_since_the_one_before_and_the_saga_where_it_ended() -> None:
    found = [
        doc(1, "PrescriptionUploaded", 0, "prescription_service"),
        doc(2, "OrderCreated", 12, total_cents=840),
        doc(3, "StockReserved", 40, "inventory_service", pharmacy_id="abcdef0123456789"),
        doc(4, "PaymentDeclined", 95, "payment_service", reason="card declined"),
        doc(5, "OrderCancelled", 100, reason="payment declined"),
    ]

    saga = saga_timeline("order-1", found)

    assert [s.step_ms for s in saga.steps] == [0, 12, 28, 55, 5]
    assert [s.detail for s in saga.steps] == [
        "",
        "8.40",
        "pharmacy abcdef01",
        "card declined",
        "payment declined",
    ]
    assert (saga.total_ms, saga.ended, saga.waiting) == (100, "CANCELLED", None)


def test_a_saga_not_ended_says_what_it_waits_for_and_an_unknown_publisher_is_a_question_mark() -> None:
    saga = saga_timeline("order-1", [doc(1, "OrderCreated", 0, ""), doc(2, "OrderConfirmed", 7)])

    assert saga.steps[0].publisher == "?"
    assert (saga.ended, saga.waiting) == (None, "paid, waiting for its pharmacy to dispense it")


def test_no_events_is_an_empty_saga() -> None:
    saga = saga_timeline("order-1", [])

    assert (saga.steps, saga.total_ms, saga.ended, saga.waiting) == ((), 0, None, None)


def test_a_dead_letter_comes_from_a_service_that_has_an_event_queue() -> None:
    assert set(get_args(FailedService)) == set(topology.SUBSCRIPTIONS)
    # The journal's process answers the operator's commands, and no service claims them.
    assert not {c.TYPE for c in topology.OPERATOR_COMMANDS[topology.JOURNAL]} - {"Ping"} & {
        c.TYPE for commands in topology.COMMANDS.values() for c in commands
    }
