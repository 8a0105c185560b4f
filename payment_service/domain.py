"""Card rules and the payment's life. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import NAMESPACE_URL, uuid5

from pydantic import model_validator

from contracts.base import Event
from contracts.commands import PaymentMethodView, PaymentView
from contracts.events import (
    PaymentApproved,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentVoided,
    StockReserved,
)
from service_runtime.aggregate import Aggregate


class InvalidCard(Exception):
    """The card details are not a usable card; `field` names the one at fault."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class CardDetails:
    number: str
    exp_month: int
    exp_year: int
    cvc: str


def luhn_valid(number: str) -> bool:
    """The check digit every card number carries (ISO/IEC 7812)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"34", "37"}:
        return "amex"
    if 51 <= int(number[:2]) <= 55 or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    if number.startswith("6011") or number.startswith("65"):
        return "discover"
    return "unknown"


def validate_card(card: CardDetails, today: datetime) -> str:
    """Check number, expiry and CVC; return the brand. Raises InvalidCard naming the field."""
    number = card.number.replace(" ", "").replace("-", "")
    if not _ascii_digits(number) or not 12 <= len(number) <= 19:
        raise InvalidCard("card_number", "a card number is 12 to 19 digits")
    if not luhn_valid(number):
        raise InvalidCard("card_number", "the card number is not valid (check digit)")
    if not 1 <= card.exp_month <= 12:
        raise InvalidCard("exp_month", "the expiry month is 1 to 12")
    if (card.exp_year, card.exp_month) < (today.year, today.month):
        raise InvalidCard("exp_year", "the card has expired")
    if card.exp_year > today.year + 20:
        raise InvalidCard("exp_year", "the expiry year is too far ahead")
    brand = card_brand(number)
    cvc_length = 4 if brand == "amex" else 3
    if not _ascii_digits(card.cvc) or len(card.cvc) != cvc_length:
        raise InvalidCard("cvc", f"the CVC is {cvc_length} digits for this card")
    return brand


def _ascii_digits(text: str) -> bool:
    # str.isdigit() also accepts "²" and "٤": the first crashes int(), the second is no card number.
    return text.isascii() and text.isdigit()


def normalise_number(number: str) -> str:
    return number.replace(" ", "").replace("-", "")


class PaymentMethod(Aggregate):
    """A patient's card as the processor's token, its brand and last four digits: nothing more."""

    owner_id: str
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    created_at: datetime
    # Removed by its patient: kept (its payments name it), never listed, offered or charged again.
    removed_at: datetime | None = None

    def view(self) -> PaymentMethodView:
        return PaymentMethodView(
            id=self.id,
            owner_id=self.owner_id,
            brand=self.brand,
            last4=self.last4,
            exp_month=self.exp_month,
            exp_year=self.exp_year,
            created_at=self.created_at,
        )


def remove_payment_method(method: PaymentMethod, now: datetime) -> list[Event]:
    """The patient removes their card: it is not charged again. A payment authorised on it before keeps
    its hold (captured at pickup, voided or refunded as ever: those name the charge, not the card)."""
    if method.removed_at is None:
        method.removed_at = now
    return []


def unusable_card(method: PaymentMethod | None, patient_id: str) -> str | None:
    """Why reserved stock cannot be paid with this card (None: it can): only the patient's own card,
    and not one they removed, even if the order named it before its removal."""
    if method is None or method.owner_id != patient_id:
        return "payment method not found"
    if method.removed_at is not None:
        return "the card was removed by its owner"
    return None


# AUTHORISED: held on the card, nothing taken. CAPTURED: taken, when the courier picked the order up.
# VOIDED: the hold released, never charged. REFUNDED: taken, then given back. DECLINED: never held.
# APPROVED: charged in full at once, stored before authorisations; it is refunded as CAPTURED is.
# FORGONE: a tombstone, not a payment: the order was cancelled before its StockReserved came, which
# then authorises nothing. Never shown. Before voids existed it was stored as VOIDED, and a stored
# VOIDED without `voided_at` (which every void stamps) still loads as FORGONE.
PaymentState = Literal["AUTHORISED", "CAPTURED", "VOIDED", "APPROVED", "DECLINED", "REFUNDED", "FORGONE"]
# What a move asks of the card processor before it is recorded.
ProcessorStep = Literal["capture", "void", "refund"]


def payment_id_for(order_id: str) -> str:
    """One payment per order, whose id follows from the order's: a redelivered event finds it again."""
    return str(uuid5(NAMESPACE_URL, f"pharmacy:payment:{order_id}"))


