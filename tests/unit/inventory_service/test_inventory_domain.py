"""Stock rules in inventory_service/domain.py: which pharmacy serves an order, what it costs, why a line
is short, and how holding, releasing, selling and taking back move stock without creating or losing any."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from contracts.commands import OrderQuote
from contracts.events import (
    LineShortage,
    Location,
    PrescribedLine,
    ReservationDeadline,
    ReservationExpired,
    ReservedLine,
)
from inventory_service import domain
from inventory_service.domain import Fees, Medication, Pharmacy, Plan, Reservation, ReservationState

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
# The patient's delivery address, in Berlin Mitte; 0.01 degree of latitude is about 1.1 km.
HOME = Location(latitude=52.52, longitude=13.405)
MUNICH = Location(latitude=48.1351, longitude=11.5820)
RADIUS_KM = 50
# Where a test is not about fees: an order costs its lines.
NO_FEES = Fees(service_cents=0, delivery_base_cents=0, delivery_per_km_cents=0)
FEES = Fees(service_cents=199, delivery_base_cents=299, delivery_per_km_cents=50)


def at(km_north: float) -> Location:
    return Location(latitude=HOME.latitude + km_north / 111.2, longitude=HOME.longitude)


def pharmacy(pharmacy_id: str, where: Location, **stock: int) -> Pharmacy:
    p = Pharmacy(id=pharmacy_id, name=pharmacy_id, address="Hauptstr. 1", location=where, created_at=NOW)
    for medication_id, quantity in stock.items():
        p.set_available(medication_id, quantity)
    return p


def medication(
    medication_id: str, price_cents: int, *, discontinued: bool = False, prescription_only: bool = False
) -> Medication:
    # Over the counter unless a test is about prescriptions: planning stock is the same for both.
    return Medication(
        id=medication_id,
        name=medication_id,
        strength="400 mg",
        form="tablet",
        price_cents=price_cents,
        prescription_only=prescription_only,
        discontinued=discontinued,
        catalogue_key=medication_id,
        created_at=NOW,
    )


CATALOGUE = {
    "ibuprofen": medication("ibuprofen", 420),
    "amoxicillin": medication("amoxicillin", 199),
    "withdrawn-drug": medication("withdrawn-drug", 100, discontinued=True),
}


def line(medication_id: str, quantity: int) -> PrescribedLine:
    return PrescribedLine(medication_id=medication_id, quantity=quantity)


def plan(
    lines: list[PrescribedLine], pharmacies: list[Pharmacy], *, exclude: frozenset[str] = frozenset()
) -> Plan | list[LineShortage]:
    return domain.plan_reservation(
        lines, HOME, pharmacies, CATALOGUE, radius_km=RADIUS_KM, fees=NO_FEES, exclude=exclude
    )


def chosen(outcome: Plan | list[LineShortage]) -> str:
    assert isinstance(outcome, Plan), f"expected a plan, got shortages {outcome}"
    return outcome.pharmacy.id


def shortages(outcome: Plan | list[LineShortage]) -> list[LineShortage]:
    assert isinstance(outcome, list), f"expected shortages, got a plan at {outcome.pharmacy.id}"
    return outcome


# --- choosing the pharmacy --------------------------------------------------------------------------


def test_the_nearest_pharmacy_with_every_line_serves_the_order_at_catalogue_prices() -> None:
    far = pharmacy("far", at(20), ibuprofen=10, amoxicillin=10)
    near = pharmacy("near", at(2), ibuprofen=10, amoxicillin=10)
    middle = pharmacy("middle", at(8), ibuprofen=10, amoxicillin=10)

    outcome = plan([line("ibuprofen", 2), line("amoxicillin", 1)], [far, middle, near])

    assert chosen(outcome) == "near"
    assert isinstance(outcome, Plan)
    assert outcome.lines == [
        ReservedLine(medication_id="ibuprofen", quantity=2, unit_price_cents=420),
        ReservedLine(medication_id="amoxicillin", quantity=1, unit_price_cents=199),
    ]
    assert outcome.total_cents == 2 * 420 + 199


def test_a_nearer_pharmacy_missing_one_line_is_skipped() -> None:
    near = pharmacy("near", at(1), ibuprofen=10)
    farther = pharmacy("farther", at(10), ibuprofen=10, amoxicillin=1)

    assert chosen(plan([line("ibuprofen", 1), line("amoxicillin", 1)], [near, farther])) == "farther"


def test_a_nearer_pharmacy_with_too_few_of_one_line_is_skipped() -> None:
    near = pharmacy("near", at(1), ibuprofen=10, amoxicillin=1)
    farther = pharmacy("farther", at(10), ibuprofen=10, amoxicillin=3)

    assert chosen(plan([line("ibuprofen", 1), line("amoxicillin", 3)], [near, farther])) == "farther"


def test_a_pharmacy_beyond_the_radius_is_never_chosen() -> None:
    munich = pharmacy("munich", MUNICH, ibuprofen=100)

    assert shortages(plan([line("ibuprofen", 1)], [munich])) == [
        LineShortage(
            medication_id="ibuprofen",
            requested=1,
            best_available=0,
            reason="no pharmacy within 50 km has it in stock",
        )
    ]
    wider = domain.plan_reservation(
        [line("ibuprofen", 1)], HOME, [munich], CATALOGUE, radius_km=600, fees=NO_FEES
    )
    assert chosen(wider) == "munich"


def test_two_pharmacies_equally_near_are_chosen_between_by_id_so_the_choice_is_stable() -> None:
    b = pharmacy("b", at(3), ibuprofen=5)
    a = pharmacy("a", at(3), ibuprofen=5)

    assert chosen(plan([line("ibuprofen", 1)], [b, a])) == "a"
    assert chosen(plan([line("ibuprofen", 1)], [a, b])) == "a"


def test_excluded_pharmacies_are_passed_over() -> None:
    near = pharmacy("near", at(1), ibuprofen=5)
    next_nearest = pharmacy("next", at(5), ibuprofen=5)
    farthest = pharmacy("farthest", at(9), ibuprofen=5)
    everyone = [near, next_nearest, farthest]

    assert chosen(plan([line("ibuprofen", 1)], everyone, exclude=frozenset({"near"}))) == "next"
    assert chosen(plan([line("ibuprofen", 1)], everyone, exclude=frozenset({"near", "next"}))) == "farthest"
    assert shortages(plan([line("ibuprofen", 1)], everyone, exclude=frozenset({"near", "next", "farthest"})))


def test_planning_holds_nothing() -> None:
    near = pharmacy("near", at(1), ibuprofen=5)

    plan([line("ibuprofen", 5)], [near])

    assert (near.available("ibuprofen"), near.holds) == (5, {})


# --- what an order costs -----------------------------------------------------------------------------


def test_an_order_costs_its_lines_a_service_fee_and_delivery_by_the_started_km() -> None:
    shop = pharmacy("shop", at(2.3), ibuprofen=10)

    outcome = domain.plan_reservation(
        [line("ibuprofen", 2)], HOME, [shop], CATALOGUE, radius_km=RADIUS_KM, fees=FEES
    )

    assert isinstance(outcome, Plan)
    assert (outcome.lines_cents, outcome.service_fee_cents, outcome.delivery_fee_cents) == (
        2 * 420,
        199,
        299 + 3 * 50,  # 2.3 km: three kilometres started
    )
    assert outcome.total_cents == 2 * 420 + 199 + 299 + 3 * 50


@pytest.mark.parametrize(
    ("km", "cents"),
    [(0, 299), (0.01, 349), (1.0, 349), (1.2, 399), (2.0000000001, 399), (12.5, 299 + 13 * 50)],
)
def test_delivery_costs_the_base_and_the_rate_for_every_started_km(km: float, cents: int) -> None:
    assert FEES.delivery_cents(km) == cents


def test_fees_never_change_which_pharmacy_serves_the_order() -> None:
    near = pharmacy("near", at(1), ibuprofen=5)
    far = pharmacy("far", at(30), ibuprofen=5)

    outcome = domain.plan_reservation(
        [line("ibuprofen", 1)], HOME, [far, near], CATALOGUE, radius_km=RADIUS_KM, fees=FEES
    )

    assert chosen(outcome) == "near"
    assert isinstance(outcome, Plan)
    assert outcome.delivery_fee_cents == 299 + 50


def test_a_plan_priced_again_from_its_hold_costs_what_it_first_cost() -> None:
    # After a crash, inventory finds the hold and prices it again: the patient's total must not move.
    shop = pharmacy("shop", at(4.5), ibuprofen=5, amoxicillin=5)
    first = domain.plan_reservation(
        [line("ibuprofen", 1), line("amoxicillin", 2)],
        HOME,
        [shop],
        CATALOGUE,
        radius_km=RADIUS_KM,
        fees=FEES,
    )
    assert isinstance(first, Plan)

    again = domain.priced_plan(shop, first.lines, HOME, FEES)

    assert again == first


# --- why a line is short ----------------------------------------------------------------------------


def test_unknown_and_discontinued_medications_are_named_before_any_stock_is_looked_at() -> None:
    well_stocked = pharmacy("p", at(1), ibuprofen=99, amoxicillin=99)

    outcome = plan(
        [line("no-such-drug", 1), line("withdrawn-drug", 2), line("ibuprofen", 1)],
        [well_stocked],
    )

    assert shortages(outcome) == [
        LineShortage(
            medication_id="no-such-drug", requested=1, best_available=0, reason="not in the catalogue"
        ),
        LineShortage(medication_id="withdrawn-drug", requested=2, best_available=0, reason="discontinued"),
    ]


def test_a_prescription_only_line_of_an_unverified_order_is_never_held() -> None:
    catalogue = {**CATALOGUE, "morphine": medication("morphine", 900, prescription_only=True)}
    shop = pharmacy("shop", at(1), ibuprofen=10, morphine=10)
    lines = [line("ibuprofen", 1), line("morphine", 2)]

    unverified = domain.plan_reservation(lines, HOME, [shop], catalogue, radius_km=RADIUS_KM, fees=NO_FEES)
    verified = domain.plan_reservation(
        lines, HOME, [shop], catalogue, radius_km=RADIUS_KM, fees=NO_FEES, verified=True
    )

    assert shortages(unverified) == [
        LineShortage(medication_id="morphine", requested=2, best_available=0, reason=domain.UNVERIFIED)
    ]
    assert chosen(verified) == "shop"


def test_the_catalogue_not_the_order_says_what_is_prescription_only() -> None:
    catalogue = {"morphine": medication("morphine", 900, prescription_only=True)}
    shop = pharmacy("shop", at(1), morphine=10)
    # An order that claims its line is over the counter is still refused without a pharmacist.
    claimed = PrescribedLine(medication_id="morphine", quantity=1, prescription_only=False)

    outcome = domain.plan_reservation([claimed], HOME, [shop], catalogue, radius_km=RADIUS_KM, fees=NO_FEES)

    assert [s.reason for s in shortages(outcome)] == [domain.UNVERIFIED]


def test_a_line_nowhere_in_stock_within_the_radius_says_so() -> None:
    empty = pharmacy("empty", at(1), ibuprofen=0)

    assert shortages(plan([line("ibuprofen", 1)], [empty])) == [
        LineShortage(
            medication_id="ibuprofen",
            requested=1,
            best_available=0,
            reason="no pharmacy within 50 km has it in stock",
        )
    ]


def test_a_short_line_says_how_many_the_best_pharmacy_within_the_radius_has() -> None:
    pharmacies = [
        pharmacy("two", at(1), ibuprofen=2),
        pharmacy("four", at(5), ibuprofen=4),
        pharmacy("munich", MUNICH, ibuprofen=100),  # out of reach: does not count as "best"
    ]

    assert shortages(plan([line("ibuprofen", 6)], pharmacies)) == [
        LineShortage(
            medication_id="ibuprofen",
            requested=6,
            best_available=4,
            reason="at most 4 available at one pharmacy within 50 km",
        )
    ]


def test_only_the_short_lines_are_reported() -> None:
    p = pharmacy("p", at(1), ibuprofen=10, amoxicillin=1)

    outcome = shortages(plan([line("ibuprofen", 2), line("amoxicillin", 5)], [p]))

    assert [(s.medication_id, s.requested, s.best_available) for s in outcome] == [("amoxicillin", 5, 1)]


def test_every_line_in_stock_somewhere_but_no_pharmacy_with_all_of_them_is_a_shortage() -> None:
    only_ibuprofen = pharmacy("p1", at(1), ibuprofen=5)
    only_amoxicillin = pharmacy("p2", at(2), amoxicillin=5)

    outcome = shortages(
        plan([line("ibuprofen", 1), line("amoxicillin", 1)], [only_ibuprofen, only_amoxicillin])
    )

    assert len(outcome) == 1
    assert outcome[0].reason == "no single pharmacy within 50 km has every line of the prescription"


# --- one medication on two lines -----------------------------------------------------------------


def test_lines_for_the_same_medication_are_merged() -> None:
    assert domain.merge_lines([line("ibuprofen", 2), line("amoxicillin", 1), line("ibuprofen", 3)]) == {
        "ibuprofen": 5,
        "amoxicillin": 1,
    }


def test_a_pharmacy_must_have_the_merged_quantity_not_just_each_line() -> None:
    enough_per_line = pharmacy("near", at(1), ibuprofen=3)
    enough_in_total = pharmacy("far", at(9), ibuprofen=4)

    outcome = plan([line("ibuprofen", 2), line("ibuprofen", 2)], [enough_per_line, enough_in_total])

    assert chosen(outcome) == "far"
    assert isinstance(outcome, Plan)
    assert outcome.lines == [ReservedLine(medication_id="ibuprofen", quantity=4, unit_price_cents=420)]


def test_a_shortage_reports_the_merged_quantity() -> None:
    outcome = shortages(
        plan([line("ibuprofen", 2), line("ibuprofen", 2)], [pharmacy("p", at(1), ibuprofen=3)])
    )

    assert [(s.requested, s.best_available) for s in outcome] == [(4, 3)]


# --- moving stock ------------------------------------------------------------------------------------


def levels(p: Pharmacy, medication_id: str) -> tuple[int, int, int]:
    level = p.stock[medication_id]
    return level.available, level.reserved, level.sold


def on_hand(p: Pharmacy, medication_id: str) -> int:
    """Every unit the pharmacy ever had of it: for sale, held, sold, or come back."""
    return sum(levels(p, medication_id)) + p.stock[medication_id].returned


def reserved_lines(**quantities: int) -> list[ReservedLine]:
    return [ReservedLine(medication_id=m, quantity=q, unit_price_cents=100) for m, q in quantities.items()]


def test_holding_moves_every_line_from_available_to_reserved() -> None:
    p = pharmacy("p", at(1), ibuprofen=10, amoxicillin=4)

    p.hold("order-1", reserved_lines(ibuprofen=3, amoxicillin=4), NOW)

    assert levels(p, "ibuprofen") == (7, 3, 0)
    assert levels(p, "amoxicillin") == (0, 4, 0)
    assert p.holds["order-1"].held_at == NOW


def test_holding_twice_for_one_order_holds_once() -> None:
    p = pharmacy("p", at(1), ibuprofen=10)

    p.hold("order-1", reserved_lines(ibuprofen=3), NOW)
    p.hold("order-1", reserved_lines(ibuprofen=3), NOW)
    p.hold("order-1", reserved_lines(ibuprofen=5), NOW)  # a retry never grows the hold either

    assert levels(p, "ibuprofen") == (7, 3, 0)


def test_holding_more_than_available_raises_out_of_stock_and_touches_nothing() -> None:
    p = pharmacy("p", at(1), ibuprofen=10, amoxicillin=1)

    # The first line fits; the second does not: neither may be held.
    with pytest.raises(domain.OutOfStock, match="amoxicillin"):
        p.hold("order-1", reserved_lines(ibuprofen=3, amoxicillin=2), NOW)

    assert levels(p, "ibuprofen") == (10, 0, 0)
    assert levels(p, "amoxicillin") == (1, 0, 0)
    assert p.holds == {}


def test_holding_a_medication_the_pharmacy_never_stocked_is_out_of_stock() -> None:
    p = pharmacy("p", at(1), ibuprofen=10)

    with pytest.raises(domain.OutOfStock):
        p.hold("order-1", reserved_lines(amoxicillin=1), NOW)

    assert p.holds == {}


def test_release_gives_back_only_that_orders_stock_and_twice_is_once() -> None:
    p = pharmacy("p", at(1), ibuprofen=10)
    p.hold("order-1", reserved_lines(ibuprofen=3), NOW)
    p.hold("order-2", reserved_lines(ibuprofen=2), NOW)

    p.release("order-1")
    p.release("order-1")

    assert levels(p, "ibuprofen") == (8, 2, 0)
    assert set(p.holds) == {"order-2"}


def test_releasing_an_order_that_holds_nothing_changes_nothing() -> None:
    p = pharmacy("p", at(1), ibuprofen=10)

    p.release("never-held")

    assert levels(p, "ibuprofen") == (10, 0, 0)


def test_selling_turns_held_stock_into_sold_and_twice_is_once() -> None:
    p = pharmacy("p", at(1), ibuprofen=10)
    p.hold("order-1", reserved_lines(ibuprofen=3), NOW)

    p.sell("order-1")
    p.sell("order-1")

    assert levels(p, "ibuprofen") == (7, 0, 3)
    assert p.holds == {}


def test_a_sold_order_can_no_longer_be_released() -> None:
    p = pharmacy("p", at(1), ibuprofen=10)
    p.hold("order-1", reserved_lines(ibuprofen=3), NOW)
    p.sell("order-1")

    p.release("order-1")

    assert levels(p, "ibuprofen") == (7, 0, 3)


def test_take_back_returns_sold_stock_to_the_shelf_once() -> None:
    p = pharmacy("p", at(1), ibuprofen=10)
    p.hold("order-1", reserved_lines(ibuprofen=3), NOW)
    p.sell("order-1")

    p.take_back("order-1", reserved_lines(ibuprofen=3))
    p.take_back("order-1", reserved_lines(ibuprofen=3))

    assert levels(p, "ibuprofen") == (10, 0, 0)


def hold_then(*steps: Callable[[Pharmacy], None]) -> Pharmacy:
    p = pharmacy("p", at(1), ibuprofen=10)
    p.hold("order-1", reserved_lines(ibuprofen=4), NOW)
    for step in steps:
        step(p)
    return p


@pytest.mark.parametrize(
    "steps",
    [
        (),
        (lambda p: p.release("order-1"),),
        (lambda p: p.sell("order-1"),),
        (lambda p: p.sell("order-1"), lambda p: p.release("order-1")),
        (lambda p: p.release("order-1"), lambda p: p.sell("order-1")),
        (lambda p: p.sell("order-1"), lambda p: p.take_back("order-1", reserved_lines(ibuprofen=4))),
        (lambda p: p.hold("order-2", reserved_lines(ibuprofen=6), NOW), lambda p: p.sell("order-2")),
        (lambda p: p.sell("order-1"), lambda p: p.take_in_return("order-1", reserved_lines(ibuprofen=4))),
        (
            lambda p: p.sell("order-1"),
            lambda p: p.take_in_return("order-1", reserved_lines(ibuprofen=4)),
            lambda p: p.take_back("order-1", reserved_lines(ibuprofen=4)),
        ),
    ],
    ids=[
        "held",
        "released",
        "sold",
        "sold-then-released",
        "released-then-sold",
        "taken-back",
        "second-order",
        "returned",
        "returned-then-taken-back",
    ],
)
def test_stock_moves_never_create_or_lose_units(steps: tuple[Callable[[Pharmacy], None], ...]) -> None:
    p = hold_then(*steps)

    assert on_hand(p, "ibuprofen") == 10
    assert min(levels(p, "ibuprofen")) >= 0
    assert p.stock["ibuprofen"].returned >= 0


# --- a hold that is not paid for in time expires ----------------------------------------------------

HOLD = timedelta(minutes=15)


def reservation(state: ReservationState) -> Reservation:
    return Reservation(
        id="order-1",
        state=state,
        pharmacy_id="p",
        lines=reserved_lines(ibuprofen=4),
        total_cents=400,
        created_at=NOW,
    )


def test_a_reservation_is_given_a_deadline_one_hold_after_it_is_made() -> None:
    deadline = reservation("RESERVED").deadline(HOLD, NOW)

    assert deadline == ReservationDeadline(
        reservation_id="order-1", order_id="order-1", pharmacy_id="p", fires_at=NOW + HOLD
    )


def test_an_unpaid_reservation_expires_once_and_says_why() -> None:
    r = reservation("RESERVED")

    first = r.expire("payment not received within 15 minutes")
    again = r.expire("payment not received within 15 minutes")

    assert first == [
        ReservationExpired(
            reservation_id="order-1",
            order_id="order-1",
            pharmacy_id="p",
            reason="payment not received within 15 minutes",
        )
    ]
    assert again == []
    assert r.state == "EXPIRED"


@pytest.mark.parametrize(
    "state", ["RESERVING", "FAILED", "PAID", "DISPENSED", "SOLD", "RELEASED", "RETURNED", "EXPIRED"]
)
def test_a_deadline_for_a_reservation_no_longer_waiting_for_payment_changes_nothing(
    state: ReservationState,
) -> None:
    r = reservation(state)

    assert r.expire("payment not received within 15 minutes") == []
    assert r.state == state


@pytest.mark.parametrize(
    ("hold", "reason"),
    [
        (timedelta(minutes=15), "payment not received within 15 minutes"),
        (timedelta(hours=1), "payment not received within 1 hour"),
        (timedelta(hours=2), "payment not received within 2 hours"),
        (timedelta(seconds=90), "payment not received within 90 seconds"),
        (timedelta(seconds=1), "payment not received within 1 second"),
        (timedelta(seconds=0.5), "payment not received within 0.5 seconds"),
    ],
)
def test_the_reason_names_the_hold_in_the_patients_words(hold: timedelta, reason: str) -> None:
    assert domain.unpaid_reason(hold) == reason


def test_an_expired_hold_goes_back_to_the_shelf_and_a_late_sale_sells_nothing() -> None:
    # What inventory does on the deadline (release), then on a payment that arrives after it (sell).
    p = pharmacy("p", at(1), ibuprofen=10)
    p.hold("order-1", reserved_lines(ibuprofen=4), NOW)

    p.release("order-1")
    p.sell("order-1")

    assert levels(p, "ibuprofen") == (10, 0, 0)


# --- distances and availability ---------------------------------------------------------------------


def test_berlin_to_munich_is_about_504_km() -> None:
    assert domain.distance_km(HOME, MUNICH) == pytest.approx(504, abs=5)


def test_distance_is_symmetric_and_zero_to_the_same_place() -> None:
    assert domain.distance_km(HOME, HOME) == 0
    assert domain.distance_km(HOME, MUNICH) == pytest.approx(domain.distance_km(MUNICH, HOME))
    assert domain.distance_km(HOME, at(10)) == pytest.approx(10, rel=0.01)


def test_availability_lists_pharmacies_with_stock_nearest_first() -> None:
    far = pharmacy("far", at(20), ibuprofen=1)
    empty = pharmacy("empty", at(0.5), ibuprofen=0)
    never_stocked = pharmacy("never", at(0.2))
    near = pharmacy("near", at(2), ibuprofen=7)

    views = domain.availability("ibuprofen", [far, empty, never_stocked, near], HOME)

    assert [(v.pharmacy_id, v.quantity) for v in views] == [("near", 7), ("far", 1)]
    assert [v.distance_km for v in views] == [pytest.approx(2, rel=0.01), pytest.approx(20, rel=0.01)]


def test_availability_counts_only_stock_on_the_shelf_not_held_stock() -> None:
    p = pharmacy("p", at(1), ibuprofen=3)
    p.hold("order-1", reserved_lines(ibuprofen=3), NOW)

    assert domain.availability("ibuprofen", [p], HOME) == []


def test_availability_without_a_location_is_by_name_and_gives_no_distance() -> None:
    views = domain.availability(
        "ibuprofen", [pharmacy("zeta", at(1), ibuprofen=1), pharmacy("alpha", at(30), ibuprofen=1)], None
    )

    assert [(v.pharmacy_name, v.distance_km) for v in views] == [("alpha", None), ("zeta", None)]


def test_a_shortage_at_excluded_pharmacies_is_not_blamed_on_a_split_prescription() -> None:
    # A pharmacy is excluded after its hold failed: it can serve nothing, so it counts for nothing.
    near = pharmacy("near", HOME, a=5)
    outcome = domain.plan_reservation(
        [PrescribedLine(medication_id="a", quantity=1)],
        HOME,
        [near],
        {"a": medication("a", 100)},
        radius_km=RADIUS_KM,
        fees=NO_FEES,
        exclude=frozenset({"near"}),
    )
    assert isinstance(outcome, list)
    assert [(s.best_available, s.reason) for s in outcome] == [
        (0, "no pharmacy within 50 km has it in stock")
    ]


def test_holding_two_lines_of_one_medication_never_overdraws() -> None:
    p = pharmacy("p", HOME, a=5)
    with pytest.raises(domain.OutOfStock):
        p.hold("o", [ReservedLine(medication_id="a", quantity=3, unit_price_cents=1)] * 2, NOW)
    assert p.stock["a"].available == 5


# --- the quote an upload answers with ---------------------------------------------------------------


def quote(lines: list[PrescribedLine], pharmacies: list[Pharmacy]) -> OrderQuote:
    catalogue = {**CATALOGUE, "warfarin": medication("warfarin", 650, prescription_only=True)}
    return domain.quote(lines, HOME, pharmacies, catalogue, radius_km=RADIUS_KM, fees=FEES)


def test_a_quote_is_the_plan_a_reservation_would_make_now_with_both_fees() -> None:
    near = pharmacy("near", at(2.3), ibuprofen=10, warfarin=10)
    far = pharmacy("far", at(9), ibuprofen=10, warfarin=10)

    # A prescription-only line is priced too: the pharmacist's check comes after the price.
    quoted = quote([line("ibuprofen", 1), line("warfarin", 2), line("ibuprofen", 1)], [far, near])

    assert (quoted.pharmacy_id, quoted.distance_km, quoted.shortages) == ("near", 2.3, ())
    assert quoted.lines == (
        ReservedLine(medication_id="ibuprofen", quantity=2, unit_price_cents=420),
        ReservedLine(medication_id="warfarin", quantity=2, unit_price_cents=650),
    )
    assert (quoted.service_fee_cents, quoted.delivery_fee_cents) == (199, 299 + 3 * 50)
    assert quoted.total_cents == 2 * 420 + 2 * 650 + 199 + 299 + 3 * 50
    assert [m.id for m in quoted.medications] == ["ibuprofen", "warfarin"]
    assert (near.available("ibuprofen"), near.holds) == (10, {})


def test_a_quote_no_pharmacy_can_serve_has_the_catalogue_prices_and_says_why() -> None:
    near = pharmacy("near", at(1), ibuprofen=1)

    quoted = quote([line("ibuprofen", 3), line("amoxicillin", 1)], [near])

    assert (quoted.pharmacy_id, quoted.delivery_fee_cents, quoted.total_cents) == (None, None, None)
    assert quoted.lines == (
        ReservedLine(medication_id="ibuprofen", quantity=3, unit_price_cents=420),
        ReservedLine(medication_id="amoxicillin", quantity=1, unit_price_cents=199),
    )
    assert quoted.service_fee_cents == 199
    assert [(s.medication_id, s.best_available) for s in quoted.shortages] == [
        ("ibuprofen", 1),
        ("amoxicillin", 0),
    ]


def test_a_quote_leaves_out_what_the_catalogue_does_not_sell() -> None:
    near = pharmacy("near", at(1), ibuprofen=5)

    quoted = quote([line("ibuprofen", 1), line("withdrawn-drug", 1), line("no-such-drug", 1)], [near])

    assert [m.id for m in quoted.medications] == ["ibuprofen"]
    assert [line.medication_id for line in quoted.lines] == ["ibuprofen"]
    assert {s.medication_id: s.reason for s in quoted.shortages} == {
        "withdrawn-drug": "discontinued",
        "no-such-drug": "not in the catalogue",
    }
