"""A card its patient removed, in payment_service/domain.py: kept for the payments that name it, never
charged again. Pure: the time is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payment_service import domain
from payment_service.domain import PaymentMethod

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def card(owner_id: str = "patient-1") -> PaymentMethod:
    return PaymentMethod(
        id="card-1",
        owner_id=owner_id,
        token="tok_1",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2030,
        created_at=NOW - timedelta(days=30),
    )


def test_a_patients_own_card_pays_for_their_reserved_stock() -> None:
    assert domain.unusable_card(card(), "patient-1") is None


def test_a_removed_card_is_not_charged_even_for_an_order_placed_before_its_removal() -> None:
    method = card()

    events = domain.remove_payment_method(method, NOW)

    assert events == []
    assert method.removed_at == NOW
    assert domain.unusable_card(method, "patient-1") == "the card was removed by its owner"


def test_removing_a_card_twice_keeps_the_first_removal() -> None:
    method = card()
    domain.remove_payment_method(method, NOW)

    domain.remove_payment_method(method, NOW + timedelta(hours=1))

    assert method.removed_at == NOW


def test_another_patients_card_and_no_card_are_never_tried() -> None:
    assert domain.unusable_card(card(owner_id="patient-2"), "patient-1") == "payment method not found"
    assert domain.unusable_card(None, "patient-1") == "payment method not found"


def test_a_card_stored_before_removals_existed_loads_as_not_removed() -> None:
    stored = card().model_dump(exclude={"removed_at"})

    assert PaymentMethod.model_validate(stored).removed_at is None
