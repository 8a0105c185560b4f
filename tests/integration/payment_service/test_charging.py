"""payment_service on a real broker and store: authorising reserved orders once, capturing at pickup,
voiding what is cancelled before, refunding what is cancelled or returned after: each once, however often
it is told."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, dead_letters, eventually, handled_everything

from contracts import topology
from contracts.base import Command, Envelope, Event
from contracts.commands import (
    AddPaymentMethod,
    GetPaymentMethod,
    ListPaymentMethods,
    ListPayments,
    PaymentMethodView,
    PaymentView,
    RemovePaymentMethod,
)
from contracts.events import (
    DeliveryPickedUp,
    DeliveryReturned,
    OrderCancelled,
    PaymentApproved,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentVoided,
    ReservedLine,
    StockReserved,
)
from payment_service.app import Settings, build
from payment_service.domain import payment_id_for
from payment_service.processor import CardProcessor
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
    """A running payment_service, the probe that watches its namespace, and its card processor's books."""

    service: Service
    probe: EventProbe

    @property
    def processor(self) -> CardProcessor:
        """The simulated processor over the service's own database, as payment_service calls it."""
        return CardProcessor(self.service.db)

    async def ask(self, command: Command) -> Any:
        reply = await self.service.commands.dispatch(command.TYPE, command.model_dump_json().encode())
        assert reply.error is None, reply.error
        return reply.data

    async def add_card(self, owner_id: str, number: str) -> PaymentMethodView:
        command = AddPaymentMethod(
            owner_id=owner_id,
            card_number=number,
            exp_month=12,
            exp_year=datetime.now(UTC).year + 3,
            cvc=CVC,
        )
        return PaymentMethodView.model_validate(await self.ask(command))

    async def authorised(self) -> tuple[StockReserved, Envelope]:
        """A patient's order, its stock reserved and its payment authorised on a good card."""
        owner = patient()
        method = await self.add_card(owner, GOOD_CARD)
        reserved = stock_reserved(owner, method.id)
        await self.probe.publish(reserved, correlation_id=reserved.order_id)
        approved = await self.probe.wait_for(PaymentApproved, correlation_id=reserved.order_id)
        await self.payment(reserved.order_id, "AUTHORISED")
        return reserved, approved

    async def tell(self, event: Event, order_id: str, *, again: Envelope | None = None) -> Envelope:
        """Publish an event of the order's saga (`again`: the same delivery once more)."""
        return await self.probe.publish(event, correlation_id=order_id, envelope=again)

    async def payment(self, order_id: str, status: str) -> Document:
        return await eventually(
            lambda: self.service.db["payments"].find_one({"order_id": order_id}),
            lambda doc: doc["status"] == status,
            what=f"the payment of order {order_id} to be {status}",
        )

    async def charge(self, order_id: str) -> Document:
        found = await self.service.db["processor_charges"].find_one({"_id": order_id})
        assert found is not None, f"no charge for order {order_id}"
        return found

    async def settled(self) -> None:
        await handled_everything(self.service, self.probe)

    def events_for(self, order_id: str, kind: str) -> int:
        return sum(1 for e in self.probe.seen if e.correlation_id == order_id and e.type == kind)

    def money_events(self, order_id: str) -> list[str]:
        """What payment_service announced for the order, in order."""
        money = {PaymentApproved.TYPE, PaymentCaptured.TYPE, PaymentVoided.TYPE, PaymentRefunded.TYPE}
        return [e.type for e in self.probe.seen if e.correlation_id == order_id and e.type in money]


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


def picked_up(order_id: str) -> DeliveryPickedUp:
    return DeliveryPickedUp(
        delivery_id=order_id,
        order_id=order_id,
        courier_id="courier-1",
        eta=datetime.now(UTC) + timedelta(minutes=40),
    )


def cancelled(
    reserved: StockReserved, reason: str = "prescription withdrawn by the patient"
) -> OrderCancelled:
    return OrderCancelled(
        order_id=reserved.order_id,
        prescription_id=str(uuid4()),
        patient_id=reserved.patient_id,
        reason=reason,
    )


def returned(order_id: str, reason: str = "no one home after 3 attempts") -> DeliveryReturned:
    return DeliveryReturned(delivery_id=order_id, order_id=order_id, pharmacy_id="pharmacy-1", reason=reason)


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


