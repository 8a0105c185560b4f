"""Card rules and the payment's life. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import NAMESPACE_URL, uuid5

from contracts.commands import PaymentMethodView, PaymentView
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


PaymentState = Literal["APPROVED", "DECLINED", "REFUNDED", "VOIDED"]


def payment_id_for(order_id: str) -> str:
    """One payment per order, whose id follows from the order's: a redelivered event finds it again."""
    return str(uuid5(NAMESPACE_URL, f"pharmacy:payment:{order_id}"))


class Payment(Aggregate):
    """One charge attempt for one order. VOIDED: the order was cancelled before any charge."""

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
    refunded_at: datetime | None = None

    @property
    def visible(self) -> bool:
        return self.status != "VOIDED" and self.hidden_at is None

    def view(self) -> PaymentView:
        assert self.status != "VOIDED"
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
            refunded_at=self.refunded_at,
        )
