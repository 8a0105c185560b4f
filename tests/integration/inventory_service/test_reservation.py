"""inventory_service on a real broker and store: holding, paying for and releasing a pharmacy's stock.

Dispensing, and stock that comes back after it, are in test_dispensing.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import aio_pika
import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, handled_everything, stored

from contracts import topology
from contracts.base import Command, Envelope
from contracts.commands import CreateMedication, CreatePharmacy, SetStock
from contracts.events import (
    Location,
    OrderCancelled,
    OrderCreated,
    PaymentApproved,
    PrescribedLine,
    ReservationDeadline,
    ReservationExpired,
    ReservedLine,
    StockReservationFailed,
    StockReserved,
)
from inventory_service import store
from inventory_service.app import build
from inventory_service.handlers import InventorySettings
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Document = dict[str, Any]
Start = Callable[[Service], Awaitable[Service]]

HERE = Location(latitude=48.8566, longitude=2.3522)
PRICE_CENTS = 450
ON_THE_SHELF = 10
# The default fees: the service fee, and delivery to an address 0.4 km away (one kilometre started).
SERVICE_FEE = 199
DELIVERY_FEE = 299 + 50


async def command(service: Service, message: Command) -> Any:
    """Carry out a command through the service's own command handlers, as its RPC queue would."""
    reply = await service.commands.dispatch(message.TYPE, message.model_dump_json().encode())
    assert reply.error is None, reply.error
    return reply.data


async def add_medication(service: Service, pharmacy_id: str, name: str, *, quantity: int | None) -> str:
    """A catalogue entry, on the pharmacy's shelf unless `quantity` is None."""
    medication = await command(
        service,
        CreateMedication(
            name=name, strength="10 mg", form="tablet", price_cents=PRICE_CENTS, prescription_only=False
        ),
    )
    if quantity is not None:
        await command(
            service,
            SetStock(
                pharmacy_id=pharmacy_id,
                medication_id=medication["id"],
                quantity=quantity,
                actor_is_admin=True,
            ),
        )
    return str(medication["id"])


@dataclass
class Shop:
    """A running inventory_service with one pharmacy stocking one medication."""

    service: Service
    probe: EventProbe
    pharmacy_id: str
    medication_id: str

    async def add_medication(self, name: str, *, quantity: int | None) -> str:
        return await add_medication(self.service, self.pharmacy_id, name, quantity=quantity)

    async def pharmacy(self) -> Document:
        """The pharmacy as stored, its sealed holds opened."""
        doc = await stored(store.stores(self.service).pharmacies, self.pharmacy_id)
        assert doc is not None
        return doc

    async def reservation(self, order_id: str, state: str) -> Document:
        """The reservation as stored, once in `state`, its sealed lines and shortages opened."""
        return await eventually(
            lambda: stored(store.stores(self.service).reservations, order_id),
            lambda doc: doc["state"] == state,
            what=f"the reservation of {order_id} to be {state}",
        )

    def outcomes_for(self, order_id: str) -> list[str]:
        return [
            e.type
            for e in self.probe.seen
            if e.correlation_id == order_id and e.type in (StockReserved.TYPE, StockReservationFailed.TYPE)
        ]


async def open_shop(namespace: Namespace, probe: EventProbe, running: Start, **settings: Any) -> Shop:
    service = await running(build(namespace.settings(InventorySettings, **settings)))
    pharmacy = await command(
        service, CreatePharmacy(name="Pharmacie Centrale", address="1 Rue de Rivoli", location=HERE)
    )
    medication_id = await add_medication(service, pharmacy["id"], "Amoxicillin", quantity=ON_THE_SHELF)
    return Shop(service, probe, pharmacy["id"], medication_id)


@pytest_asyncio.fixture
async def shop(namespace: Namespace, probe: EventProbe, running: Start) -> AsyncIterator[Shop]:
    yield await open_shop(namespace, probe, running)


def order_created(*lines: tuple[str, int]) -> OrderCreated:
    return OrderCreated(
        order_id=str(uuid4()),
        prescription_id=str(uuid4()),
        patient_id=f"patient-{uuid4().hex[:8]}",
        lines=tuple(PrescribedLine(medication_id=m, quantity=q) for m, q in lines),
        delivery_location=Location(latitude=48.86, longitude=2.35),
        payment_method_id="pm-1",
    )


def paid(order: OrderCreated) -> PaymentApproved:
    return PaymentApproved(
        payment_id=str(uuid4()), order_id=order.order_id, patient_id=order.patient_id, amount_cents=1350
    )


def cancelled(order: OrderCreated) -> OrderCancelled:
    return OrderCancelled(
        order_id=order.order_id,
        prescription_id=order.prescription_id,
        patient_id=order.patient_id,
        reason="cancelled by the customer",
    )