async def test_good_card_is_authorised_and_no_card_secret_is_stored(till: Till) -> None:
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
    payment = await till.payment(reserved.order_id, "AUTHORISED")
    assert payment["_id"] == approved.payment_id
    assert payment["amount_cents"] == TOTAL_CENTS
    assert (payment["brand"], payment["last4"]) == ("visa", "4242")
    assert payment["payment_method_id"] == method.id
    assert payment["charge_id"]
    assert (payment["captured_at"], payment["voided_at"], payment["refunded_at"]) == (None, None, None)
    # Held on the card, nothing taken before the courier picks the order up.
    charge = await till.charge(reserved.order_id)
    assert (charge["state"], charge["amount_cents"], charge["charge_id"]) == (
        "AUTHORISED",
        TOTAL_CENTS,
        payment["charge_id"],
    )
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
    assert (await till.charge(reserved.order_id))["state"] == "DECLINED"


async def test_redelivered_stock_reservation_authorises_once(till: Till) -> None:
    owner = patient()
    method = await till.add_card(owner, GOOD_CARD)
    reserved = stock_reserved(owner, method.id)

    sent = await till.probe.publish(reserved, correlation_id=reserved.order_id)
    await till.probe.publish(reserved, correlation_id=reserved.order_id, envelope=sent)
    await till.probe.wait_for(PaymentApproved, correlation_id=reserved.order_id)
    await till.settled()

    assert await till.service.db["processor_charges"].count_documents({}) == 1
    assert await till.service.db["processor_charges"].count_documents({"_id": reserved.order_id}) == 1
    assert till.events_for(reserved.order_id, PaymentApproved.TYPE) == 1
    assert await till.service.db["payments"].count_documents({"order_id": reserved.order_id}) == 1
    payment = await till.payment(reserved.order_id, "AUTHORISED")
    assert payment["processed_event_ids"] == [str(sent.event_id)]


async def test_pickup_captures_the_authorisation_once_however_often_it_is_told(till: Till) -> None:
    reserved, approved = await till.authorised()
    order_id = reserved.order_id

    pickup = await till.tell(picked_up(order_id), order_id)
    await till.tell(picked_up(order_id), order_id, again=pickup)  # redelivered
    captured = await till.probe.wait_for(PaymentCaptured, correlation_id=order_id)
    await till.settled()

    assert PaymentCaptured.model_validate(captured.payload) == PaymentCaptured(
        payment_id=approved.payload["payment_id"], order_id=order_id, amount_cents=TOTAL_CENTS
    )
    assert captured.causation_id == str(pickup.event_id)
    payment = await till.payment(order_id, "CAPTURED")
    assert payment["captured_at"] is not None
    assert payment["processed_event_ids"].count(str(pickup.event_id)) == 1
    charge = await till.charge(order_id)
    assert (charge["state"], charge["refunded"]) == ("CAPTURED", False)
    assert till.money_events(order_id) == [PaymentApproved.TYPE, PaymentCaptured.TYPE]

    # A second pickup (another event, the same order) takes nothing more.
    await till.tell(picked_up(order_id), order_id)
    await till.settled()
    assert till.money_events(order_id) == [PaymentApproved.TYPE, PaymentCaptured.TYPE]
    assert await till.charge(order_id) == charge


async def test_cancel_before_pickup_voids_the_authorisation_and_never_captures(till: Till) -> None:
    reserved, approved = await till.authorised()
    order_id = reserved.order_id

    cancel = await till.tell(cancelled(reserved), order_id)
    await till.tell(cancelled(reserved), order_id, again=cancel)  # redelivered
    voided = await till.probe.wait_for(PaymentVoided, correlation_id=order_id)
    await till.settled()

    assert PaymentVoided.model_validate(voided.payload) == PaymentVoided(
        payment_id=approved.payload["payment_id"],
        order_id=order_id,
        amount_cents=TOTAL_CENTS,
        reason="prescription withdrawn by the patient",
    )
    payment = await till.payment(order_id, "VOIDED")
    assert payment["voided_at"] is not None
    assert (payment["captured_at"], payment["refunded_at"]) == (None, None)
    charge = await till.charge(order_id)
    assert (charge["state"], charge["refunded"]) == ("VOIDED", False)
    assert "captured_at" not in charge
    assert till.money_events(order_id) == [PaymentApproved.TYPE, PaymentVoided.TYPE]
    # A voided authorisation is a payment the patient sees.
    listed = [
        PaymentView.model_validate(p) for p in await till.ask(ListPayments(owner_id=reserved.patient_id))
    ]
    assert [(p.id, p.status, p.voided_at) for p in listed] == [
        (payment["_id"], "VOIDED", payment["voided_at"])
    ]


