"""A write delivered twice creates once: what it creates takes ids derived from its request id.

The event queue's consumer acks a write command after answering it; a crash in between makes the
broker deliver it again. These run each creating command twice with one request id, on the real store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import Namespace

from contracts.base import Command
from contracts.commands import AddPaymentMethod, CreateMedication, CreatePharmacy, UploadPrescription
from contracts.events import Location, PrescribedLine
from inventory_service.app import build as build_inventory
from inventory_service.handlers import InventorySettings
from payment_service.app import Settings as PaymentSettings
from payment_service.app import build as build_payments
from prescription_service.app import Settings as PrescriptionSettings
from prescription_service.app import build as build_prescriptions
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]
HERE = Location(latitude=52.52, longitude=13.40)


async def twice(service: Service, command: Command) -> tuple[Any, Any]:
    replies = []
    for _ in range(2):
        reply = await service.commands.dispatch(command.TYPE, command.model_dump_json().encode())
        assert reply.error is None, reply.error
        replies.append(reply.data)
    return replies[0], replies[1]


async def test_pharmacy_and_medication_created_twice_exist_once(namespace: Namespace, running: Start) -> None:
    service = await running(build_inventory(namespace.settings(InventorySettings)))

    first, second = await twice(
        service, CreatePharmacy(name="Mitte", address="Berlin", location=HERE, request_id="r-1")
    )
    assert first == second
    medication = CreateMedication(
        name="Amoxicillin",
        strength="500 mg",
        form="capsule",
        price_cents=420,
        prescription_only=True,
        request_id="r-2",
    )
    first, second = await twice(service, medication)
    assert first == second
    assert await service.db["pharmacies"].count_documents({}) == 1
    assert await service.db["medications"].count_documents({}) == 1


async def test_a_payment_method_added_twice_exists_once(namespace: Namespace, running: Start) -> None:
    service = await running(build_payments(namespace.settings(PaymentSettings)))
    card = AddPaymentMethod(
        owner_id="patient-1",
        card_number="4242424242424242",
        exp_month=12,
        exp_year=2035,
        cvc="123",
        request_id="r-3",
    )

    first, second = await twice(service, card)

    assert first == second
    assert await service.db["payment_methods"].count_documents({}) == 1


async def test_a_prescription_uploaded_twice_makes_one_prescription_and_one_order(
    namespace: Namespace, running: Start
) -> None:
    service = await running(build_prescriptions(namespace.settings(PrescriptionSettings)))
    upload = UploadPrescription(
        patient_id="patient-1",
        lines=(PrescribedLine(medication_id="m-1", quantity=2),),
        delivery_location=HERE,
        payment_method_id="pm-1",
        request_id="r-4",
    )

    first, second = await twice(service, upload)

    assert first == second
    assert await service.db["prescriptions"].count_documents({}) == 1
