"""The last mile's rules in delivery_service/domain.py. Pure: the time is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from contracts.events import (
    CourierFree,
    DeliveryAssigned,
    DeliveryAttemptFailed,
    DeliveryCompleted,
    DeliveryPickedUp,
    DeliveryReturned,
    DeliveryUnassigned,
    DeliveryWindow,
    Location,
    OrderReadyForPickup,
)
from delivery_service import domain
from delivery_service.domain import Courier, Delivery, PinKey, Rules

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RULES = Rules()
PINS = PinKey(b"a test key of more than thirty-two bytes")
PHARMACY = Location(latitude=52.3700, longitude=4.8900)
# About 1.1 km north of the pharmacy.
PATIENT = Location(latitude=52.3800, longitude=4.8900)
WINDOW = DeliveryWindow(start=NOW + timedelta(hours=3), end=NOW + timedelta(hours=5))


def north_of_pharmacy(km: float) -> Location:
    return Location(latitude=PHARMACY.latitude + km / 111.195, longitude=PHARMACY.longitude)


def ready(**changes: object) -> OrderReadyForPickup:
    values: dict[str, object] = {
        "order_id": str(uuid4()),
        "patient_id": "patient-1",
        "pharmacy_id": "pharmacy-1",
        "pharmacy_location": PHARMACY,
        "delivery_location": PATIENT,
        "total_cents": 2_500,
        "controlled": False,
    }
    return OrderReadyForPickup.model_validate(values | changes)


def waiting(**changes: object) -> Delivery:
    return domain.open_delivery(ready(**changes), PINS, RULES, NOW)


def courier(
    courier_id: str = "courier-1",
    *,
    at: Location = PHARMACY,
    available: bool = True,
    free_since: datetime = NOW,
    delivery_id: str | None = None,
) -> Courier:
    c = domain.new_courier(courier_id, available, at, free_since)
    c.delivery_id = delivery_id
    return c


def assigned(**changes: object) -> Delivery:
    delivery = waiting(**changes)
    domain.assign(delivery, courier(delivery_id=delivery.id), RULES, NOW)
    return delivery


def out_for_delivery(**changes: object) -> Delivery:
    delivery = assigned(**changes)
    domain.pick_up(delivery, "courier-1", RULES, NOW)
    return delivery


# --- proof and PIN ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total_cents", "controlled", "proof"),
    [
        (2_500, False, "NAME"),
        (10_000, False, "NAME"),  # at the threshold: a name will do
        (10_001, False, "PIN"),
        (500, True, "PIN"),
    ],
)
def test_a_controlled_drug_or_an_order_over_the_threshold_is_handed_over_on_a_pin(
    total_cents: int, controlled: bool, proof: str
) -> None:
    assert domain.proof_for(total_cents, controlled, RULES) == proof
    assert waiting(total_cents=total_cents, controlled=controlled).proof == proof


def test_the_threshold_is_a_setting() -> None:
    assert domain.proof_for(600, False, Rules(pin_over_cents=500)) == "PIN"


def test_the_pin_is_four_digits_derived_from_the_order_and_the_key_and_only_its_check_is_kept() -> None:
    delivery = waiting(controlled=True)
    pin = PINS.pin(delivery.order_id)

    assert len(pin) == 4
    assert pin.isdigit()
    assert PINS.pin(delivery.order_id) == pin  # recomputed, never stored
    # Nothing stored holds it (4 digits may turn up inside an id or a time by chance: whole values).
    assert pin not in {str(value) for value in delivery.model_dump().values()}
    assert delivery.pin_check is not None
    assert PINS.matches(delivery.order_id, pin, delivery.pin_check)
    assert PINS.matches(delivery.order_id, f" {pin} ", delivery.pin_check)
    wrong = f"{(int(pin) + 1) % 10_000:04d}"
    assert not PINS.matches(delivery.order_id, wrong, delivery.pin_check)
    # A check is bound to its order: the same PIN does not open another.
    assert not PINS.matches(str(uuid4()), pin, delivery.pin_check)


def test_pins_spread_over_all_four_digits_and_depend_on_the_key() -> None:
    orders = [str(uuid4()) for _ in range(2_000)]
    pins = [PINS.pin(order_id) for order_id in orders]
    other = PinKey(b"another key of more than thirty-two bytes")

    assert len(set(pins)) > 1_500
    assert any(pin.startswith("0") for pin in pins)  # kept as four digits
    assert sum(PINS.pin(o) == other.pin(o) for o in orders) < 20


def test_a_name_delivery_keeps_no_pin_check() -> None:
    assert waiting().pin_check is None


# --- choosing the courier ----------------------------------------------------------------------------


def test_the_nearest_idle_courier_within_reach_is_chosen() -> None:
    delivery = waiting()
    near = courier("courier-near", at=north_of_pharmacy(2))
    far = courier("courier-far", at=north_of_pharmacy(5))

    assert domain.choose_courier(delivery, [far, near], RULES) is near


def test_busy_and_unavailable_couriers_are_passed_over() -> None:
    delivery = waiting()
    busy = courier("courier-busy", at=PHARMACY, delivery_id="other-delivery")
    off = courier("courier-off", at=PHARMACY, available=False)
    free = courier("courier-free", at=north_of_pharmacy(10))

    assert domain.choose_courier(delivery, [busy, off, free], RULES) is free


def test_nobody_beyond_reach_of_the_pharmacy_is_chosen() -> None:
    delivery = waiting()
    beyond = courier("courier-beyond", at=north_of_pharmacy(15.5))

    assert domain.choose_courier(delivery, [beyond], RULES) is None
    assert domain.choose_courier(delivery, [beyond], Rules(reach_km=20)) is beyond
    assert domain.choose_courier(delivery, [], RULES) is None


def test_on_a_tie_the_courier_idle_longest_goes_then_the_lowest_id() -> None:
    delivery = waiting()
    at = north_of_pharmacy(3)
    fresh = courier("courier-a", at=at, free_since=NOW)
    waited = courier("courier-z", at=at, free_since=NOW - timedelta(minutes=30))
    twin = courier("courier-b", at=at, free_since=NOW - timedelta(minutes=30))

    assert domain.choose_courier(delivery, [fresh, waited], RULES) is waited
    assert domain.choose_courier(delivery, [fresh, waited, twin], RULES) is twin


def test_a_free_courier_takes_the_longest_waiting_delivery_within_reach() -> None:
    c = courier(at=PHARMACY)
    far_away = waiting(pharmacy_location=north_of_pharmacy(40))
    first = waiting()
    second = waiting()

    assert domain.first_within_reach(c, [far_away, first, second], RULES) is first
    assert domain.first_within_reach(c, [far_away], RULES) is None


# --- ETA ----------------------------------------------------------------------------------------------


def test_the_eta_at_assignment_is_courier_to_pharmacy_to_patient_plus_handling() -> None:
    delivery = waiting(delivery_location=north_of_pharmacy(10))
    c = courier(at=north_of_pharmacy(-10), delivery_id=delivery.id)

    [event] = domain.assign(delivery, c, RULES, NOW)

    # 20 km at 20 km/h, and 5 minutes at the counter.
    assert isinstance(event, DeliveryAssigned)
    assert abs(event.eta - (NOW + timedelta(minutes=65))) < timedelta(seconds=2)
    assert delivery.eta == event.eta


def test_the_eta_after_pickup_is_pharmacy_to_patient() -> None:
    delivery = assigned(delivery_location=north_of_pharmacy(5))

    [event] = domain.pick_up(delivery, "courier-1", RULES, NOW)

    assert isinstance(event, DeliveryPickedUp)
    assert abs(event.eta - (NOW + timedelta(minutes=15))) < timedelta(seconds=2)


def test_the_eta_is_never_before_the_window_the_patient_asked_for() -> None:
    window = DeliveryWindow(start=NOW + timedelta(hours=3), end=NOW + timedelta(hours=5))
    delivery = waiting(delivery_window=window)

    [event] = domain.assign(delivery, courier(delivery_id=delivery.id), RULES, NOW)

    assert isinstance(event, DeliveryAssigned)
    assert event.eta == window.start


# --- assignment ---------------------------------------------------------------------------------------


def test_a_waiting_delivery_is_assigned_to_its_claimed_courier_once() -> None:
    delivery = waiting(controlled=True)
    c = courier(delivery_id=delivery.id)

    [event] = domain.assign(delivery, c, RULES, NOW)

    assert isinstance(event, DeliveryAssigned)
    assert (event.courier_id, event.proof, delivery.status) == ("courier-1", "PIN", "ASSIGNED")
    assert domain.assign(delivery, c, RULES, NOW) == []  # again: done already


def test_a_delivery_assigned_to_another_or_cancelled_cannot_be_assigned() -> None:
    delivery = assigned()
    with pytest.raises(domain.DeliveryTaken):
        domain.assign(delivery, courier("courier-2"), RULES, NOW)
    cancelled = waiting()
    domain.cancel(cancelled, "changed my mind", NOW)
    with pytest.raises(domain.DeliveryTaken):
        domain.assign(cancelled, courier(), RULES, NOW)


def test_a_courier_is_claimed_only_while_idle() -> None:
    c = courier()
    domain.claim(c, "delivery-1")

    assert (c.delivery_id, c.idle) == ("delivery-1", False)
    assert domain.claim(c, "delivery-1") == []  # the same claim again
    with pytest.raises(domain.CourierNotFree):
        domain.claim(c, "delivery-2")
    with pytest.raises(domain.CourierNotFree):
        domain.claim(courier(available=False), "delivery-3")


def test_a_release_frees_the_courier_only_of_the_delivery_it_names() -> None:
    c = courier(delivery_id="delivery-1", free_since=NOW - timedelta(hours=1))
    domain.release(c, "delivery-2", NOW)
    kept = c.delivery_id
    assert kept == "delivery-1"

    domain.release(c, "delivery-1", NOW)

    assert (c.delivery_id, c.idle, c.free_since) == (None, True, NOW)


def test_a_claim_on_a_waiting_delivery_is_never_over() -> None:
    delivery = waiting()
    assert not domain.claim_released(delivery, "courier-1")
    domain.assign(delivery, courier("courier-2", delivery_id=delivery.id), RULES, NOW)

    assert domain.claim_released(delivery, "courier-1")  # went to someone else
    assert not domain.claim_released(delivery, "courier-2")  # theirs, carried
    domain.cancel(delivery, "changed my mind", NOW)
    assert domain.claim_released(delivery, "courier-2")  # ended
    assert domain.claim_released(None, "courier-1")


def test_coming_back_on_duty_starts_the_wait_and_moving_does_not() -> None:
    c = courier(available=False, free_since=NOW - timedelta(hours=2))
    later = NOW + timedelta(minutes=1)

    domain.update_courier(c, True, north_of_pharmacy(1), RULES, NOW)
    domain.update_courier(c, True, north_of_pharmacy(2), RULES, later)

    assert (c.free_since, c.updated_at, c.location) == (NOW, later, north_of_pharmacy(2))
    assert c.model_dump()["idle"] is True  # stored, for the store's index


def test_a_courier_who_comes_free_says_so_where_they_are() -> None:
    joined = courier()
    off = courier("courier-2", available=False)

    said = domain.joining(joined)

    assert said == [CourierFree(courier_id="courier-1", location=PHARMACY)]
    assert joined.announced_location == PHARMACY
    assert domain.joining(off) == []
    back = domain.update_courier(off, True, north_of_pharmacy(1), RULES, NOW)
    assert back == [CourierFree(courier_id="courier-2", location=north_of_pharmacy(1))]


def test_a_free_courier_says_so_again_only_after_moving_far_enough() -> None:
    c = courier()
    domain.joining(c)

    same_place = domain.update_courier(c, True, PHARMACY, RULES, NOW)
    jitter = domain.update_courier(c, True, north_of_pharmacy(0.4), RULES, NOW)
    still_near = domain.update_courier(c, True, north_of_pharmacy(0.9), RULES, NOW)
    # Measured from where they last said it, so slow drifting adds up.
    moved = domain.update_courier(c, True, north_of_pharmacy(1.1), RULES, NOW)

    assert (same_place, jitter, still_near) == ([], [], [])
    assert moved == [CourierFree(courier_id="courier-1", location=north_of_pharmacy(1.1))]
    assert domain.update_courier(c, True, north_of_pharmacy(1.1), RULES, NOW) == []
    assert domain.update_courier(c, True, north_of_pharmacy(1.5), Rules(free_move_km=0.2), NOW) != []


def test_a_courier_off_duty_or_carrying_says_nothing_when_they_move() -> None:
    off = courier(available=False)
    busy = courier("courier-2", delivery_id="delivery-1")

    assert domain.update_courier(off, False, north_of_pharmacy(5), RULES, NOW) == []
    assert domain.update_courier(busy, True, north_of_pharmacy(5), RULES, NOW) == []
    assert domain.update_courier(courier(), False, PHARMACY, RULES, NOW) == []  # going off duty


def test_a_courier_released_on_duty_says_they_are_free_and_off_duty_says_nothing() -> None:
    on = courier(delivery_id="delivery-1")
    off = courier("courier-2", available=False, delivery_id="delivery-1")

    assert domain.release(on, "delivery-1", NOW) == [CourierFree(courier_id="courier-1", location=PHARMACY)]
    assert domain.release(on, "delivery-1", NOW) == []  # released already
    assert domain.release(off, "delivery-1", NOW) == []
    assert off.delivery_id is None


# --- going off duty with a delivery -----------------------------------------------------------------


def test_going_off_duty_hands_back_an_assigned_delivery_not_collected() -> None:
    delivery = assigned()
    ready_at = delivery.ready_at
    later = NOW + timedelta(minutes=3)

    events = domain.hand_back(delivery, "courier-1", later)
    again = domain.hand_back(delivery, "courier-1", later)

    assert events == [
        DeliveryUnassigned(
            delivery_id=delivery.id,
            order_id=delivery.order_id,
            courier_id="courier-1",
            reason="the courier went off duty before collecting it",
        )
    ]
    assert again == []
    assert (delivery.status, delivery.courier_id, delivery.eta, delivery.assigned_at) == (
        "WAITING_FOR_COURIER",
        None,
        None,
        None,
    )
    assert (delivery.attempts, delivery.ready_at, delivery.handed_back_by) == ([], ready_at, ["courier-1"])
    assert domain.claim_released(delivery, "courier-1")  # their claim is over


def test_a_handed_back_delivery_goes_to_another_courier_never_to_them_again() -> None:
    delivery = assigned()
    domain.hand_back(delivery, "courier-1", NOW)
    gone = courier("courier-1")
    other = courier("courier-2", at=north_of_pharmacy(3))

    assert domain.choose_courier(delivery, [gone, other], RULES) is other
    assert domain.first_within_reach(gone, [delivery], RULES) is None
    assert domain.first_within_reach(other, [delivery], RULES) is delivery
    with pytest.raises(domain.DeliveryTaken):
        domain.assign(delivery, courier("courier-1", delivery_id=delivery.id), RULES, NOW)
    (event,) = domain.assign(delivery, courier("courier-2", delivery_id=delivery.id), RULES, NOW)
    assert isinstance(event, DeliveryAssigned)
    assert event.courier_id == "courier-2"
    assert not domain.claim_released(delivery, "courier-2")


def test_a_claimed_delivery_not_assigned_yet_is_marked_so_the_claim_is_over() -> None:
    delivery = waiting()

    events = domain.hand_back(delivery, "courier-1", NOW)

    assert events == []  # the order never heard of this courier
    assert (delivery.status, delivery.handed_back_by) == ("WAITING_FOR_COURIER", ["courier-1"])
    assert domain.claim_released(delivery, "courier-1")
    with pytest.raises(domain.DeliveryTaken):
        domain.assign(delivery, courier(delivery_id=delivery.id), RULES, NOW)


def test_going_off_duty_is_refused_once_the_delivery_is_collected() -> None:
    delivery = out_for_delivery()
    with pytest.raises(domain.MoveNotAllowed, match="deliver it or record a failed attempt"):
        domain.hand_back(delivery, "courier-1", NOW)
    domain.fail_attempt(delivery, "courier-1", "NO_ONE_HOME", None, RULES, NOW)
    with pytest.raises(domain.MoveNotAllowed):
        domain.hand_back(delivery, "courier-1", NOW)

    assert (delivery.status, delivery.courier_id, delivery.handed_back_by) == (
        "ATTEMPT_FAILED",
        "courier-1",
        [],
    )


def test_nothing_is_handed_back_that_is_not_the_couriers() -> None:
    elsewhere = assigned()
    done = out_for_delivery()
    domain.hand_over(done, "courier-1", pin=None, recipient_name="Pat", pins=PINS, rules=RULES, now=NOW)

    assert domain.hand_back(elsewhere, "courier-2", NOW) == []
    assert domain.hand_back(done, "courier-1", NOW) == []  # delivered: nothing in hand
    assert (elsewhere.status, elsewhere.courier_id, elsewhere.handed_back_by) == ("ASSIGNED", "courier-1", [])
    assert done.status == "DELIVERED"


# --- pickup and hand-over -----------------------------------------------------------------------------


def test_only_the_assigned_courier_picks_up_and_only_once() -> None:
    delivery = assigned()
    with pytest.raises(domain.NotTheirs):
        domain.pick_up(delivery, "courier-2", RULES, NOW)

    [event] = domain.pick_up(delivery, "courier-1", RULES, NOW)

    assert isinstance(event, DeliveryPickedUp)
    assert delivery.status == "OUT_FOR_DELIVERY"
    with pytest.raises(domain.MoveNotAllowed):
        domain.pick_up(delivery, "courier-1", RULES, NOW)


def test_a_waiting_delivery_is_nobodys_to_pick_up() -> None:
    with pytest.raises(domain.NotTheirs):
        domain.pick_up(waiting(), "courier-1", RULES, NOW)


def hand_over(delivery: Delivery, pin: str | None = None, name: str | None = None) -> list[object]:
    return list(
        domain.hand_over(delivery, "courier-1", pin=pin, recipient_name=name, pins=PINS, rules=RULES, now=NOW)
    )


def test_the_right_pin_delivers() -> None:
    delivery = out_for_delivery(controlled=True)

    [event] = hand_over(delivery, pin=PINS.pin(delivery.order_id), name="  Pat  ")

    assert isinstance(event, DeliveryCompleted)
    assert (event.proof, event.recipient_name) == ("PIN", "Pat")
    assert (delivery.status, delivery.delivered_at) == ("DELIVERED", NOW)


def test_a_wrong_pin_is_counted_and_delivers_nothing() -> None:
    delivery = out_for_delivery(controlled=True)
    wrong = f"{(int(PINS.pin(delivery.order_id)) + 1) % 10_000:04d}"

    assert hand_over(delivery, pin=wrong) == []

    assert (delivery.status, delivery.wrong_pins, delivery.wrong_pins_this_visit) == (
        "OUT_FOR_DELIVERY",
        1,
        1,
    )


def test_a_pin_delivery_is_not_handed_over_on_a_name() -> None:
    delivery = out_for_delivery(controlled=True)
    with pytest.raises(domain.ProofMissing) as refused:
        hand_over(delivery, name="Pat Ient")
    assert refused.value.field == "pin"
    assert delivery.status == "OUT_FOR_DELIVERY"


def test_after_too_many_wrong_pins_only_a_failed_attempt_is_left_until_the_next_visit() -> None:
    delivery = out_for_delivery(controlled=True)
    pin = PINS.pin(delivery.order_id)
    wrong = f"{(int(pin) + 1) % 10_000:04d}"
    for _ in range(RULES.max_wrong_pins):
        hand_over(delivery, pin=wrong)

    with pytest.raises(domain.PinsExhausted):
        hand_over(delivery, pin=pin)
    domain.fail_attempt(delivery, "courier-1", "ID_CHECK_FAILED", None, RULES, NOW)
    [event] = hand_over(delivery, pin=pin)  # the next visit starts afresh

    assert isinstance(event, DeliveryCompleted)
    assert delivery.wrong_pins == RULES.max_wrong_pins


def test_a_name_delivery_needs_the_recipients_name() -> None:
    delivery = out_for_delivery()
    with pytest.raises(domain.ProofMissing) as refused:
        hand_over(delivery, name="   ")
    assert refused.value.field == "recipient_name"

    [event] = hand_over(delivery, name="Neighbour at no. 3")

    assert isinstance(event, DeliveryCompleted)
    assert (event.proof, event.recipient_name) == ("NAME", "Neighbour at no. 3")


def test_nothing_is_handed_over_before_pickup_or_twice() -> None:
    with pytest.raises(domain.MoveNotAllowed):
        hand_over(assigned(), name="Pat")
    delivery = out_for_delivery()
    hand_over(delivery, name="Pat")
    with pytest.raises(domain.MoveNotAllowed):
        hand_over(delivery, name="Pat")


# --- failed attempts ------------------------------------------------------------------------------


def test_a_failed_attempt_before_the_last_keeps_the_courier_on_it() -> None:
    delivery = out_for_delivery()

    [event] = domain.fail_attempt(delivery, "courier-1", "NO_ONE_HOME", "rang twice", RULES, NOW)

    assert isinstance(event, DeliveryAttemptFailed)
    assert (event.attempt, event.retrying, event.note) == (1, True, "rang twice")
    assert (delivery.status, delivery.courier_id) == ("ATTEMPT_FAILED", "courier-1")
    [second_try] = hand_over(delivery, name="Pat")
    assert isinstance(second_try, DeliveryCompleted)


def test_the_last_failed_attempt_returns_the_order_to_its_pharmacy() -> None:
    delivery = out_for_delivery()
    domain.fail_attempt(delivery, "courier-1", "NO_ONE_HOME", None, RULES, NOW)

    failed, returned = domain.fail_attempt(delivery, "courier-1", "WRONG_ADDRESS", None, RULES, NOW)

    assert isinstance(failed, DeliveryAttemptFailed)
    assert (failed.attempt, failed.retrying) == (2, False)
    assert isinstance(returned, DeliveryReturned)
    assert returned.pharmacy_id == "pharmacy-1"
    assert "NO_ONE_HOME" in returned.reason
    assert "WRONG_ADDRESS" in returned.reason
    assert delivery.status == "RETURNED"
    assert [a.reason for a in delivery.attempts] == ["NO_ONE_HOME", "WRONG_ADDRESS"]
    assert domain.claim_released(delivery, "courier-1")  # the courier is free again
    with pytest.raises(domain.MoveNotAllowed):
        domain.fail_attempt(delivery, "courier-1", "OTHER", None, RULES, NOW)


def test_the_number_of_attempts_is_a_setting() -> None:
    delivery = out_for_delivery()
    events = domain.fail_attempt(delivery, "courier-1", "REFUSED", None, Rules(max_attempts=1), NOW)

    assert [type(e) for e in events] == [DeliveryAttemptFailed, DeliveryReturned]


def test_only_the_courier_of_the_delivery_records_a_failure() -> None:
    with pytest.raises(domain.NotTheirs):
        domain.fail_attempt(out_for_delivery(), "courier-2", "OTHER", None, RULES, NOW)
    with pytest.raises(domain.MoveNotAllowed):
        domain.fail_attempt(assigned(), "courier-1", "OTHER", None, RULES, NOW)


# --- cancel -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [waiting, assigned])
def test_a_cancel_before_pickup_calls_the_delivery_off(make: object) -> None:
    delivery = make()  # type: ignore[operator]

    assert domain.cancel(delivery, "changed my mind", NOW) == []

    assert (delivery.status, delivery.cancel_reason) == ("CANCELLED", "changed my mind")
    assert domain.cancel(delivery, "again", NOW) == []


def test_a_cancel_after_pickup_brings_the_order_back() -> None:
    delivery = out_for_delivery()

    [event] = domain.cancel(delivery, "changed my mind", NOW)

    assert isinstance(event, DeliveryReturned)
    assert event.reason == "order cancelled: changed my mind"
    assert delivery.status == "RETURNED"


def test_a_cancel_after_delivery_changes_nothing() -> None:
    delivery = out_for_delivery()
    hand_over(delivery, name="Pat")

    assert domain.cancel(delivery, "too late", NOW) == []
    assert delivery.status == "DELIVERED"


def test_a_tombstone_is_not_listed_and_nobodys() -> None:
    stone = domain.tombstone("order-1", "changed my mind", NOW)

    assert (stone.status, stone.listed) == ("CANCELLED", False)
    with pytest.raises(domain.NotTheirs):
        domain.pick_up(stone, "courier-1", RULES, NOW)


def test_the_view_never_shows_the_pin_or_its_check() -> None:
    delivery = waiting(controlled=True)
    view = delivery.view().model_dump_json()

    assert delivery.pin_check is not None
    assert delivery.pin_check not in view
    assert "pin" not in delivery.view().model_dump()


# --- who sees what of a delivery --------------------------------------------------------------------


def ended_every_way() -> list[Delivery]:
    delivered = out_for_delivery(delivery_window=WINDOW)
    domain.fail_attempt(
        delivered, "courier-1", "NO_ONE_HOME", "neighbour at no. 3 says she is away", RULES, NOW
    )
    hand_over(delivered, name="Pat Ient")
    returned = out_for_delivery(delivery_window=WINDOW)
    domain.fail_attempt(returned, "courier-1", "NO_ONE_HOME", "rang twice", RULES, NOW)
    domain.fail_attempt(returned, "courier-1", "NO_ONE_HOME", "rang again", RULES, NOW)
    cancelled = assigned(delivery_window=WINDOW)
    domain.cancel(cancelled, "changed my mind", NOW)
    return [delivered, returned, cancelled]


@pytest.mark.parametrize("delivery", ended_every_way(), ids=lambda d: d.status)
def test_once_ended_its_courier_no_longer_sees_where_when_or_to_whom(delivery: Delivery) -> None:
    seen = delivery.view_for("courier-1")

    assert (seen.delivery_location, seen.delivery_window, seen.recipient_name) == (None, None, None)
    assert all(a.note is None for a in seen.attempts)
    # What the job was stays: its status, pharmacy, proof kind, attempts' reasons and times.
    full = delivery.view()
    kept = ("status", "pharmacy_id", "pickup_location", "proof", "eta", "delivered_at", "created_at")
    assert {k: getattr(seen, k) for k in kept} == {k: getattr(full, k) for k in kept}
    assert [(a.reason, a.at) for a in seen.attempts] == [(a.reason, a.at) for a in full.attempts]


@pytest.mark.parametrize("delivery", ended_every_way(), ids=lambda d: d.status)
def test_an_admin_sees_an_ended_delivery_whole(delivery: Delivery) -> None:
    seen = delivery.view_for(None)

    assert seen == delivery.view()
    assert (seen.delivery_location, seen.delivery_window) == (PATIENT, WINDOW)
    assert all(a.note for a in seen.attempts)


def test_while_it_is_theirs_to_carry_the_courier_sees_where_and_when() -> None:
    delivery = out_for_delivery(delivery_window=WINDOW)
    domain.fail_attempt(delivery, "courier-1", "NO_ONE_HOME", "rang twice", RULES, NOW)

    assert delivery.view_for("courier-1") == delivery.view()
    assert delivery.view_for("courier-1").attempts[0].note == "rang twice"