async def test_pickup_after_a_void_captures_nothing(till: Till) -> None:
    reserved, _ = await till.authorised()
    order_id = reserved.order_id
    await till.tell(cancelled(reserved), order_id)
    voided = await till.payment(order_id, "VOIDED")
    charge = await till.charge(order_id)

    pickup = await till.tell(picked_up(order_id), order_id)
    await till.settled()

    payment = await till.payment(order_id, "VOIDED")
    assert payment["processed_event_ids"][-1] == str(pickup.event_id)
    # The outbox's relay may have emptied the void's outbox meanwhile: that is not the pickup's doing.
    bookkeeping = ("version", "processed_event_ids", "outbox", "outbox_since")
    assert {k: v for k, v in payment.items() if k not in bookkeeping} == {
        k: v for k, v in voided.items() if k not in bookkeeping
    }
    assert await till.charge(order_id) == charge
    assert till.events_for(order_id, PaymentCaptured.TYPE) == 0
    assert till.money_events(order_id) == [PaymentApproved.TYPE, PaymentVoided.TYPE]


async def test_cancel_after_capture_refunds_once(till: Till) -> None:
    reserved, approved = await till.authorised()
    order_id = reserved.order_id
    await till.tell(picked_up(order_id), order_id)
    await till.payment(order_id, "CAPTURED")

    cancel = await till.tell(cancelled(reserved, "cancelled by the pharmacy"), order_id)
    await till.tell(cancelled(reserved, "cancelled by the pharmacy"), order_id, again=cancel)
    refunded = await till.probe.wait_for(PaymentRefunded, correlation_id=order_id)
    await till.settled()

    assert PaymentRefunded.model_validate(refunded.payload) == PaymentRefunded(
        payment_id=approved.payload["payment_id"],
        order_id=order_id,
        amount_cents=TOTAL_CENTS,
        reason="cancelled by the pharmacy",
    )
    payment = await till.payment(order_id, "REFUNDED")
    assert payment["captured_at"] < payment["refunded_at"]
    assert payment["processed_event_ids"].count(str(cancel.event_id)) == 1
    charge = await till.charge(order_id)
    assert (charge["state"], charge["refunded"]) == ("REFUNDED", True)
    assert till.money_events(order_id) == [PaymentApproved.TYPE, PaymentCaptured.TYPE, PaymentRefunded.TYPE]


async def test_a_returned_delivery_is_refunded_once_and_a_later_cancel_adds_nothing(till: Till) -> None:
    reserved, approved = await till.authorised()
    order_id = reserved.order_id
    await till.tell(picked_up(order_id), order_id)
    await till.payment(order_id, "CAPTURED")

    back = await till.tell(returned(order_id), order_id)
    await till.tell(returned(order_id), order_id, again=back)  # redelivered
    refunded = await till.probe.wait_for(PaymentRefunded, correlation_id=order_id)
    await till.tell(cancelled(reserved), order_id)  # the order's end, after the return
    await till.settled()

    assert PaymentRefunded.model_validate(refunded.payload) == PaymentRefunded(
        payment_id=approved.payload["payment_id"],
        order_id=order_id,
        amount_cents=TOTAL_CENTS,
        reason="no one home after 3 attempts",
    )
    payment = await till.payment(order_id, "REFUNDED")
    assert payment["processed_event_ids"].count(str(back.event_id)) == 1
    charge = await till.charge(order_id)
    assert (charge["state"], charge["refunded"]) == ("REFUNDED", True)
    assert till.money_events(order_id) == [PaymentApproved.TYPE, PaymentCaptured.TYPE, PaymentRefunded.TYPE]


async def test_a_delivery_returned_before_its_capture_voids_the_authorisation(till: Till) -> None:
    reserved, _ = await till.authorised()
    order_id = reserved.order_id

    await till.tell(returned(order_id, "wrong address"), order_id)
    voided = await till.probe.wait_for(PaymentVoided, correlation_id=order_id)
    await till.settled()

    assert PaymentVoided.model_validate(voided.payload).reason == "wrong address"
    await till.payment(order_id, "VOIDED")
    assert (await till.charge(order_id))["state"] == "VOIDED"
    assert till.money_events(order_id) == [PaymentApproved.TYPE, PaymentVoided.TYPE]


