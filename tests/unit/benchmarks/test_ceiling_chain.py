"""The ceiling replays the chain a warm-up saw: who publishes what on which message, how often."""

from __future__ import annotations

from benchmarks.ceiling import Step, learn
from benchmarks.load import Seen
from benchmarks.traffic import Traffic


def seen(kind: str, event_id: str, cause: str | None, order: str, publisher: str) -> Seen:
    return Seen(kind, event_id, cause, order, publisher, b"{}", None)


def test_chain_follows_the_causes_a_warm_up_saw_and_the_round_trips_metrics_counted() -> None:
    events = []
    for order in ("o1", "o2"):
        events += [
            seen("PrescriptionUploaded", f"{order}-1", None, order, "prescription_service"),
            seen("OrderCreated", f"{order}-2", f"{order}-1", order, "order_service"),
            seen("StockReserved", f"{order}-3", f"{order}-2", order, "inventory_service"),
            seen("ReservationDeadline", f"{order}-4", f"{order}-2", order, "inventory_service"),
        ]
    traffic = Traffic()
    traffic.answered[("prescription_service", "UploadPrescription")] = 10
    traffic.answered[("payment_service", "GetPaymentMethod")] = 10
    traffic.answered[("inventory_service", "Ping")] = 3  # a health probe: not per order

    chain = learn(events, traffic, orders=10)

    assert chain.write == ("prescription_service", "UploadPrescription")
    assert chain.reads == [("payment_service", "GetPaymentMethod")]
    assert set(chain.steps) == {
        Step("prescription_service", "UploadPrescription", "PrescriptionUploaded", 1),
        Step("order_service", "PrescriptionUploaded", "OrderCreated", 1),
        Step("inventory_service", "OrderCreated", "StockReserved", 1),
        Step("inventory_service", "OrderCreated", "ReservationDeadline", 1),
    }
