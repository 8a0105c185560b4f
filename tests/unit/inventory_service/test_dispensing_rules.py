"""After payment (inventory_service/domain.py): an authorised order keeps its hold until its pharmacy
dispenses it; dispensed stock that comes back is counted as returned, never sold again; an order's end
gives back what it had by how far it got. Each move happens once however often it is asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.commands import DispensingView
from contracts.events import Location, OrderDispensed, ReservedLine
from inventory_service import domain
from inventory_service.domain import NotDispensable, NotOnStaff, Pharmacy, Reservation, ReservationState

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
PAID_AT = NOW - timedelta(minutes=5)
HERE = Location(latitude=52.52, longitude=13.405)
LINES = [ReservedLine(medication_id="ibuprofen", quantity=4, unit_price_cents=420)]


def pharmacy(*staff: str) -> Pharmacy:
    p = Pharmacy(id="mitte", name="Mitte", address="Hauptstr. 1", location=HERE, created_at=NOW)
    p.staff = list(staff)
    p.set_available("ibuprofen", 10)
    return p


def held(*staff: str) -> Pharmacy:
    """A pharmacy holding four units for order-1."""
    p = pharmacy(*staff)
    p.hold("order-1", LINES, NOW)
    return p


def levels(p: Pharmacy) -> tuple[int, int, int, int]:
    level = p.stock["ibuprofen"]
    return level.available, level.reserved, level.sold, level.returned


def reservation(state: ReservationState, **fields: object) -> Reservation:
    values: dict[str, object] = {
        "id": "order-1",
        "state": state,
        "pharmacy_id": "mitte",
        "lines": LINES,
        "total_cents": 4 * 420 + 199 + 349,
        "service_fee_cents": 199,
        "delivery_fee_cents": 349,
        "verified_by": "vera",
        "created_at": NOW,
    }
    values.update(fields)
    return Reservation.model_validate(values)


def paid() -> Reservation:
    r = reservation("RESERVED")
    r.pay(PAID_AT)
    return r


# --- paid is not sold ----------------------------------------------------------------------------------


def test_an_authorised_payment_makes_the_reservation_paid_and_sells_nothing() -> None:
    r = reservation("RESERVED")

    r.pay(PAID_AT)

    assert (r.state, r.paid_at) == ("PAID", PAID_AT)


def test_a_second_payment_keeps_the_first_ones_time() -> None:
    r = paid()

    r.pay(NOW)

    assert (r.state, r.paid_at) == ("PAID", PAID_AT)


@pytest.mark.parametrize("state", ["RESERVING", "FAILED", "RELEASED", "EXPIRED", "DISPENSED", "RETURNED"])
def test_a_payment_for_a_reservation_not_waiting_for_one_changes_nothing(state: ReservationState) -> None:
    r = reservation(state)

    r.pay(PAID_AT)

    assert (r.state, r.paid_at) == (state, None)


def test_the_deadline_never_expires_a_paid_reservation() -> None:
    r = paid()

    assert r.expire("payment not received within 15 minutes") == []
    assert r.state == "PAID"


# --- dispensing -----------------------------------------------------------------------------------------


def test_dispensing_a_paid_order_marks_who_and_when_and_announces_it_once() -> None:
    r = paid()

    first = r.dispense("anna", NOW, HERE)
    again = r.dispense("anna", NOW + timedelta(seconds=3), HERE)

    assert first == [
        OrderDispensed(
            order_id="order-1",
            pharmacy_id="mitte",
            pharmacist_id="anna",
            lines=tuple(LINES),
            pharmacy_location=HERE,
        )
    ]
    assert again == []
    assert (r.state, r.dispensed_by, r.dispensed_at) == ("DISPENSED", "anna", NOW)


def test_another_pharmacist_cannot_dispense_an_order_dispensed_already() -> None:
    r = paid()
    r.dispense("anna", NOW, HERE)

    with pytest.raises(NotDispensable, match="dispensed already, by anna"):
        r.dispense("bruno", NOW, HERE)
    assert (r.state, r.dispensed_by) == ("DISPENSED", "anna")


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ("RESERVED", "is not paid for yet"),
        ("RESERVING", "is not paid for yet"),
        ("RELEASED", "cannot be dispensed"),
        ("EXPIRED", "cannot be dispensed"),
        ("RETURNED", "cannot be dispensed"),
        ("FAILED", "cannot be dispensed"),
    ],
)
def test_only_a_paid_order_is_dispensed(state: ReservationState, why: str) -> None:
    r = reservation(state)

    with pytest.raises(NotDispensable, match=why):
        r.dispense("anna", NOW, HERE)
    assert (r.state, r.dispensed_by) == (state, None)


def test_an_order_sold_at_payment_before_authorisations_is_dispensed_and_sells_nothing_again() -> None:
    # Confirmed before this change: charged in full, its stock sold at once (no hold left).
    r = reservation("SOLD")
    p = held("anna")
    p.sell("order-1")
    before = levels(p)

    events = r.dispense("anna", NOW, HERE)
    p.dispense("order-1", actor_id="anna", actor_is_admin=False)

    assert r.state == "DISPENSED"
    assert [type(e) for e in events] == [OrderDispensed]
    assert levels(p) == before


def test_its_pharmacist_dispensing_sells_the_held_stock_once() -> None:
    p = held("anna")

    p.dispense("order-1", actor_id="anna", actor_is_admin=False)
    p.dispense("order-1", actor_id="anna", actor_is_admin=False)

    assert levels(p) == (6, 0, 4, 0)
    assert p.holds == {}


def test_an_admin_dispenses_at_any_pharmacy() -> None:
    p = held("anna")

    p.dispense("order-1", actor_id="root", actor_is_admin=True)

    assert levels(p) == (6, 0, 4, 0)


def test_a_pharmacist_of_another_pharmacy_cannot_dispense_and_moves_nothing() -> None:
    p = held("anna")

    with pytest.raises(NotOnStaff, match="only the staff of pharmacy mitte or an admin may dispense"):
        p.dispense("order-1", actor_id="bruno", actor_is_admin=False)
    assert levels(p) == (6, 4, 0, 0)
    assert list(p.holds) == ["order-1"]


def test_the_queue_shows_what_the_pharmacist_checks_and_who_verified_it() -> None:
    assert paid().queue_view() == DispensingView(
        order_id="order-1",
        pharmacy_id="mitte",
        lines=tuple(LINES),
        total_cents=4 * 420 + 199 + 349,
        paid_at=PAID_AT,
        verified_by="vera",
    )


# --- an order's end, by how far it got -------------------------------------------------------------------


def ended(state: ReservationState, p: Pharmacy) -> Reservation:
    """What a cancel does: the stock by the reservation as it was, then the reservation."""
    r = reservation(state)
    domain.give_back(p, r)
    r.end("cancelled by the customer", NOW)
    return r


def test_a_cancelled_paid_order_puts_its_hold_back_on_the_shelf() -> None:
    p = held("anna")

    r = ended("PAID", p)

    assert r.state == "RELEASED"
    assert levels(p) == (10, 0, 0, 0)


def test_a_cancelled_dispensed_order_is_returned_never_back_on_the_shelf() -> None:
    p = held("anna")
    p.dispense("order-1", actor_id="anna", actor_is_admin=False)

    r = ended("DISPENSED", p)

    assert (r.state, r.return_reason, r.returned_at) == ("RETURNED", "cancelled by the customer", NOW)
    assert levels(p) == (6, 0, 0, 4)
    assert p.returns == ["order-1"]


def test_a_cancelled_legacy_sale_goes_back_on_the_shelf_as_before() -> None:
    p = held("anna")
    p.sell("order-1")  # paid and sold at once, before authorisations

    r = ended("SOLD", p)

    assert r.state == "RETURNED"
    assert levels(p) == (10, 0, 0, 0)


@pytest.mark.parametrize("state", ["PAID", "DISPENSED", "SOLD"])
def test_an_order_ended_twice_moves_its_stock_once(state: ReservationState) -> None:
    p = held("anna")
    if state != "PAID":
        p.sell("order-1")
    before = reservation(state)

    # A redelivered cancel after a crash between the two writes finds the reservation as it was.
    domain.give_back(p, before)
    domain.give_back(p, before)
    after = ended(state, p)
    domain.give_back(p, after)

    assert sum(levels(p)) == 10
    assert levels(p) == {"PAID": (10, 0, 0, 0), "DISPENSED": (6, 0, 0, 4), "SOLD": (10, 0, 0, 0)}[state]


@pytest.mark.parametrize("state", ["RELEASED", "RETURNED", "EXPIRED", "FAILED"])
def test_an_order_ended_already_stays_as_it_is(state: ReservationState) -> None:
    r = reservation(state)

    r.end("cancelled by the customer", NOW)

    assert (r.state, r.return_reason) == (state, None)


# --- a delivery that comes back ----------------------------------------------------------------------------


def test_a_returned_delivery_counts_its_stock_as_returned_with_the_reason_once() -> None:
    p = held("anna")
    p.dispense("order-1", actor_id="anna", actor_is_admin=False)
    r = reservation("DISPENSED")

    p.take_in_return("order-1", r.lines)
    r.bring_back("no one home after 3 attempts", NOW)
    p.take_in_return("order-1", r.lines)
    r.bring_back("another reason", NOW + timedelta(hours=1))

    assert (r.state, r.return_reason, r.returned_at) == ("RETURNED", "no one home after 3 attempts", NOW)
    assert levels(p) == (6, 0, 0, 4)
    assert p.stock_view("ibuprofen").returned == 4


@pytest.mark.parametrize("state", ["RESERVED", "PAID", "RELEASED", "EXPIRED"])
def test_a_delivery_of_an_order_never_dispensed_brings_nothing_back(state: ReservationState) -> None:
    r = reservation(state)

    r.bring_back("no one home", NOW)

    assert (r.state, r.return_reason) == (state, None)


def test_returned_stock_is_never_offered_for_sale() -> None:
    p = held("anna")
    p.dispense("order-1", actor_id="anna", actor_is_admin=False)
    p.take_in_return("order-1", LINES)

    view = p.stock_view("ibuprofen")

    assert (view.quantity, view.reserved, view.sold, view.returned) == (6, 0, 0, 4)
    assert [a.quantity for a in domain.availability("ibuprofen", [p], HERE)] == [6]