@pytest.mark.parametrize(
    ("step", "event", "status", "published"),
    [
        ("capture", "pickup", "CAPTURED", PaymentCaptured),
        ("void", "cancel", "VOIDED", PaymentVoided),
    ],
)
async def test_a_step_the_processor_took_before_a_crash_is_recorded_once_and_not_taken_again(
    till: Till, step: str, event: str, status: str, published: type[Event]
) -> None:
    # The handler asked the processor, then the process died before the payment was written.
    reserved, _ = await till.authorised()
    order_id = reserved.order_id
    assert (await getattr(till.processor, step)(idempotency_key=order_id)).done
    charge = await till.charge(order_id)

    await till.tell(picked_up(order_id) if event == "pickup" else cancelled(reserved), order_id)
    await till.probe.wait_for(published, correlation_id=order_id)
    await till.settled()

    await till.payment(order_id, status)
    assert await till.charge(order_id) == charge  # not taken, nor stamped, a second time
    assert till.events_for(order_id, published.TYPE) == 1


async def test_a_capture_the_processor_refuses_is_dead_lettered_with_its_reason(
    till: Till, namespace: Namespace
) -> None:
    # Our record says AUTHORISED, the processor says voided: the money must not be guessed at.
    reserved, _ = await till.authorised()
    order_id = reserved.order_id
    await till.processor.void(idempotency_key=order_id)

    pickup = await till.tell(picked_up(order_id), order_id)
    queue = topology.event_queue(namespace.name, "payment_service")
    letters = await eventually(
        lambda: dead_letters(namespace.backing.rabbitmq_url, queue), bool, what="the pickup dead-lettered"
    )

    assert [letter.message_id for letter in letters] == [str(pickup.event_id)]
    headers: dict[str, Any] = dict(letters[0].headers)
    assert headers["x-error-type"] == "PermanentFailure"
    assert f"cannot capture {order_id}: it was voided" in str(headers["x-error"])
    payment = await till.payment(order_id, "AUTHORISED")
    assert str(pickup.event_id) not in payment["processed_event_ids"]
    assert till.events_for(order_id, PaymentCaptured.TYPE) == 0


async def test_order_cancelled_before_its_stock_reservation_arrives_is_never_authorised(till: Till) -> None:
    # The order expired (or was cancelled) before StockReserved reached payment_service.
    owner = patient()
    method = await till.add_card(owner, GOOD_CARD)
    reserved = stock_reserved(owner, method.id)
    cancel = cancelled(reserved, "reservation expired: payment not received within 15 minutes")

    await till.probe.publish(cancel, correlation_id=reserved.order_id)
    await till.probe.publish(reserved, correlation_id=reserved.order_id)
    await till.probe.publish(picked_up(reserved.order_id), correlation_id=reserved.order_id)
    await till.settled()

    await till.payment(reserved.order_id, "FORGONE")
    assert await till.service.db["processor_charges"].count_documents({"_id": reserved.order_id}) == 0
    assert till.money_events(reserved.order_id) == []
    assert await till.ask(ListPayments(owner_id=owner)) == []


async def test_payments_stored_before_authorisations_are_refunded_never_captured_and_tombstones_stay(
    till: Till,
) -> None:
    # As payment_service and its processor stored them when StockReserved charged in full at once.
    owner = patient()
    charged, tombstone = str(uuid4()), str(uuid4())
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    payments, charges = till.service.db["payments"], till.service.db["processor_charges"]
    old_payment = {
        "_id": payment_id_for(charged),
        "version": 1,
        "processed_event_ids": [str(uuid4())],
        "order_id": charged,
        "patient_id": owner,
        "payment_method_id": "card-before",
        "amount_cents": TOTAL_CENTS,
        "status": "APPROVED",
        "brand": "visa",
        "last4": "4242",
        "charge_id": "ch_before",
        "decline_reason": None,
        "hidden_at": None,
        "hidden_by": None,
        "created_at": at,
        "refunded_at": None,
    }
    await payments.insert_one(old_payment)
    await payments.insert_one(
        {
            **old_payment,
            "_id": payment_id_for(tombstone),
            "order_id": tombstone,
            "status": "VOIDED",
            "patient_id": "",
            "payment_method_id": "",
            "amount_cents": 0,
            "brand": "",
            "last4": "",
            "charge_id": None,
        }
    )
    await charges.insert_one(
        {
            "_id": charged,
            "charge_id": "ch_before",
            "token": "tok_before",
            "amount_cents": TOTAL_CENTS,
            "approved": True,
            "reason": None,
            "refunded": False,
            "at": at,
        }
    )
    everyone = [PaymentView.model_validate(p) for p in await till.ask(ListPayments(owner_id=None))]
    assert [(p.order_id, p.status) for p in everyone] == [(charged, "APPROVED")]

    # Charged in full already: the pickup takes nothing; a cancel gives it all back, once.
    await till.tell(picked_up(charged), charged)
    await till.settled()
    assert (await till.payment(charged, "APPROVED"))["captured_at"] is None
    cancel = await till.tell(
        OrderCancelled(order_id=charged, prescription_id="p", patient_id=owner, reason="r"), charged
    )
    await till.tell(
        OrderCancelled(order_id=charged, prescription_id="p", patient_id=owner, reason="r"),
        charged,
        again=cancel,
    )
    refunded = await till.probe.wait_for(PaymentRefunded, correlation_id=charged)
    assert refunded.payload["amount_cents"] == TOTAL_CENTS
    # The old tombstone still makes a late StockReserved authorise nothing.
    late = stock_reserved(owner, "card-before").model_copy(update={"order_id": tombstone})
    await till.tell(late, tombstone)
    await till.settled()

    await till.payment(charged, "REFUNDED")
    assert (await till.charge(charged))["refunded"] is True
    assert till.money_events(charged) == [PaymentRefunded.TYPE]
    assert (await till.payment(tombstone, "VOIDED"))["version"] == 1
    assert await charges.count_documents({"_id": tombstone}) == 0
    assert till.money_events(tombstone) == []