async def reserve(shop: Shop, order: OrderCreated) -> StockReserved:
    await shop.probe.publish(order, correlation_id=order.order_id)
    envelope = await shop.probe.wait_for(StockReserved, correlation_id=order.order_id)
    return StockReserved.model_validate(envelope.payload)


async def test_created_order_holds_its_stock_at_the_pharmacy(shop: Shop) -> None:
    order = order_created((shop.medication_id, 3))

    reserved = await reserve(shop, order)

    line = ReservedLine(medication_id=shop.medication_id, quantity=3, unit_price_cents=PRICE_CENTS)
    assert reserved == StockReserved(
        order_id=order.order_id,
        patient_id=order.patient_id,
        pharmacy_id=shop.pharmacy_id,
        lines=(line,),
        total_cents=3 * PRICE_CENTS + SERVICE_FEE + DELIVERY_FEE,
        payment_method_id="pm-1",
        service_fee_cents=SERVICE_FEE,
        delivery_fee_cents=DELIVERY_FEE,
    )
    pharmacy = await shop.pharmacy()
    assert pharmacy["stock"][shop.medication_id] == {"available": 7, "reserved": 3, "sold": 0, "returned": 0}
    assert list(pharmacy["holds"]) == [order.order_id]
    assert pharmacy["holds"][order.order_id]["lines"] == [line.model_dump()]
    reservation = await shop.reservation(order.order_id, "RESERVED")
    assert reservation["pharmacy_id"] == shop.pharmacy_id
    assert reservation["total_cents"] == 3 * PRICE_CENTS + SERVICE_FEE + DELIVERY_FEE
    assert (reservation["service_fee_cents"], reservation["delivery_fee_cents"]) == (
        SERVICE_FEE,
        DELIVERY_FEE,
    )


