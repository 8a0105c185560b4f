"""order_service on a real broker and store: an order waits for its prescription's verification, then
asks for stock or is rejected."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest
from conftest import EventProbe, Namespace, eventually, handled_everything, stored

from contracts.events import (
    Location,
    OrderCreated,
    OrderRejected,
    PrescribedLine,
    PrescriptionRefilled,
    PrescriptionRejected,
    PrescriptionUploaded,
    PrescriptionVerified,
)
from order_service.app import Settings, build
from order_service.store import orders
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]
RX = PrescribedLine(medication_id="amoxicillin-500", quantity=2, prescription_only=True)


def rx_uploaded() -> PrescriptionUploaded:
    return PrescriptionUploaded(
        prescription_id=str(uuid4()),
        order_id=str(uuid4()),
        patient_id=f"patient-{uuid4().hex[:8]}",
        lines=(RX,),
        delivery_location=Location(latitude=52.37, longitude=4.89),
        payment_method_id="pm-1",
        document_id="scan-1",
    )


async def test_an_order_awaiting_verification_asks_for_no_stock_until_approved(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = rx_uploaded()

    await probe.publish(upload, correlation_id=upload.order_id)
    await handled_everything(service, probe)
    waiting = await stored(orders(service), upload.order_id)
    asked_before = [
        e for e in probe.seen if e.type == OrderCreated.TYPE and e.correlation_id == upload.order_id
    ]
    verified = PrescriptionVerified(
        prescription_id=upload.prescription_id,
        order_id=upload.order_id,
        patient_id=upload.patient_id,
        pharmacist_id="pharmacist-1",
        lines=(RX,),
    )
    sent = await probe.publish(verified, correlation_id=upload.order_id)
    created = await probe.wait_for(OrderCreated, correlation_id=upload.order_id)

    assert waiting is not None
    assert waiting["status"] == "AWAITING_VERIFICATION"
    assert asked_before == []
    assert created.causation_id == str(sent.event_id)
    assert OrderCreated.model_validate(created.payload).verified_by == "pharmacist-1"
    order = await eventually(
        lambda: stored(orders(service), upload.order_id), lambda d: d["status"] == "PENDING", what="PENDING"
    )
    assert [h["status"] for h in order["history"]] == ["AWAITING_VERIFICATION", "PENDING"]


async def test_a_rejected_prescription_rejects_the_order_and_announces_it(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = rx_uploaded()
    await probe.publish(upload, correlation_id=upload.order_id)

    rejected = PrescriptionRejected(
        prescription_id=upload.prescription_id,
        order_id=upload.order_id,
        patient_id=upload.patient_id,
        pharmacist_id="pharmacist-1",
        reason="NOT_A_PRESCRIPTION",
    )
    await probe.publish(rejected, correlation_id=upload.order_id)
    announced = await probe.wait_for(OrderRejected, correlation_id=upload.order_id)
    await handled_everything(service, probe)

    assert OrderRejected.model_validate(announced.payload).reason == (
        "prescription rejected by a pharmacist: NOT_A_PRESCRIPTION"
    )
    assert [e.type for e in probe.seen if e.correlation_id == upload.order_id].count(OrderCreated.TYPE) == 0


async def test_a_refill_is_a_second_order_of_the_same_prescription_verified_as_the_first(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings)))
    upload = rx_uploaded().model_copy(
        update={"lines": (PrescribedLine(medication_id="ibuprofen", quantity=1),)}
    )
    await probe.publish(upload, correlation_id=upload.order_id)
    await probe.wait_for(OrderCreated, correlation_id=upload.order_id)
    refill = PrescriptionRefilled(
        prescription_id=upload.prescription_id,
        order_id=str(uuid4()),
        patient_id=upload.patient_id,
        lines=upload.lines,
        delivery_location=upload.delivery_location,
        payment_method_id=upload.payment_method_id,
        verified_by="pharmacist-1",
        refill=1,
    )

    sent = await probe.publish(refill, correlation_id=refill.order_id)
    await probe.publish(refill, correlation_id=refill.order_id, envelope=sent)
    created = await probe.wait_for(OrderCreated, correlation_id=refill.order_id)
    await handled_everything(service, probe)

    assert OrderCreated.model_validate(created.payload).verified_by == "pharmacist-1"
    assert await service.db["orders"].count_documents({"prescription_id": upload.prescription_id}) == 2
    assert [e.correlation_id for e in probe.of_type(OrderCreated)].count(refill.order_id) == 1


async def test_a_store_from_before_refills_loses_its_one_order_per_prescription_index(
    namespace: Namespace, running: Start
) -> None:
    service = build(namespace.settings(Settings))
    # As order_service made it before refills existed.
    await service.db["orders"].create_index([("prescription_id", 1)], unique=True)

    await running(service)

    index = (await service.db["orders"].index_information())["prescription_id_1"]
    assert not index.get("unique")
