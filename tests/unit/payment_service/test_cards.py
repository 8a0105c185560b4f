"""Card checks and the payment record, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payment_service import domain
from payment_service.domain import CardDetails, Payment

TODAY = datetime(2026, 11, 26, tzinfo=UTC)


def card(
    number: str = "4242424242424242", month: int = 12, year: int = 2030, cvc: str = "123"
) -> CardDetails:
    return CardDetails(number=number, exp_month=month, exp_year=year, cvc=cvc)


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4242424242424242", True),
        ("4000000000000002", True),
        ("378282246310005", True),
        ("4242424242424241", False),
    ],
)
def test_luhn_check_digit(number: str, valid: bool) -> None:
    assert domain.luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("9999999999999995", "unknown"),
    ],
)
def test_brand_from_the_number(number: str, brand: str) -> None:
    assert domain.card_brand(number) == brand


@pytest.mark.parametrize(
    ("details", "field"),
    [
        (card(number="4242"), "card_number"),
        (card(number="4242x24242424242"), "card_number"),
        (card(number="4242424242424241"), "card_number"),
        (card(month=13), "exp_month"),
        (card(month=10, year=2026), "exp_year"),
        (card(year=2060), "exp_year"),
        (card(cvc="12"), "cvc"),
        (card(number="378282246310005", cvc="123"), "cvc"),
    ],
)
def test_unusable_cards_are_refused_naming_the_field(details: CardDetails, field: str) -> None:
    with pytest.raises(domain.InvalidCard) as refused:
        domain.validate_card(details, TODAY)
    assert refused.value.field == field


def test_a_card_expiring_this_month_is_still_good() -> None:
    assert domain.validate_card(card(month=11, year=2026), TODAY) == "visa"
    assert domain.validate_card(card(number="378282246310005", cvc="1234"), TODAY) == "amex"


def test_spaces_and_dashes_in_a_number_are_ignored() -> None:
    assert domain.normalise_number("4242 4242-4242 4242") == "4242424242424242"


def test_one_payment_id_per_order() -> None:
    assert domain.payment_id_for("o-1") == domain.payment_id_for("o-1")
    assert domain.payment_id_for("o-1") != domain.payment_id_for("o-2")


def test_voided_and_hidden_payments_are_not_shown() -> None:
    shown = Payment(id="p", order_id="o", status="APPROVED", created_at=TODAY)
    voided = Payment(id="p", order_id="o", status="VOIDED", created_at=TODAY)
    hidden = Payment(id="p", order_id="o", status="REFUNDED", created_at=TODAY, hidden_at=TODAY)

    assert [p.visible for p in (shown, voided, hidden)] == [True, False, False]