async def test_the_fees_come_from_the_settings(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    shop = await open_shop(
        namespace,
        probe,
        running,
        service_fee_cents=0,
        delivery_base_fee_cents=500,
        delivery_fee_per_km_cents=100,
    )
    order = order_created((shop.medication_id, 1))

    reserved = await reserve(shop, order)

    # The address is 0.4 km from the pharmacy: one kilometre started.
    assert (reserved.service_fee_cents, reserved.delivery_fee_cents) == (0, 600)
    assert reserved.total_cents == PRICE_CENTS + 600


async def test_not_enough_stock_fails_with_a_reason_per_line_and_moves_nothing(shop: Shop) -> None:
    scarce = await shop.add_medication("Ibuprofen", quantity=1)
    absent = await shop.add_medication("Codeine", quantity=None)
    order = order_created((shop.medication_id, 2), (scarce, 5), (absent, 1))

    await shop.probe.publish(order, correlation_id=order.order_id)
    envelope = await shop.probe.wait_for(StockReservationFailed, correlation_id=order.order_id)

    shortages = StockReservationFailed.model_validate(envelope.payload).shortages
    assert [(s.medication_id, s.requested, s.best_available) for s in shortages] == [
        (scarce, 5, 1),
        (absent, 1, 0),
    ]
    assert "at most 1 available" in shortages[0].reason
    assert "has it in stock" in shortages[1].reason
    pharmacy = await shop.pharmacy()
    assert pharmacy["stock"][shop.medication_id] == {
        "available": ON_THE_SHELF,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
    }
    assert pharmacy["stock"][scarce] == {"available": 1, "reserved": 0, "sold": 0, "returned": 0}
    assert pharmacy["holds"] == {}
    reservation = await shop.reservation(order.order_id, "FAILED")
    assert reservation["shortages"] == [s.model_dump() for s in shortages]
    assert shop.outcomes_for(order.order_id) == [StockReservationFailed.TYPE]


async def test_an_authorised_payment_makes_the_reservation_paid_and_keeps_its_stock_held(shop: Shop) -> None:
    order = order_created((shop.medication_id, 3))
    await reserve(shop, order)

    payment = await shop.probe.publish(paid(order), correlation_id=order.order_id)

    reservation = await shop.reservation(order.order_id, "PAID")
    # When the payment was authorised (the store keeps milliseconds): the queue's order.
    assert abs(reservation["paid_at"] - payment.occurred_at) < timedelta(milliseconds=1)
    pharmacy = await shop.pharmacy()
    # Paid is not sold: the units stay held until the pharmacy dispenses them.
    assert pharmacy["stock"][shop.medication_id] == {"available": 7, "reserved": 3, "sold": 0, "returned": 0}
    assert list(pharmacy["holds"]) == [order.order_id]


async def test_cancelled_order_gives_its_reserved_stock_back(shop: Shop) -> None:
    order = order_created((shop.medication_id, 3))
    await reserve(shop, order)

    await shop.probe.publish(cancelled(order), correlation_id=order.order_id)

    await shop.reservation(order.order_id, "RELEASED")
    pharmacy = await shop.pharmacy()
    assert pharmacy["stock"][shop.medication_id] == {
        "available": ON_THE_SHELF,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
    }
    assert pharmacy["holds"] == {}


async def test_order_cancelled_before_it_was_created_reserves_nothing(shop: Shop) -> None:
    order = order_created((shop.medication_id, 3))

    await shop.probe.publish(cancelled(order), correlation_id=order.order_id)
    await shop.reservation(order.order_id, "RELEASED")
    await shop.probe.publish(order, correlation_id=order.order_id)
    await handled_everything(shop.service, shop.probe)

    assert shop.outcomes_for(order.order_id) == []
    reservation = await shop.reservation(order.order_id, "RELEASED")
    assert reservation["pharmacy_id"] is None
    assert reservation["lines"] == []
    pharmacy = await shop.pharmacy()
    assert pharmacy["holds"] == {}
    assert pharmacy["stock"][shop.medication_id] == {"available": 10, "reserved": 0, "sold": 0, "returned": 0}


async def test_redelivered_order_is_reserved_once(shop: Shop) -> None:
    order = order_created((shop.medication_id, 3))

    sent = await shop.probe.publish(order, correlation_id=order.order_id)
    await shop.probe.publish(order, correlation_id=order.order_id, envelope=sent)
    await shop.probe.wait_for(StockReserved, correlation_id=order.order_id)
    await handled_everything(shop.service, shop.probe)

    assert shop.outcomes_for(order.order_id) == [StockReserved.TYPE]
    pharmacy = await shop.pharmacy()
    assert pharmacy["stock"][shop.medication_id] == {"available": 7, "reserved": 3, "sold": 0, "returned": 0}
    assert sorted(pharmacy["holds"]) == [order.order_id]
    assert pharmacy["holds"][order.order_id]["lines"][0]["quantity"] == 3


# --- holds that are not paid for in time expire -------------------------------------------------------

HOLD_SECONDS = 1.0
UNPAID = "payment not received within 1 second"


@pytest_asyncio.fixture
async def hurried_shop(namespace: Namespace, probe: EventProbe, running: Start) -> AsyncIterator[Shop]:
    """A shop that holds stock for one second: long enough to pay within, short enough to wait out."""
    yield await open_shop(namespace, probe, running, reservation_hold_seconds=HOLD_SECONDS)


async def handled_so_far(shop: Shop) -> None:
    """Return once inventory has handled every event queued before, and the probe saw what they published."""
    await handled_everything(shop.service, shop.probe)


async def deliver_due(shop: Shop, timer: Envelope) -> None:
    """Put a timer straight into inventory's event queue, as the broker does when it falls due."""
    await shop.probe.publisher.default_exchange.publish(
        aio_pika.Message(
            timer.model_dump_json().encode(),
            message_id=str(timer.event_id),
            type=timer.type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=topology.event_queue(shop.probe.namespace, "inventory_service"),
        mandatory=True,
    )


async def shelf_restored(shop: Shop) -> Document:
    return await eventually(
        shop.pharmacy, lambda doc: doc["holds"] == {}, what="the expired hold to leave the pharmacy"
    )


def expiries_of(shop: Shop, order: OrderCreated) -> int:
    return sum(1 for e in shop.probe.of_type(ReservationExpired) if e.correlation_id == order.order_id)


async def test_an_unpaid_reservation_expires_and_its_stock_comes_back(hurried_shop: Shop) -> None:
    shop = hurried_shop
    order = order_created((shop.medication_id, 3))

    await reserve(shop, order)
    deadline = await shop.probe.wait_for(ReservationDeadline, correlation_id=order.order_id)
    expired = await shop.probe.wait_for(ReservationExpired, correlation_id=order.order_id, timeout=15)

    fires_at = ReservationDeadline.model_validate(deadline.payload).fires_at
    assert abs(fires_at - deadline.occurred_at - timedelta(seconds=HOLD_SECONDS)) < timedelta(seconds=0.1)
    # The broker held the deadline until it was due, and only then handed it to inventory.
    assert expired.occurred_at >= fires_at - timedelta(milliseconds=50)
    assert expired.causation_id == str(deadline.event_id)
    assert ReservationExpired.model_validate(expired.payload) == ReservationExpired(
        reservation_id=order.order_id, order_id=order.order_id, pharmacy_id=shop.pharmacy_id, reason=UNPAID
    )
    await shop.reservation(order.order_id, "EXPIRED")
    pharmacy = await shelf_restored(shop)
    assert pharmacy["stock"][shop.medication_id] == {
        "available": ON_THE_SHELF,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
    }
    await handled_so_far(shop)
    assert expiries_of(shop, order) == 1


async def test_a_deadline_delivered_twice_more_changes_nothing(hurried_shop: Shop) -> None:
    shop = hurried_shop
    order = order_created((shop.medication_id, 3))
    await reserve(shop, order)
    deadline = await shop.probe.wait_for(ReservationDeadline, correlation_id=order.order_id)
    await shop.probe.wait_for(ReservationExpired, correlation_id=order.order_id, timeout=15)
    await shelf_restored(shop)

    await deliver_due(shop, deadline)
    await deliver_due(shop, deadline)
    await handled_so_far(shop)

    assert expiries_of(shop, order) == 1
    reservation = await shop.reservation(order.order_id, "EXPIRED")
    assert reservation["processed_event_ids"].count(str(deadline.event_id)) == 1
    pharmacy = await shop.pharmacy()
    assert pharmacy["stock"][shop.medication_id] == {
        "available": ON_THE_SHELF,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
    }
    assert pharmacy["holds"] == {}


async def test_a_payment_after_the_expiry_sells_nothing_and_a_cancel_is_a_no_op(
    hurried_shop: Shop,
) -> None:
    shop = hurried_shop
    order = order_created((shop.medication_id, 3))
    await reserve(shop, order)
    await shop.probe.wait_for(ReservationExpired, correlation_id=order.order_id, timeout=15)

    await shop.probe.publish(paid(order), correlation_id=order.order_id)
    await shop.probe.publish(cancelled(order), correlation_id=order.order_id)
    await handled_so_far(shop)

    await shop.reservation(order.order_id, "EXPIRED")
    pharmacy = await shop.pharmacy()
    assert pharmacy["stock"][shop.medication_id] == {
        "available": ON_THE_SHELF,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
    }
    assert pharmacy["holds"] == {}
    assert pharmacy["returns"] == []


async def test_a_deadline_after_the_payment_changes_nothing(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    # Long enough a hold that the payment is surely handled first, even on a slow machine.
    shop = await open_shop(namespace, probe, running, reservation_hold_seconds=3)
    order = order_created((shop.medication_id, 3))
    await reserve(shop, order)
    deadline = await shop.probe.wait_for(ReservationDeadline, correlation_id=order.order_id)
    await shop.probe.publish(paid(order), correlation_id=order.order_id)
    await shop.reservation(order.order_id, "PAID")

    reservation = await eventually(
        lambda: shop.service.db["reservations"].find_one({"_id": order.order_id}),
        lambda doc: str(deadline.event_id) in doc["processed_event_ids"],
        what="the deadline to fire",
        timeout=15,
    )
    await handled_so_far(shop)

    # A paid order's hold has no deadline: it waits for the pharmacist, its stock still held.
    assert reservation["state"] == "PAID"
    assert expiries_of(shop, order) == 0
    pharmacy = await shop.pharmacy()
    assert pharmacy["stock"][shop.medication_id] == {"available": 7, "reserved": 3, "sold": 0, "returned": 0}
    assert list(pharmacy["holds"]) == [order.order_id]


async def test_a_prescription_only_line_is_never_reserved_for_an_unverified_order(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    shop = await open_shop(namespace, probe, running)
    rx = await command(
        shop.service,
        CreateMedication(
            name="Oxycodone", strength="5 mg", form="tablet", price_cents=900, prescription_only=True
        ),
    )
    stock = SetStock(pharmacy_id=shop.pharmacy_id, medication_id=rx["id"], quantity=5, actor_is_admin=True)
    await command(shop.service, stock)
    unverified = order_created((rx["id"], 1), (shop.medication_id, 1))
    verified = order_created((rx["id"], 1)).model_copy(update={"verified_by": "pharmacist-1"})

    await probe.publish(unverified, correlation_id=unverified.order_id)
    failed = await probe.wait_for(StockReservationFailed, correlation_id=unverified.order_id)
    await probe.publish(verified, correlation_id=verified.order_id)
    await probe.wait_for(StockReserved, correlation_id=verified.order_id)

    assert [
        (s.medication_id, s.reason) for s in StockReservationFailed.model_validate(failed.payload).shortages
    ] == [(rx["id"], "prescription-only: the prescription was not verified by a pharmacist")]
    pharmacy = await shop.pharmacy()
    assert unverified.order_id not in pharmacy["holds"]
    assert verified.order_id in pharmacy["holds"]