class Payment(Aggregate):
    """The money of one order: authorised on StockReserved, captured at pickup, voided or refunded."""

    order_id: str
    patient_id: str = ""
    payment_method_id: str = ""
    amount_cents: int = 0
    status: PaymentState
    brand: str = ""
    last4: str = ""
    charge_id: str | None = None
    decline_reason: str | None = None
    hidden_at: datetime | None = None
    hidden_by: str | None = None
    created_at: datetime
    captured_at: datetime | None = None
    voided_at: datetime | None = None
    refunded_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _tombstone_of_before(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("status") == "VOIDED" and data.get("voided_at") is None:
            return {**data, "status": "FORGONE"}
        return data

    @property
    def visible(self) -> bool:
        return self.status != "FORGONE" and self.hidden_at is None

    def view(self) -> PaymentView:
        assert self.status != "FORGONE", "a tombstone is no payment"
        return PaymentView(
            id=self.id,
            order_id=self.order_id,
            patient_id=self.patient_id,
            payment_method_id=self.payment_method_id,
            amount_cents=self.amount_cents,
            status=self.status,
            brand=self.brand,
            last4=self.last4,
            decline_reason=self.decline_reason,
            created_at=self.created_at,
            captured_at=self.captured_at,
            voided_at=self.voided_at,
            refunded_at=self.refunded_at,
        )


def forgone(order_id: str, now: datetime) -> Payment:
    """The tombstone of an order cancelled before its stock reservation came: that authorises nothing."""
    return Payment(id=payment_id_for(order_id), order_id=order_id, status="FORGONE", created_at=now)


def authorising(reserved: StockReserved, method: PaymentMethod, now: datetime) -> Payment:
    """The payment of reserved stock, about to be authorised on the patient's card for the total."""
    return Payment(
        id=payment_id_for(reserved.order_id),
        order_id=reserved.order_id,
        patient_id=reserved.patient_id,
        payment_method_id=reserved.payment_method_id,
        amount_cents=reserved.total_cents,
        status="AUTHORISED",
        brand=method.brand,
        last4=method.last4,
        created_at=now,
    )


def declined_payment(reserved: StockReserved, reason: str, now: datetime) -> tuple[Payment, list[Event]]:
    """No usable card: the payment is DECLINED and the order hears why."""
    payment = Payment(
        id=payment_id_for(reserved.order_id),
        order_id=reserved.order_id,
        patient_id=reserved.patient_id,
        payment_method_id=reserved.payment_method_id,
        amount_cents=reserved.total_cents,
        status="DECLINED",
        decline_reason=reason,
        created_at=now,
    )
    return payment, [_declined(payment)]


def record_authorisation(
    payment: Payment, *, charge_id: str, approved: bool, charged_in_full: bool, reason: str | None
) -> list[Event]:
    """Authorised: AUTHORISED (APPROVED for a charge in full made before), PaymentApproved; otherwise
    DECLINED with the processor's reason, PaymentDeclined."""
    payment.charge_id = charge_id
    if not approved:
        payment.status, payment.decline_reason = "DECLINED", reason or "declined"
        return [_declined(payment)]
    payment.status = "APPROVED" if charged_in_full else "AUTHORISED"
    return [
        PaymentApproved(
            payment_id=payment.id,
            order_id=payment.order_id,
            patient_id=payment.patient_id,
            amount_cents=payment.amount_cents,
        )
    ]


def _declined(payment: Payment) -> PaymentDeclined:
    return PaymentDeclined(
        payment_id=payment.id,
        order_id=payment.order_id,
        patient_id=payment.patient_id,
        amount_cents=payment.amount_cents,
        reason=payment.decline_reason or "declined",
    )


# The moves, state x event -> state (event published); every other pair changes nothing:
#   no payment  StockReserved                    -> AUTHORISED (PaymentApproved) | DECLINED (PaymentDeclined)
#   no payment  OrderCancelled                   -> FORGONE (none)
#   AUTHORISED  DeliveryPickedUp                 -> CAPTURED (PaymentCaptured)
#   AUTHORISED  OrderCancelled, DeliveryReturned -> VOIDED (PaymentVoided)
#   CAPTURED    OrderCancelled, DeliveryReturned -> REFUNDED (PaymentRefunded)
#   APPROVED    OrderCancelled, DeliveryReturned -> REFUNDED (PaymentRefunded)


def step_at_pickup(payment: Payment) -> ProcessorStep | None:
    """The courier has the order: an AUTHORISED payment is captured. Voided meanwhile (cancelled), or
    charged in full before authorisations (APPROVED), nothing is taken now."""
    return "capture" if payment.status == "AUTHORISED" else None


def step_at_cancel(payment: Payment) -> ProcessorStep | None:
    """The order is cancelled, or came back undelivered: a hold is voided, money taken is refunded."""
    if payment.status == "AUTHORISED":
        return "void"
    if payment.status in ("CAPTURED", "APPROVED"):
        return "refund"
    return None


# A delivery brought back after its last attempt ends the payment as a cancel does.
step_at_return = step_at_cancel


def take_step(payment: Payment, step: ProcessorStep, reason: str, now: datetime) -> list[Event]:
    """Record what the processor did: CAPTURED (PaymentCaptured), VOIDED (PaymentVoided with the reason)
    or REFUNDED (PaymentRefunded with the reason)."""
    if step == "capture":
        payment.status, payment.captured_at = "CAPTURED", now
        return [
            PaymentCaptured(
                payment_id=payment.id, order_id=payment.order_id, amount_cents=payment.amount_cents
            )
        ]
    if step == "void":
        payment.status, payment.voided_at = "VOIDED", now
        return [
            PaymentVoided(
                payment_id=payment.id,
                order_id=payment.order_id,
                amount_cents=payment.amount_cents,
                reason=reason,
            )
        ]
    payment.status, payment.refunded_at = "REFUNDED", now
    return [
        PaymentRefunded(
            payment_id=payment.id, order_id=payment.order_id, amount_cents=payment.amount_cents, reason=reason
        )
    ]
