"""The payment's state machine in payment_service/domain.py: which processor step each event asks for in
each state, what recording it does, and how payments stored before authorisations load. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.events import (
    PaymentApproved,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentVoided,
    ReservedLine,
    StockReserved,
)
from payment_service import domain
from payment_service.domain import Payment, PaymentMethod, ProcessorStep

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)
ORDER = "order-1"
RESERVED = StockReserved(
    order_id=ORDER,
    patient_id="patient-1",
    pharmacy_id="pharmacy-1",
    lines=(ReservedLine(medication_id="amoxicillin-500", quantity=3, unit_price_cents=450),),
    total_cents=1850,
    payment_method_id="card-1",
    service_fee_cents=150,
    delivery_fee_cents=350,
)
CARD = PaymentMethod(
    id="card-1",
    owner_id="patient-1",
    token="tok_1",
    brand="visa",
    last4="4242",
    exp_month=12,
    exp_year=2030,
    created_at=NOW,
)


def payment(status: str, **fields: Any) -> Payment:
    """A stored payment of ORDER in `status`, authorised at NOW."""
    stamps = {"VOIDED": "voided_at", "CAPTURED": "captured_at", "REFUNDED": "refunded_at"}
    if status in stamps:
        fields.setdefault(stamps[status], NOW)
    return Payment.model_validate(
        {
            "id": domain.payment_id_for(ORDER),
            "order_id": ORDER,
            "patient_id": "patient-1",
            "payment_method_id": "card-1",
            "amount_cents": 1850,
            "status": status,
            "brand": "visa",
            "last4": "4242",
            "charge_id": "ch_1",
            "created_at": NOW,
            **fields,
        }
    )


# state -> the step asked for by DeliveryPickedUp, OrderCancelled, DeliveryReturned
MOVES: list[tuple[str, ProcessorStep | None, ProcessorStep | None, ProcessorStep | None]] = [
    ("AUTHORISED", "capture", "void", "void"),
    ("CAPTURED", None, "refund", "refund"),
    ("APPROVED", None, "refund", "refund"),
    ("VOIDED", None, None, None),
    ("REFUNDED", None, None, None),
    ("DECLINED", None, None, None),
    ("FORGONE", None, None, None),
]


@pytest.mark.parametrize(("status", "pickup", "cancel", "returned"), MOVES)
def test_each_event_asks_the_processor_for_the_step_the_state_calls_for(
    status: str, pickup: ProcessorStep | None, cancel: ProcessorStep | None, returned: ProcessorStep | None
) -> None:
    held = payment(status)

    assert (domain.step_at_pickup(held), domain.step_at_cancel(held), domain.step_at_return(held)) == (
        pickup,
        cancel,
        returned,
    )


def test_an_authorised_card_holds_the_total_and_announces_payment_approved() -> None:
    held = domain.authorising(RESERVED, CARD, NOW)

    events = domain.record_authorisation(
        held, charge_id="ch_1", approved=True, charged_in_full=False, reason=None
    )

    assert (held.status, held.charge_id, held.amount_cents) == ("AUTHORISED", "ch_1", 1850)
    assert (held.brand, held.last4, held.patient_id, held.created_at) == ("visa", "4242", "patient-1", NOW)
    assert held.id == domain.payment_id_for(ORDER)
    assert events == [
        PaymentApproved(payment_id=held.id, order_id=ORDER, patient_id="patient-1", amount_cents=1850)
    ]


def test_a_declined_authorisation_is_declined_with_the_processors_reason() -> None:
    held = domain.authorising(RESERVED, CARD, NOW)

    events = domain.record_authorisation(
        held, charge_id="ch_1", approved=False, charged_in_full=False, reason="insufficient funds"
    )

    assert (held.status, held.decline_reason) == ("DECLINED", "insufficient funds")
    assert events == [
        PaymentDeclined(
            payment_id=held.id,
            order_id=ORDER,
            patient_id="patient-1",
            amount_cents=1850,
            reason="insufficient funds",
        )
    ]


def test_an_order_charged_in_full_before_authorisations_stays_approved() -> None:
    # A StockReserved redelivered across the upgrade finds the processor's charge in full of before.
    held = domain.authorising(RESERVED, CARD, NOW)

    events = domain.record_authorisation(
        held, charge_id="ch_1", approved=True, charged_in_full=True, reason=None
    )

    assert held.status == "APPROVED"
    assert [type(e) for e in events] == [PaymentApproved]


def test_without_a_usable_card_the_payment_is_declined_and_says_why() -> None:
    declined, events = domain.declined_payment(RESERVED, "payment method not found", NOW)

    assert (declined.status, declined.decline_reason, declined.charge_id) == (
        "DECLINED",
        "payment method not found",
        None,
    )
    assert [(type(e), e.reason) for e in events if isinstance(e, PaymentDeclined)] == [
        (PaymentDeclined, "payment method not found")
    ]


def test_a_capture_takes_the_authorised_amount() -> None:
    held = payment("AUTHORISED")

    events = domain.take_step(held, "capture", "picked up", LATER)

    assert (held.status, held.captured_at, held.voided_at, held.refunded_at) == (
        "CAPTURED",
        LATER,
        None,
        None,
    )
    assert events == [PaymentCaptured(payment_id=held.id, order_id=ORDER, amount_cents=1850)]


def test_a_void_releases_the_hold_with_the_reason() -> None:
    held = payment("AUTHORISED")

    events = domain.take_step(held, "void", "cancelled by the patient", LATER)

    assert (held.status, held.voided_at, held.captured_at) == ("VOIDED", LATER, None)
    assert events == [
        PaymentVoided(
            payment_id=held.id, order_id=ORDER, amount_cents=1850, reason="cancelled by the patient"
        )
    ]


@pytest.mark.parametrize("status", ["CAPTURED", "APPROVED"])
def test_a_refund_gives_back_what_was_taken_with_the_reason(status: str) -> None:
    taken = payment(status)

    events = domain.take_step(taken, "refund", "returned: no one home", LATER)

    assert (taken.status, taken.refunded_at) == ("REFUNDED", LATER)
    assert events == [
        PaymentRefunded(
            payment_id=taken.id, order_id=ORDER, amount_cents=1850, reason="returned: no one home"
        )
    ]


def test_a_voided_authorisation_is_a_payment_the_patient_sees() -> None:
    voided = payment("VOIDED", voided_at=LATER)

    assert voided.visible
    view = voided.view()
    assert (view.status, view.voided_at, view.captured_at, view.refunded_at) == ("VOIDED", LATER, None, None)


def test_a_cancel_before_the_stock_reservation_leaves_a_hidden_tombstone() -> None:
    tombstone = domain.forgone(ORDER, NOW)

    assert (tombstone.id, tombstone.status) == (domain.payment_id_for(ORDER), "FORGONE")
    assert not tombstone.visible
    with pytest.raises(AssertionError):
        tombstone.view()


# Documents exactly as payment_service stored them before authorisations (no captured_at, voided_at).
BEFORE = {
    "_id": "pay-1",
    "version": 2,
    "processed_event_ids": ["e-1"],
    "order_id": ORDER,
    "patient_id": "patient-1",
    "payment_method_id": "card-1",
    "amount_cents": 1350,
    "brand": "visa",
    "last4": "4242",
    "charge_id": "ch_1",
    "decline_reason": None,
    "hidden_at": None,
    "hidden_by": None,
    "created_at": NOW,
    "refunded_at": None,
}
TOMBSTONE_BEFORE = {
    **BEFORE,
    "status": "VOIDED",
    "patient_id": "",
    "payment_method_id": "",
    "amount_cents": 0,
    "brand": "",
    "last4": "",
    "charge_id": None,
}


@pytest.mark.parametrize(
    ("stored", "status", "visible"),
    [
        ({**BEFORE, "status": "APPROVED"}, "APPROVED", True),
        ({**BEFORE, "status": "REFUNDED", "refunded_at": LATER}, "REFUNDED", True),
        ({**BEFORE, "status": "DECLINED", "decline_reason": "card declined"}, "DECLINED", True),
        (TOMBSTONE_BEFORE, "FORGONE", False),
    ],
    ids=["charged", "refunded", "declined", "tombstone"],
)
def test_payments_stored_before_authorisations_still_load(
    stored: dict[str, Any], status: str, visible: bool
) -> None:
    loaded = Payment.model_validate({**{k: v for k, v in stored.items() if k != "_id"}, "id": stored["_id"]})

    assert (loaded.status, loaded.visible) == (status, visible)
    assert (loaded.captured_at, loaded.voided_at) == (None, None)
    if visible:
        assert loaded.view().status == status


def test_a_charge_in_full_of_before_is_refunded_on_cancel_and_never_captured() -> None:
    charged = payment("APPROVED")

    assert domain.step_at_pickup(charged) is None
    assert domain.step_at_cancel(charged) == "refund"
