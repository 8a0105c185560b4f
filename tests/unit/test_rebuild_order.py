"""Which journalled events a rebuild sends a service, and in which order."""

from __future__ import annotations

from typing import Any

from operations.replay import in_decision_order, plan


def event(event_id: str, kind: str, publisher: str, decided_after: str | None = None) -> dict[str, Any]:
    return {"_id": event_id, "type": kind, "publisher": publisher, "decided_after": decided_after}


def test_an_own_event_goes_right_after_the_event_its_service_had_handled_last() -> None:
    # The patient's cancel waited in order_service's queue behind OrderCreated's answer, StockReserved,
    # and its OrderCancelled reached the journal after StockReserved; it was decided before it.
    journal = [
        event("upload", "PrescriptionUploaded", "prescription_service"),
        event("reserved", "StockReserved", "inventory_service"),
        event("cancel", "OrderCancelled", "order_service", decided_after="upload"),
        event("approved", "PaymentApproved", "payment_service"),
    ]

    going = in_decision_order(journal, "order_service")

    assert [e["_id"] for e in going] == ["upload", "cancel", "reserved", "approved"]


def test_own_events_with_nothing_to_go_by_keep_their_place() -> None:
    journal = [
        event("a", "StockReserved", "inventory_service"),
        event("mine", "OrderCancelled", "order_service"),  # decided on an event, or before any
        event("b", "PaymentApproved", "payment_service"),
        event("lost", "OrderCancelled", "order_service", decided_after="pruned-long-ago"),
        event("late", "OrderCancelled", "order_service", decided_after="a"),
    ]

    going = in_decision_order(journal, "order_service")

    assert [e["_id"] for e in going] == ["a", "late", "mine", "b", "lost"]


def test_a_rebuild_sends_the_subscriptions_and_the_own_events_that_record_commands() -> None:
    journal = [
        event("up", "PrescriptionUploaded", "prescription_service"),
        event("created", "OrderCreated", "order_service"),
        event("reserved", "StockReserved", "inventory_service"),
        event("cancel", "OrderCancelled", "order_service", decided_after="up"),
    ]

    replayed, left_out = plan(journal, "order_service")
    rebuilt, not_needed = plan(journal, "order_service", rebuild=True)

    assert [e["_id"] for e in replayed] == ["up", "reserved"]
    assert left_out == {"OrderCreated": 1, "OrderCancelled": 1}
    assert [e["_id"] for e in rebuilt] == ["up", "cancel", "reserved"]
    assert not_needed == {"OrderCreated": 1}
