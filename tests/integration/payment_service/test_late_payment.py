"""An authorisation that lands after the reservation expired, on a real broker and store, with inventory,
order and payment services running: the hold runs out, the order is cancelled, and the late authorisation
is voided once: nothing is ever taken from the card."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import uuid4

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, handled_everything, stored

from contracts.base import Command
from contracts.commands import AddPaymentMethod, CreateMedication, CreatePharmacy, SetStock
from contracts.events import (
    Location,
    OrderCancelled,
    PaymentApproved,
    PaymentRefunded,
    PaymentVoided,
    PrescribedLine,
    PrescriptionUploaded,
    ReservationExpired,
)
from inventory_service.app import build as build_inventory
from inventory_service.handlers import InventorySettings
from order_service.app import Settings as OrderSettings
from order_service.app import build as build_orders
from order_service.store import orders as order_store
from payment_service.app import Settings as PaymentSettings
from payment_service.app import build as build_payments
from payment_service.domain import payment_id_for
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings

pytestmark = pytest.mark.integration

Document = dict[str, Any]
Start = Callable[[Service], Awaitable[Service]]
S = TypeVar("S", bound=RuntimeSettings)

PRICE_CENTS = 450
EXPIRED_REASON = "reservation expired: payment not received within 1 second"


async def ask(service: Service, message: Command) -> Any:
    """Carry out a command through the service's own command handlers."""
    reply = await service.commands.dispatch(message.TYPE, message.model_dump_json().encode())
    assert reply.error is None, reply.error
    return reply.data


def count(probe: EventProbe, kind: str, order_id: str) -> int:
    return sum(1 for e in probe.seen if e.type == kind and e.correlation_id == order_id)


async def test_a_payment_that_authorises_after_the_expiry_is_voided_once(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    def settings(cls: type[S], database: str, **overrides: Any) -> S:
        return namespace.settings(cls, mongodb_database=f"{namespace.name}_{database}", **overrides)

    inventory = await running(
        build_inventory(settings(InventorySettings, "inventory", reservation_hold_seconds=1.0))
    )
    orders = await running(build_orders(settings(OrderSettings, "orders")))
    # payment_service is away until the hold has run out: the authorisation it makes when back comes too late.
    payments = build_payments(settings(PaymentSettings, "payments"))
    patient = f"patient-{uuid4().hex[:8]}"
    card = await ask(
        payments,
        AddPaymentMethod(
            owner_id=patient,
            card_number="4242424242424242",
            exp_month=12,
            exp_year=datetime.now(UTC).year + 3,
            cvc="737",
        ),
    )
    here = Location(latitude=48.8566, longitude=2.3522)
    pharmacy = await ask(inventory, CreatePharmacy(name="Pharmacie Centrale", address="1 Rue", location=here))
    medication = await ask(
        inventory,
        CreateMedication(
            name="Amoxicillin",
            strength="500 mg",
            form="capsule",
            price_cents=PRICE_CENTS,
            prescription_only=False,
        ),
    )
    await ask(
        inventory,
        SetStock(
            pharmacy_id=pharmacy["id"], medication_id=medication["id"], quantity=10, actor_is_admin=True
        ),
    )
    upload = PrescriptionUploaded(
        prescription_id=str(uuid4()),
        order_id=str(uuid4()),
        patient_id=patient,
        lines=(PrescribedLine(medication_id=medication["id"], quantity=3),),
        delivery_location=Location(latitude=48.86, longitude=2.35),
        payment_method_id=card["id"],
    )
    order_id = upload.order_id

    await probe.publish(upload, correlation_id=order_id)
    await probe.wait_for(ReservationExpired, correlation_id=order_id, timeout=15)
    cancelled = await probe.wait_for(OrderCancelled, correlation_id=order_id)
    assert OrderCancelled.model_validate(cancelled.payload).reason == EXPIRED_REASON

    await running(payments)
    approved = await probe.wait_for(PaymentApproved, correlation_id=order_id)
    voided = await probe.wait_for(PaymentVoided, correlation_id=order_id)

    # The lines and both fees (inventory_service's, on StockReserved) were authorised, then released.
    assert approved.payload["amount_cents"] > 3 * PRICE_CENTS
    assert PaymentVoided.model_validate(voided.payload) == PaymentVoided(
        payment_id=approved.payload["payment_id"],
        order_id=order_id,
        amount_cents=approved.payload["amount_cents"],
        reason=EXPIRED_REASON,
    )
    await handled_everything(orders, probe)
    order = await stored(order_store(orders), order_id)
    assert order is not None
    assert order["status"] == "CANCELLED"
    assert [change["status"] for change in order["history"]] == ["PENDING", "STOCK_RESERVED", "CANCELLED"]
    assert order["refunded_cents"] == 0  # nothing was taken, so nothing comes back

    # The cancellation delivered again voids nothing more.
    await probe.publish(
        OrderCancelled.model_validate(cancelled.payload), correlation_id=order_id, envelope=cancelled
    )
    await handled_everything(payments, probe)
    payment = await payments.db["payments"].find_one({"_id": payment_id_for(order_id)})
    assert payment is not None
    assert payment["status"] == "VOIDED"
    assert payment["processed_event_ids"].count(str(cancelled.event_id)) == 1
    charge = await payments.db["processor_charges"].find_one({"_id": order_id})
    assert charge is not None
    assert (charge["state"], charge["refunded"]) == ("VOIDED", False)
    assert "captured_at" not in charge
    assert [
        count(probe, kind, order_id)
        for kind in (PaymentApproved.TYPE, PaymentVoided.TYPE, PaymentRefunded.TYPE)
    ] == [1, 1, 0]

    # Inventory heard the late payment too, and sold nothing: the stock is all back on the shelf.
    await handled_everything(inventory, probe)
    reservation = await inventory.db["reservations"].find_one({"_id": order_id})
    assert reservation is not None
    assert reservation["state"] == "EXPIRED"
    shelf = await inventory.db["pharmacies"].find_one({"_id": pharmacy["id"]})
    assert shelf is not None
    assert shelf["stock"][medication["id"]] == {"available": 10, "reserved": 0, "sold": 0, "returned": 0}
