"""One order's saga as the journal tells it: its steps in order, the time between them, where it
ended or what it waits for. `pharmacy-ops timeline` prints it; the journal answers it over RPC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.commands import SagaStep, SagaTimelineView

# The events an order's saga ends with, and its status then.
TERMINAL = {
    "OrderRejected": "REJECTED",
    "OrderCancelled": "CANCELLED",
    "DeliveryCompleted": "DELIVERED",
    "DeliveryReturned": "RETURNED",
    "OrderReturned": "RETURNED",
}
# Where a saga not ended waits, after its last event, when people (not services) move it on.
WAITING = {
    "OrderConfirmed": "paid, waiting for its pharmacy to dispense it",
    "OrderReadyForPickup": "dispensed, waiting for a courier",
    "DeliveryAssigned": "a courier is on the way to the pharmacy",
    "DeliveryUnassigned": "its courier went off duty before collecting it, waiting for another",
    "DeliveryPickedUp": "out for delivery",
    "PaymentCaptured": "out for delivery",
    "DeliveryAttemptFailed": "a delivery attempt failed, another follows",
}


def step_detail(payload: dict[str, Any]) -> str:
    """The one thing worth seeing about a step: why it went so, or what money it moved and where,
    or who carries it and with what proof."""
    if payload.get("reason"):
        attempt = f"attempt {payload['attempt']}: " if payload.get("attempt") else ""
        return f"{attempt}{payload['reason']}"
    cents = payload.get("total_cents", payload.get("amount_cents"))
    money = f"{cents / 100:.2f}" if isinstance(cents, int) else ""
    where = f"pharmacy {str(payload['pharmacy_id'])[:8]}" if payload.get("pharmacy_id") else ""
    courier = f"courier {str(payload['courier_id'])[:8]}" if payload.get("courier_id") else ""
    proof = f"proof {payload['proof']}" if payload.get("proof") else ""
    return ", ".join(part for part in (money, where, courier, proof) if part)


def saga_timeline(order_id: str, found: Sequence[dict[str, Any]]) -> SagaTimelineView:
    """The saga of the journal's documents of one order (oldest first, payloads opened)."""
    steps: list[SagaStep] = []
    previous = found[0]["occurred_at"] if found else None
    for doc in found:
        steps.append(
            SagaStep(
                event_id=str(doc["_id"]),
                type=doc["type"],
                occurred_at=doc["occurred_at"],
                step_ms=round((doc["occurred_at"] - previous).total_seconds() * 1000),
                publisher=doc.get("publisher") or "?",
                detail=step_detail(doc["envelope"]["payload"]),
            )
        )
        previous = doc["occurred_at"]
    total_ms = (
        round((found[-1]["occurred_at"] - found[0]["occurred_at"]).total_seconds() * 1000) if found else 0
    )
    ended = [TERMINAL[step.type] for step in steps if step.type in TERMINAL]
    return SagaTimelineView(
        order_id=order_id,
        steps=tuple(steps),
        total_ms=total_ms,
        ended=ended[-1] if ended else None,
        waiting=None if ended or not steps else WAITING.get(steps[-1].type),
    )
