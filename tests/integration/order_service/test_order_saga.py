"""order_service on a real broker and store: how each saga event moves an order, and what it announces."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, stored

from contracts.events import (
    LineShortage,
    Location,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderRejected,
    PaymentApproved,
    PaymentDeclined,
    PrescribedLine,
    PrescriptionUploaded,
    ReservationExpired,
    ReservedLine,
    StockReservationFailed,
    StockReserved,
)
from order_service.app import Settings, build
from order_service.store import orders
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Document = dict[str, Any]
Start = Callable[[Service], Awaitable[Service]]


def prescription_uploaded() -> PrescriptionUploaded:
    return PrescriptionUploaded(
        prescription_id=str(uuid4()),
        order_id=str(uuid4()),
        patient_id=f"patient-{uuid4().hex[:8]}",
        lines=(
            PrescribedLine(medication_id="amoxicillin-500", quantity=2),
            PrescribedLine(medication_id="ibuprofen-200", quantity=1),
        ),
        delivery_location=Location(latitude=52.37, longitude=4.89),
        payment_method_id="pm-1",
    )


def stock_reserved(upload: PrescriptionUploaded) -> StockReserved:
    return StockReserved(
        order_id=upload.order_id,
        patient_id=upload.patient_id,
        pharmacy_id="pharmacy-1",
        lines=(
            ReservedLine(medication_id="amoxicillin-500", quantity=2, unit_price_cents=450),
            ReservedLine(medication_id="ibuprofen-200", quantity=1, unit_price_cents=300),
        ),
        total_cents=1200,
        payment_method_id=upload.payment_method_id,
    )


async def open_order(probe: EventProbe, upload: PrescriptionUploaded) -> None:
    await probe.publish(upload, correlation_id=upload.order_id)
    await probe.wait_for(OrderCreated, correlation_id=upload.order_id)


async def order_in(service: Service, order_id: str, status: str) -> Document:
    """The order as stored, once in `status`, its sealed fields opened."""
    return await eventually(
        lambda: stored(orders(service), order_id),
        lambda doc: doc["status"] == status,
        what=f"order {order_id} to be {status}",
    )


def statuses(order: Document) -> list[str]:
    return [change["status"] for change in order["history"]]


async def test_uploaded_prescription_opens_a_pending_order_and_announces_it(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()

    sent = await probe.publish(upload, correlation_id=upload.order_id)
    created = await probe.wait_for(OrderCreated, correlation_id=upload.order_id)

    assert created.causation_id == str(sent.event_id)
    assert OrderCreated.model_validate(created.payload) == OrderCreated(
        order_id=upload.order_id,
        prescription_id=upload.prescription_id,
        patient_id=upload.patient_id,
        lines=upload.lines,
        delivery_location=upload.delivery_location,
        payment_method_id=upload.payment_method_id,
    )
    order = await eventually(
        lambda: stored(orders(service), upload.order_id),
        lambda doc: not doc.get("outbox") and "outbox_since" not in doc,
        what="the published OrderCreated to leave the order's outbox",
    )
    assert order["status"] == "PENDING"
    assert order["prescription_id"] == upload.prescription_id
    assert order["patient_id"] == upload.patient_id
    assert order["lines"] == [line.model_dump() for line in upload.lines]
    assert order["processed_event_ids"] == [str(sent.event_id)]
    assert statuses(order) == ["PENDING"]


async def test_the_same_upload_delivered_twice_opens_one_order(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()

    sent = await probe.publish(upload, correlation_id=upload.order_id)
    await probe.publish(upload, correlation_id=upload.order_id, envelope=sent)
    # One order's events are taken one at a time, in order: once a later event of the order is
    # applied, both copies were handled.
    reserved = await probe.publish(stock_reserved(upload), correlation_id=upload.order_id)
    await order_in(service, upload.order_id, "STOCK_RESERVED")

    assert await service.db["orders"].count_documents({"prescription_id": upload.prescription_id}) == 1
    announced = [e for e in probe.of_type(OrderCreated) if e.correlation_id == upload.order_id]
    assert len(announced) == 1
    order = await service.db["orders"].find_one({"_id": upload.order_id})
    assert order is not None
    assert order["processed_event_ids"] == [str(sent.event_id), str(reserved.event_id)]


async def test_reserved_stock_then_approved_payment_confirms_the_order(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    await open_order(probe, upload)

    reserved = stock_reserved(upload)
    await probe.publish(reserved, correlation_id=upload.order_id)
    held = await order_in(service, upload.order_id, "STOCK_RESERVED")
    assert held["pharmacy_id"] == "pharmacy-1"
    assert held["total_cents"] == 1200
    assert held["priced_lines"] == [line.model_dump() for line in reserved.lines]

    approved = PaymentApproved(
        payment_id="payment-1", order_id=upload.order_id, patient_id=upload.patient_id, amount_cents=1200
    )
    await probe.publish(approved, correlation_id=upload.order_id)
    confirmed = await probe.wait_for(OrderConfirmed, correlation_id=upload.order_id)

    assert OrderConfirmed.model_validate(confirmed.payload) == OrderConfirmed(
        order_id=upload.order_id,
        prescription_id=upload.prescription_id,
        patient_id=upload.patient_id,
        pharmacy_id="pharmacy-1",
        total_cents=1200,
    )
    order = await order_in(service, upload.order_id, "CONFIRMED")
    assert order["payment_id"] == "payment-1"
    assert statuses(order) == ["PENDING", "STOCK_RESERVED", "CONFIRMED"]
    assert len(order["processed_event_ids"]) == 3


async def test_failed_reservation_rejects_the_order_with_the_reason_per_line(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    await open_order(probe, upload)
    shortages = (
        LineShortage(
            medication_id="amoxicillin-500",
            requested=2,
            best_available=1,
            reason="at most 1 available at one pharmacy within 50 km",
        ),
        LineShortage(
            medication_id="ibuprofen-200",
            requested=1,
            best_available=0,
            reason="no pharmacy within 50 km has it in stock",
        ),
    )

    await probe.publish(
        StockReservationFailed(order_id=upload.order_id, shortages=shortages), correlation_id=upload.order_id
    )
    rejected = await probe.wait_for(OrderRejected, correlation_id=upload.order_id)

    reason = OrderRejected.model_validate(rejected.payload).reason
    assert "amoxicillin-500: at most 1 available" in reason
    assert "ibuprofen-200: no pharmacy within 50 km" in reason
    order = await order_in(service, upload.order_id, "REJECTED")
    assert order["shortages"] == [s.model_dump() for s in shortages]
    assert statuses(order) == ["PENDING", "REJECTED"]
    assert order["history"][-1]["reason"] == reason


async def test_declined_payment_cancels_the_order(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    await open_order(probe, upload)
    await probe.publish(stock_reserved(upload), correlation_id=upload.order_id)
    await order_in(service, upload.order_id, "STOCK_RESERVED")

    declined = PaymentDeclined(
        payment_id="payment-1",
        order_id=upload.order_id,
        patient_id=upload.patient_id,
        amount_cents=1200,
        reason="card declined",
    )
    await probe.publish(declined, correlation_id=upload.order_id)
    cancelled = await probe.wait_for(OrderCancelled, correlation_id=upload.order_id)

    assert OrderCancelled.model_validate(cancelled.payload) == OrderCancelled(
        order_id=upload.order_id,
        prescription_id=upload.prescription_id,
        patient_id=upload.patient_id,
        reason="payment declined: card declined",
    )
    order = await order_in(service, upload.order_id, "CANCELLED")
    assert order["payment_id"] == "payment-1"
    assert statuses(order) == ["PENDING", "STOCK_RESERVED", "CANCELLED"]
    assert not [e for e in probe.of_type(OrderConfirmed) if e.correlation_id == upload.order_id]


def reservation_expired(upload: PrescriptionUploaded) -> ReservationExpired:
    return ReservationExpired(
        reservation_id=upload.order_id,
        order_id=upload.order_id,
        pharmacy_id="pharmacy-1",
        reason="payment not received within 15 minutes",
    )


EXPIRED_REASON = "reservation expired: payment not received within 15 minutes"


async def test_expired_reservation_cancels_the_order_and_a_later_payment_leaves_it_cancelled(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    await open_order(probe, upload)
    await probe.publish(stock_reserved(upload), correlation_id=upload.order_id)
    await order_in(service, upload.order_id, "STOCK_RESERVED")

    sent = await probe.publish(reservation_expired(upload), correlation_id=upload.order_id)
    cancelled = await probe.wait_for(OrderCancelled, correlation_id=upload.order_id)

    assert cancelled.causation_id == str(sent.event_id)
    assert OrderCancelled.model_validate(cancelled.payload) == OrderCancelled(
        order_id=upload.order_id,
        prescription_id=upload.prescription_id,
        patient_id=upload.patient_id,
        reason=EXPIRED_REASON,
    )
    order = await order_in(service, upload.order_id, "CANCELLED")
    assert statuses(order) == ["PENDING", "STOCK_RESERVED", "CANCELLED"]
    assert order["history"][-1]["reason"] == EXPIRED_REASON

    # The charge lands after the expiry: the order stays cancelled (payment_service refunds it).
    approved = PaymentApproved(
        payment_id="payment-1", order_id=upload.order_id, patient_id=upload.patient_id, amount_cents=1200
    )
    late = await probe.publish(approved, correlation_id=upload.order_id)
    order = await eventually(
        lambda: service.db["orders"].find_one({"_id": upload.order_id}),
        lambda doc: str(late.event_id) in doc["processed_event_ids"],
        what="the late payment to be handled",
    )
    assert order["status"] == "CANCELLED"
    assert order["payment_id"] == "payment-1"
    assert not [e for e in probe.of_type(OrderConfirmed) if e.correlation_id == upload.order_id]
    assert len([e for e in probe.of_type(OrderCancelled) if e.correlation_id == upload.order_id]) == 1


async def test_expiry_heard_after_the_payment_cancels_the_confirmed_order_whose_stock_is_gone(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    # Inventory saw the deadline before the payment (so sold nothing); this order saw the payment first.
    service = await running(build(namespace.settings(Settings)))
    upload = prescription_uploaded()
    await open_order(probe, upload)
    await probe.publish(stock_reserved(upload), correlation_id=upload.order_id)
    approved = PaymentApproved(
        payment_id="payment-1", order_id=upload.order_id, patient_id=upload.patient_id, amount_cents=1200
    )
    await probe.publish(approved, correlation_id=upload.order_id)
    await probe.wait_for(OrderConfirmed, correlation_id=upload.order_id)

    await probe.publish(reservation_expired(upload), correlation_id=upload.order_id)
    cancelled = await probe.wait_for(OrderCancelled, correlation_id=upload.order_id)

    assert OrderCancelled.model_validate(cancelled.payload).reason == EXPIRED_REASON
    order = await order_in(service, upload.order_id, "CANCELLED")
    assert statuses(order) == ["PENDING", "STOCK_RESERVED", "CONFIRMED", "CANCELLED"]
