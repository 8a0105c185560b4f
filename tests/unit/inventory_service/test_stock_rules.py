"""Where an order can be served, and how stock moves: holding, releasing, selling. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.events import LineShortage, Location, PrescribedLine, ReservedLine
from inventory_service import domain
from inventory_service.domain import Medication, Pharmacy, Plan

NOW = datetime(2026, 11, 26, tzinfo=UTC)
HOME = Location(latitude=52.52, longitude=13.405)  # Berlin


def pharmacy(pid: str, latitude: float, longitude: float, **stock: int) -> Pharmacy:
    p = Pharmacy(
        id=pid,
        name=pid,
        address="Street",
        location=Location(latitude=latitude, longitude=longitude),
        created_at=NOW,
    )
    for medication_id, quantity in stock.items():
        p.set_available(medication_id, quantity)
    return p


def medication(mid: str, price: int = 500, discontinued: bool = False) -> Medication:
    return Medication(
        id=mid,
        name=mid,
        strength="1 mg",
        form="tablet",
        price_cents=price,
        prescription_only=True,
        discontinued=discontinued,
        catalogue_key=mid,
        created_at=NOW,
    )


CATALOGUE = {
    "a": medication("a", 420),
    "b": medication("b", 199),
    "gone": medication("gone", discontinued=True),
}


def lines(**quantities: int) -> list[PrescribedLine]:
    return [PrescribedLine(medication_id=m, quantity=q) for m, q in quantities.items()]


def plan(wanted: list[PrescribedLine], pharmacies: list[Pharmacy], **kw: object) -> Plan | list[LineShortage]:
    return domain.plan_reservation(wanted, HOME, pharmacies, CATALOGUE, radius_km=50, **kw)  # type: ignore[arg-type]


def test_the_nearest_pharmacy_with_every_line_is_chosen_and_priced() -> None:
    near = pharmacy("near", 52.52, 13.41, a=5, b=5)
    farther = pharmacy("farther", 52.60, 13.40, a=5, b=5)

    outcome = plan(lines(a=2, b=1), [farther, near])

    assert isinstance(outcome, Plan)
    assert outcome.pharmacy.id == "near"
    assert outcome.total_cents == 2 * 420 + 199


def test_a_nearer_pharmacy_missing_one_line_is_passed_over() -> None:
    near = pharmacy("near", 52.52, 13.41, a=5)
    farther = pharmacy("farther", 52.60, 13.40, a=5, b=1)

    outcome = plan(lines(a=1, b=1), [near, farther])

    assert isinstance(outcome, Plan)
    assert outcome.pharmacy.id == "farther"


def test_pharmacies_beyond_the_radius_do_not_count() -> None:
    munich = pharmacy("munich", 48.14, 11.58, a=100)

    outcome = plan(lines(a=1), [munich])

    assert outcome == [
        LineShortage(
            medication_id="a",
            requested=1,
            best_available=0,
            reason="no pharmacy within 50 km has it in stock",
        )
    ]


def test_shortage_says_how_many_the_best_pharmacy_has() -> None:
    outcome = plan(lines(a=5), [pharmacy("p1", 52.52, 13.41, a=2), pharmacy("p2", 52.53, 13.41, a=3)])

    assert outcome == [
        LineShortage(
            medication_id="a",
            requested=5,
            best_available=3,
            reason="at most 3 available at one pharmacy within 50 km",
        )
    ]


def test_every_line_in_stock_somewhere_but_nowhere_all_together_is_a_shortage() -> None:
    outcome = plan(lines(a=1, b=1), [pharmacy("p1", 52.52, 13.41, a=1), pharmacy("p2", 52.53, 13.41, b=1)])

    assert isinstance(outcome, list)
    assert "no single pharmacy" in outcome[0].reason


def test_unknown_and_discontinued_medications_are_named() -> None:
    outcome = plan(lines(nope=1, gone=1, a=1), [pharmacy("p", 52.52, 13.41, a=9)])

    assert isinstance(outcome, list)
    assert {(s.medication_id, s.reason) for s in outcome} == {
        ("nope", "not in the catalogue"),
        ("gone", "discontinued"),
    }


def test_the_same_medication_on_two_lines_is_counted_together() -> None:
    outcome = plan(lines(a=2) + lines(a=2), [pharmacy("p", 52.52, 13.41, a=3)])

    assert isinstance(outcome, list)
    assert outcome[0].requested == 4


def test_excluded_pharmacies_are_skipped() -> None:
    near, other = pharmacy("near", 52.52, 13.41, a=5), pharmacy("other", 52.55, 13.41, a=5)

    outcome = plan(lines(a=1), [near, other], exclude=frozenset({"near"}))

    assert isinstance(outcome, Plan)
    assert outcome.pharmacy.id == "other"


def held(p: Pharmacy, order: str, **quantities: int) -> Pharmacy:
    p.hold(
        order,
        [ReservedLine(medication_id=m, quantity=q, unit_price_cents=1) for m, q in quantities.items()],
        NOW,
    )
    return p


def totals(p: Pharmacy, m: str) -> tuple[int, int, int]:
    level = p.stock[m]
    return level.available, level.reserved, level.sold


def test_holding_moves_stock_to_reserved_and_twice_is_once() -> None:
    p = held(pharmacy("p", 0, 0, a=10), "o-1", a=3)
    held(p, "o-1", a=3)

    assert totals(p, "a") == (7, 3, 0)


def test_holding_is_all_or_nothing() -> None:
    p = pharmacy("p", 0, 0, a=10, b=1)

    with pytest.raises(domain.OutOfStock):
        held(p, "o-1", a=3, b=2)

    assert (totals(p, "a"), totals(p, "b")) == ((10, 0, 0), (1, 0, 0))
    assert p.holds == {}


def test_release_returns_held_stock_and_twice_is_once() -> None:
    p = held(pharmacy("p", 0, 0, a=10), "o-1", a=3)

    p.release("o-1")
    p.release("o-1")

    assert totals(p, "a") == (10, 0, 0)


def test_selling_turns_held_stock_into_sold_and_twice_is_once() -> None:
    p = held(pharmacy("p", 0, 0, a=10), "o-1", a=3)

    p.sell("o-1")
    p.sell("o-1")

    assert totals(p, "a") == (7, 0, 3)


def test_stock_sold_to_a_cancelled_order_comes_back_once() -> None:
    p = held(pharmacy("p", 0, 0, a=10), "o-1", a=3)
    p.sell("o-1")
    sold = [ReservedLine(medication_id="a", quantity=3, unit_price_cents=1)]

    p.take_back("o-1", sold)
    p.take_back("o-1", sold)

    assert totals(p, "a") == (10, 0, 0)


def test_distance_berlin_to_munich_is_about_504_km() -> None:
    assert domain.distance_km(HOME, Location(latitude=48.1351, longitude=11.5820)) == pytest.approx(
        504, abs=5
    )


def test_availability_lists_pharmacies_with_stock_nearest_first() -> None:
    far, near, empty = (
        pharmacy("far", 52.60, 13.4, a=1),
        pharmacy("near", 52.53, 13.4, a=2),
        pharmacy("empty", 52.52, 13.4),
    )

    views = domain.availability("a", [far, empty, near], HOME)

    assert [(v.pharmacy_id, v.quantity) for v in views] == [("near", 2), ("far", 1)]


def test_catalogue_key_ignores_case_and_spacing() -> None:
    assert domain.catalogue_key(" Amoxicillin ", "500 MG", "Capsule") == domain.catalogue_key(
        "amoxicillin", "500 mg", "capsule"
    )
