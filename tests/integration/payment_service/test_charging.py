"""payment_service on a real broker and store: charging reserved orders once, refunding cancelled ones."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, handled_everything

from contracts.commands import AddPaymentMethod, PaymentMethodView
from contracts.events import (
    OrderCancelled,
    PaymentApproved,
    PaymentDeclined,
    PaymentRefunded,
    ReservedLine,
    StockReserved,
)
from payment_service.app import Settings, build
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Document = dict[str, Any]
Start = Callable[[Service], Awaitable[Service]]

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
CVC = "737"
TOTAL_CENTS = 1350


@dataclass
class Till:
    """A running payment_service and the probe that watches its namespace."""

    service: Service
    probe: EventProbe

    async def add_card(self, owner_id: str, number: str) -> PaymentMethodView:
        command = AddPaymentMethod(
            owner_id=owner_id,
            card_number=number,
            exp_month=12,
            exp_year=datetime.now(UTC).year + 3,
            cvc=CVC,
        )
        reply = await self.service.commands.dispatch(command.TYPE, command.model_dump_json().encode())
        assert reply.error is None, reply.error
        return PaymentMethodView.model_validate(reply.data)

    async def payment(self, order_id: str, status: str) -> Document:
        return await eventually(
            lambda: self.service.db["payments"].find_one({"order_id": order_id}),
            lambda doc: doc["status"] == status,
            what=f"the payment of order {order_id} to be {status}",
        )

    def events_for(self, order_id: str, kind: str) -> int:
        return sum(1 for e in self.probe.seen if e.correlation_id == order_id and e.type == kind)


@pytest_asyncio.fixture
async def till(namespace: Namespace, probe: EventProbe, running: Start) -> AsyncIterator[Till]:
    yield Till(await running(build(namespace.settings(Settings))), probe)


def stock_reserved(patient_id: str, payment_method_id: str) -> StockReserved:
    return StockReserved(
        order_id=str(uuid4()),
        patient_id=patient_id,
        pharmacy_id="pharmacy-1",
        lines=(ReservedLine(medication_id="amoxicillin-500", quantity=3, unit_price_cents=450),),
        total_cents=TOTAL_CENTS,
        payment_method_id=payment_method_id,
    )


def patient() -> str:
    return f"patient-{uuid4().hex[:8]}"


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, leaf value) of a document, keys included as path parts."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from walk(inner, f"{path}[{i}]")
    else:
        yield path, value


async def test_good_card_is_charged_and_no_card_secret_is_stored(till: Till) -> None:
    owner = patient()
    method = await till.add_card(owner, GOOD_CARD)
    assert (method.brand, method.last4) == ("visa", "4242")
    reserved = stock_reserved(owner, method.id)

    await till.probe.publish(reserved, correlation_id=reserved.order_id)
    envelope = await till.probe.wait_for(PaymentApproved, correlation_id=reserved.order_id)

    approved = PaymentApproved.model_validate(envelope.payload)
    assert (approved.order_id, approved.patient_id, approved.amount_cents) == (
        reserved.order_id,
        owner,
        TOTAL_CENTS,
    )
    payment = await till.payment(reserved.order_id, "APPROVED")
    assert payment["_id"] == approved.payment_id
    assert payment["amount_cents"] == TOTAL_CENTS
    assert (payment["brand"], payment["last4"]) == ("visa", "4242")
    assert payment["payment_method_id"] == method.id
    assert payment["charge_id"]
    db = till.service.db
    collections = await db.list_collection_names()
    assert {"payments", "payment_methods", "processor_cards", "processor_charges"} <= set(collections)
    for name in collections:
        async for doc in db[name].find({}):
            assert GOOD_CARD not in json.dumps(doc, default=str), f"card number stored in {name}"
            for path, leaf in walk(doc):
                assert not {"card_number", "number", "cvc"} & set(path.split(".")), f"{name}{path}"
                assert leaf != CVC, f"CVC stored in {name}{path}"


async def test_declining_card_is_declined(till: Till) -> None:
    owner = patient()
    method = await till.add_card(owner, DECLINED_CARD)
    reserved = stock_reserved(owner, method.id)

    await till.probe.publish(reserved, correlation_id=reserved.order_id)
    envelope = await till.probe.wait_for(PaymentDeclined, correlation_id=reserved.order_id)

    declined = PaymentDeclined.model_validate(envelope.payload)
    assert declined.reason == "card declined"
    assert declined.amount_cents == TOTAL_CENTS
    payment = await till.payment(reserved.order_id, "DECLINED")
    assert payment["decline_reason"] == "card declined"
    assert till.events_for(reserved.order_id, PaymentApproved.TYPE) == 0


async def test_redelivered_stock_reservation_charges_once(till: Till) -> None:
    owner = patient()
    method = await till.add_card(owner, GOOD_CARD)
    reserved = stock_reserved(owner, method.id)

    sent = await till.probe.publish(reserved, correlation_id=reserved.order_id)
    await till.probe.publish(reserved, correlation_id=reserved.order_id, envelope=sent)
    await till.probe.wait_for(PaymentApproved, correlation_id=reserved.order_id)
    await handled_everything(till.service, till.probe)

    assert await till.service.db["processor_charges"].count_documents({}) == 1
    assert await till.service.db["processor_charges"].count_documents({"_id": reserved.order_id}) == 1
    assert till.events_for(reserved.order_id, PaymentApproved.TYPE) == 1
    assert await till.service.db["payments"].count_documents({"order_id": reserved.order_id}) == 1
    payment = await till.payment(reserved.order_id, "APPROVED")
    assert payment["processed_event_ids"] == [str(sent.event_id)]


async def test_order_cancelled_after_approval_is_refunded(till: Till) -> None:
    owner = patient()
    method = await till.add_card(owner, GOOD_CARD)
    reserved = stock_reserved(owner, method.id)
    await till.probe.publish(reserved, correlation_id=reserved.order_id)
    approved = await till.probe.wait_for(PaymentApproved, correlation_id=reserved.order_id)

    cancelled = OrderCancelled(
        order_id=reserved.order_id,
        prescription_id=str(uuid4()),
        patient_id=owner,
        reason="prescription withdrawn by the patient",
    )
    await till.probe.publish(cancelled, correlation_id=reserved.order_id)
    envelope = await till.probe.wait_for(PaymentRefunded, correlation_id=reserved.order_id)

    assert PaymentRefunded.model_validate(envelope.payload) == PaymentRefunded(
        payment_id=approved.payload["payment_id"],
        order_id=reserved.order_id,
        amount_cents=TOTAL_CENTS,
        reason="prescription withdrawn by the patient",
    )
    payment = await till.payment(reserved.order_id, "REFUNDED")
    assert payment["refunded_at"] is not None
    charge = await till.service.db["processor_charges"].find_one({"_id": reserved.order_id})
    assert charge is not None
    assert charge["refunded"] is True


async def test_order_cancelled_before_its_stock_reservation_arrives_is_never_charged(till: Till) -> None:
    # The order expired (or was cancelled) before StockReserved reached payment_service.
    owner = patient()
    method = await till.add_card(owner, GOOD_CARD)
    reserved = stock_reserved(owner, method.id)
    cancelled = OrderCancelled(
        order_id=reserved.order_id,
        prescription_id=str(uuid4()),
        patient_id=owner,
        reason="reservation expired: payment not received within 15 minutes",
    )

    await till.probe.publish(cancelled, correlation_id=reserved.order_id)
    await till.probe.publish(reserved, correlation_id=reserved.order_id)
    await handled_everything(till.service, till.probe)

    await till.payment(reserved.order_id, "VOIDED")
    assert await till.service.db["processor_charges"].count_documents({"_id": reserved.order_id}) == 0
    assert till.events_for(reserved.order_id, PaymentApproved.TYPE) == 0
    assert till.events_for(reserved.order_id, PaymentRefunded.TYPE) == 0
