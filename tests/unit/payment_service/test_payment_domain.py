"""Card rules and the payment record in payment_service/domain.py. Pure: the day is passed in."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from payment_service import domain
from payment_service.domain import CardDetails, Payment

TODAY = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
DISCOVER = "6011111111111117"


def card(number: str = VISA, month: int = 12, year: int = 2030, cvc: str = "123") -> CardDetails:
    return CardDetails(number=number, exp_month=month, exp_year=year, cvc=cvc)


def refused_field(details: CardDetails) -> str:
    with pytest.raises(domain.InvalidCard) as refused:
        domain.validate_card(details, TODAY)
    return refused.value.field


@pytest.mark.parametrize("number", [VISA, MASTERCARD, AMEX, DISCOVER, "4000056655665556", "79927398713"])
def test_luhn_accepts_numbers_with_a_correct_check_digit(number: str) -> None:
    assert domain.luhn_valid(number)


@pytest.mark.parametrize("number", [VISA, MASTERCARD, AMEX, DISCOVER])
def test_luhn_refuses_every_other_check_digit(number: str) -> None:
    body, check = number[:-1], number[-1]

    wrong = [digit for digit in "0123456789" if digit != check and domain.luhn_valid(body + digit)]

    assert wrong == []


def test_luhn_catches_two_swapped_digits() -> None:
    swapped = VISA[:2] + VISA[3] + VISA[2] + VISA[4:]  # 4224..., a typo the check digit exists for
    assert swapped != VISA
    assert not domain.luhn_valid(swapped)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        (VISA, "visa"),
        (MASTERCARD, "mastercard"),
        ("5105105105105100", "mastercard"),
        ("2221000000000009", "mastercard"),
        ("2720990000000007", "mastercard"),
        ("2721000000000004", "unknown"),
        ("341111111111111", "amex"),
        (AMEX, "amex"),
        (DISCOVER, "discover"),
        ("6500000000000002", "discover"),
        ("3530111333300000", "unknown"),
    ],
)
def test_the_brand_follows_from_the_leading_digits(number: str, brand: str) -> None:
    assert domain.card_brand(number) == brand


@pytest.mark.parametrize(
    ("details", "brand"),
    [
        (card(VISA), "visa"),
        (card(MASTERCARD), "mastercard"),
        (card(DISCOVER), "discover"),
        (card(AMEX, cvc="1234"), "amex"),
        (card("4242 4242-4242 4242"), "visa"),
    ],
)
def test_a_usable_card_is_accepted_and_its_brand_returned(details: CardDetails, brand: str) -> None:
    assert domain.validate_card(details, TODAY) == brand


@pytest.mark.parametrize(
    "number",
    ["42424242424", "42424242424242424242", "4242x24242424242", ""],
    ids=["11-digits", "20-digits", "a-letter", "empty"],
)
def test_a_number_of_the_wrong_shape_is_refused_naming_the_card_number(number: str) -> None:
    assert refused_field(card(number)) == "card_number"


def test_a_number_with_a_wrong_check_digit_is_refused_naming_the_card_number() -> None:
    with pytest.raises(domain.InvalidCard) as refused:
        domain.validate_card(card("4242424242424241"), TODAY)

    assert refused.value.field == "card_number"
    assert "check digit" in refused.value.detail


@pytest.mark.parametrize("month", [0, 13, -1])
def test_a_month_outside_1_to_12_is_refused_naming_the_month(month: int) -> None:
    assert refused_field(card(month=month)) == "exp_month"


@pytest.mark.parametrize(("month", "year"), [(10, 2026), (12, 2025), (1, 2000)])
def test_an_expired_card_is_refused_naming_the_year(month: int, year: int) -> None:
    assert refused_field(card(month=month, year=year)) == "exp_year"


def test_a_card_is_good_through_its_expiry_month() -> None:
    assert domain.validate_card(card(month=11, year=2026), TODAY) == "visa"


def test_an_expiry_more_than_twenty_years_ahead_is_refused() -> None:
    assert domain.validate_card(card(year=2046), TODAY) == "visa"
    assert refused_field(card(year=2047)) == "exp_year"


@pytest.mark.parametrize(
    ("number", "cvc"),
    [(AMEX, "123"), (AMEX, "12345"), (VISA, "1234"), (VISA, "12"), (VISA, "12a"), (MASTERCARD, "")],
)
def test_a_cvc_of_the_wrong_length_for_the_brand_is_refused(number: str, cvc: str) -> None:
    assert refused_field(card(number, cvc=cvc)) == "cvc"


def test_invalid_card_carries_the_field_and_a_readable_detail() -> None:
    with pytest.raises(domain.InvalidCard) as refused:
        domain.validate_card(card(AMEX, cvc="123"), TODAY)

    assert refused.value.field == "cvc"
    assert refused.value.detail == "the CVC is 4 digits for this card"
    assert str(refused.value) == refused.value.detail


def test_the_number_is_checked_before_the_expiry_and_the_cvc() -> None:
    assert refused_field(card("4242424242424241", month=13, cvc="x")) == "card_number"
    assert refused_field(card(month=13, cvc="x")) == "exp_month"


def test_payment_id_follows_from_the_order_so_a_redelivery_finds_it_again() -> None:
    first = domain.payment_id_for("order-1")

    assert domain.payment_id_for("order-1") == first
    assert domain.payment_id_for("order-2") != first
    assert UUID(first).version == 5


@pytest.mark.parametrize(
    ("status", "voided_at", "hidden", "visible"),
    [
        ("APPROVED", None, False, True),
        ("AUTHORISED", None, False, True),
        ("CAPTURED", None, False, True),
        ("DECLINED", None, False, True),
        ("REFUNDED", None, False, True),
        # A voided authorisation is a payment the patient sees; the tombstone of a cancel is none.
        ("VOIDED", TODAY, False, True),
        ("FORGONE", None, False, False),
        # The tombstone as stored before voids existed.
        ("VOIDED", None, False, False),
        ("APPROVED", None, True, False),
        ("REFUNDED", None, True, False),
        ("VOIDED", TODAY, True, False),
    ],
)
def test_tombstones_and_hidden_payments_are_not_visible(
    status: str, voided_at: datetime | None, hidden: bool, visible: bool
) -> None:
    payment = Payment.model_validate(
        {
            "id": "pay-1",
            "order_id": "order-1",
            "status": status,
            "created_at": TODAY,
            "voided_at": voided_at,
            "hidden_at": TODAY if hidden else None,
        }
    )

    assert payment.visible is visible


@pytest.mark.parametrize("number", ["4242424242424²42", "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"])
def test_a_number_with_non_ascii_digits_is_refused_naming_the_card_number(number: str) -> None:
    # str.isdigit() accepts "²" (which then crashed int(): a 500) and Arabic-Indic digits.
    with pytest.raises(domain.InvalidCard) as refused:
        domain.validate_card(CardDetails(number, 12, 2030, "123"), TODAY)
    assert refused.value.field == "card_number"