# --- a card its patient removed ---------------------------------------------------------------------


async def test_a_removed_card_is_no_longer_listed_found_or_charged(till: Till) -> None:
    owner = patient()
    kept, removed = await till.add_card(owner, GOOD_CARD), await till.add_card(owner, GOOD_CARD)

    await till.ask(RemovePaymentMethod(owner_id=owner, payment_method_id=removed.id))
    await till.ask(RemovePaymentMethod(owner_id=owner, payment_method_id=removed.id))  # again: the same

    listed = await till.ask(ListPaymentMethods(owner_id=owner))
    assert [m["id"] for m in listed] == [kept.id]
    found = await till.service.commands.dispatch(
        "GetPaymentMethod",
        GetPaymentMethod(owner_id=owner, payment_method_id=removed.id).model_dump_json().encode(),
    )
    assert found.error is not None
    assert found.error.code == "not_found"
    # An order that named it before its removal is declined when its stock is reserved: never charged.
    reserved = stock_reserved(owner, removed.id)
    await till.tell(reserved, reserved.order_id)
    declined = await till.probe.wait_for(PaymentDeclined, correlation_id=reserved.order_id)
    assert PaymentDeclined.model_validate(declined.payload).reason == "the card was removed by its owner"
    assert await till.service.db["processor_charges"].find_one({"_id": reserved.order_id}) is None


async def test_a_hold_taken_before_a_crash_is_released_when_the_card_was_removed_meanwhile(
    till: Till,
) -> None:
    # The handler authorised, then the process died before the payment was written; the patient
    # removed the card before StockReserved came again: declined, and the processor's hold released.
    owner = patient()
    method = await till.add_card(owner, GOOD_CARD)
    reserved = stock_reserved(owner, method.id)
    stored = await till.service.db["payment_methods"].find_one({"_id": method.id})
    assert stored is not None
    held = await till.processor.authorise(stored["token"], TOTAL_CENTS, idempotency_key=reserved.order_id)
    assert held.state == "AUTHORISED"
    await till.ask(RemovePaymentMethod(owner_id=owner, payment_method_id=method.id))

    await till.tell(reserved, reserved.order_id)
    await till.probe.wait_for(PaymentDeclined, correlation_id=reserved.order_id)
    await till.settled()

    await till.payment(reserved.order_id, "DECLINED")
    assert (await till.charge(reserved.order_id))["state"] == "VOIDED"


async def test_an_order_authorised_before_its_card_was_removed_is_still_captured_at_pickup(
    till: Till,
) -> None:
    reserved, _ = await till.authorised()
    owner = reserved.patient_id

    await till.ask(RemovePaymentMethod(owner_id=owner, payment_method_id=reserved.payment_method_id))
    await till.tell(picked_up(reserved.order_id), reserved.order_id)

    await till.probe.wait_for(PaymentCaptured, correlation_id=reserved.order_id)
    assert (await till.charge(reserved.order_id))["state"] == "CAPTURED"


async def test_another_patients_card_cannot_be_removed(till: Till) -> None:
    owner = patient()
    method = await till.add_card(owner, GOOD_CARD)

    refused = await till.service.commands.dispatch(
        "RemovePaymentMethod",
        RemovePaymentMethod(owner_id=patient(), payment_method_id=method.id).model_dump_json().encode(),
    )

    assert refused.error is not None
    assert refused.error.code == "not_found"
    assert [m["id"] for m in await till.ask(ListPaymentMethods(owner_id=owner))] == [method.id]
