"""The last mile's rules: a delivery's proof and PIN, who carries it, its moves and the events they cause.

A delivery is one order's hand-over (its id is the order's). It waits for a courier, is assigned,
picked up, then delivered with its proof, or failed and tried again, or returned after its last
attempt. A courier carries one delivery at a time. No I/O: `dispatch.py` runs the assignment across
the two aggregates, `handlers.py` the moves.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import computed_field

from contracts.base import Event
from contracts.commands import CourierView, DeliveryAttemptView, DeliveryStatus, DeliveryView
from contracts.events import (
    CourierFree,
    DeliveryAssigned,
    DeliveryAttemptFailed,
    DeliveryCompleted,
    DeliveryFailure,
    DeliveryPickedUp,
    DeliveryReturned,
    DeliveryUnassigned,
    DeliveryWindow,
    Location,
    OrderReadyForPickup,
    ProofKind,
)
from service_runtime.aggregate import Aggregate
from service_runtime.geo import distance_km

# The courier has it, or is on the way to the pharmacy for it.
CARRIED: frozenset[DeliveryStatus] = frozenset({"ASSIGNED", "OUT_FOR_DELIVERY", "ATTEMPT_FAILED"})
FINISHED: frozenset[DeliveryStatus] = frozenset({"DELIVERED", "RETURNED", "CANCELLED"})
# Where a hand-over can be tried: at the door, on the first visit or a later one.
AT_THE_DOOR: frozenset[DeliveryStatus] = frozenset({"OUT_FOR_DELIVERY", "ATTEMPT_FAILED"})


@dataclass(frozen=True)
class Rules:
    """The settings the rules read (delivery_service.app.Settings)."""

    # Over this total (in cents) a hand-over needs the patient's PIN, like a controlled drug does.
    pin_over_cents: int = 10_000
    # How far from the pharmacy a courier may be to be given its delivery.
    reach_km: float = 15.0
    speed_kmh: float = 20.0
    # Time at the pharmacy's counter to collect the order.
    handling: timedelta = timedelta(minutes=5)
    # Failed attempts before the order goes back to its pharmacy.
    max_attempts: int = 2
    # Wrong PINs a courier may enter on one visit; then only FailDelivery is left for that visit.
    max_wrong_pins: int = 5
    # A free courier who moved this far from where they last said so says it again (CourierFree):
    # nearer pings change nothing worth a message.
    free_move_km: float = 1.0


# --- refusals: each maps to one code the gateway turns into a status ------------------------------


class NotTheirs(Exception):
    """No such delivery for this courier: missing, or another courier's (answered alike: no probing)."""


class MoveNotAllowed(Exception):
    """The delivery's state does not allow this move now (picked up twice, delivered already...)."""


class ProofMissing(Exception):
    """The hand-over lacks the proof the delivery asks for; `field` names what to send."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class PinsExhausted(Exception):
    """Too many wrong PINs on this visit: the courier records a failed attempt (FailDelivery) instead."""


class CourierNotFree(Exception):
    """The courier took another delivery, or stopped taking any, since they were chosen."""


class DeliveryTaken(Exception):
    """The delivery is not this courier's to take: another has it, it was cancelled, or they handed
    it back."""


# --- the PIN ----------------------------------------------------------------------------------------


class PinKey:
    """Each order's 4-digit PIN, derived from a secret and never stored, and the check stored instead.

    PIN = HMAC-SHA256(secret, order id) reduced to 4 digits: the patient's view recomputes it, nothing
    keeps it. The stored check is an HMAC of (order id, PIN) under a second key derived from the
    secret: a copy of the database alone cannot test the 10,000 candidates.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._check_key = hmac.new(secret, b"pharmacy:delivery-pin-check", hashlib.sha256).digest()

    def pin(self, order_id: str) -> str:
        digest = hmac.new(self._secret, order_id.encode(), hashlib.sha256).digest()
        # 64 bits reduced mod 10^4: the bias is below 10^-15.
        return f"{int.from_bytes(digest[:8], 'big') % 10_000:04d}"

    def check(self, order_id: str, pin: str) -> str:
        return hmac.new(self._check_key, f"{order_id}:{pin}".encode(), hashlib.sha256).hexdigest()

    def matches(self, order_id: str, pin: str, check: str) -> bool:
        return hmac.compare_digest(self.check(order_id, pin.strip()), check)

    def fingerprint(self, request: str) -> str:
        """What a request asked, to tell a retry from another request under one key: keyed, since a
        hand-over's request holds a PIN."""
        return hmac.new(self._check_key, b"request:" + request.encode(), hashlib.sha256).hexdigest()[:32]


def proof_for(total_cents: int, controlled: bool, rules: Rules) -> ProofKind:
    """A controlled drug, or an order over the set value, is handed over on the patient's PIN only."""
    return "PIN" if controlled or total_cents > rules.pin_over_cents else "NAME"


# --- the aggregates ---------------------------------------------------------------------------------


class Delivery(Aggregate):
    """One order's hand-over. Not `listed`: the tombstone of an order cancelled before it was ready."""

    order_id: str
    status: DeliveryStatus
    listed: bool = True
    patient_id: str = ""
    pharmacy_id: str = ""
    pickup_location: Location | None = None
    delivery_location: Location | None = None
    delivery_window: DeliveryWindow | None = None
    total_cents: int = 0
    controlled: bool = False
    proof: ProofKind = "NAME"
    pin_check: str | None = None
    courier_id: str | None = None
    eta: datetime | None = None
    attempts: list[DeliveryAttemptView] = []
    # Couriers who went off duty with it before collecting it: it is never theirs again (dispatch.py).
    handed_back_by: list[str] = []
    wrong_pins: int = 0
    # Wrong PINs since the last failed attempt: a new visit starts afresh.
    wrong_pins_this_visit: int = 0
    recipient_name: str | None = None
    # The moves sent with an Idempotency-Key: request id -> what it asked (`PinKey.fingerprint`).
    requests: dict[str, str] = {}
    ready_at: datetime | None = None
    assigned_at: datetime | None = None
    picked_up_at: datetime | None = None
    delivered_at: datetime | None = None
    returned_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    created_at: datetime

    def view_for(self, courier_id: str | None) -> DeliveryView:
        """What the one asking sees: an admin or dispatch (None) all of it; the delivery's courier all
        they need while it is theirs to carry, and once it has ended (delivered, returned, cancelled)
        nothing more of the patient: not where they live, when they are home, who took it, nor what
        was noted at the door. Status, pharmacy, proof kind, attempts' reasons and times stay."""
        view = self.view()
        if courier_id is None or self.status not in FINISHED:
            return view
        return view.model_copy(
            update={
                "delivery_location": None,
                "delivery_window": None,
                "recipient_name": None,
                "attempts": tuple(a.model_copy(update={"note": None}) for a in view.attempts),
            }
        )

    def view(self) -> DeliveryView:
        """All of it, for admins and dispatch (`view_for` says what a courier sees). Never the PIN."""
        assert self.listed
        assert self.pickup_location is not None
        assert self.delivery_location is not None
        return DeliveryView(
            id=self.id,
            order_id=self.order_id,
            status=self.status,
            pharmacy_id=self.pharmacy_id,
            pickup_location=self.pickup_location,
            delivery_location=self.delivery_location,
            delivery_window=self.delivery_window,
            courier_id=self.courier_id,
            eta=self.eta,
            proof=self.proof,
            attempts=tuple(self.attempts),
            wrong_pins=self.wrong_pins,
            recipient_name=self.recipient_name,
            delivered_at=self.delivered_at,
            created_at=self.created_at,
        )


class Courier(Aggregate):
    """A courier (id: their user id): whether they take deliveries, where they are, what they carry.

    `delivery_id` is set when the courier is claimed for a delivery and cleared when it ends; see
    dispatch.py for the claim.
    """

    available: bool
    location: Location
    delivery_id: str | None = None
    # Where they last said they were free (CourierFree); None: not said since they last were.
    announced_location: Location | None = None
    updated_at: datetime
    # Since when they wait for work (available and empty-handed): the longest idle goes first on a tie.
    free_since: datetime
    created_at: datetime

    # Stored with the courier, so the store finds the idle ones from an index.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def idle(self) -> bool:
        return self.available and self.delivery_id is None

    def view(self) -> CourierView:
        return CourierView(
            id=self.id,
            available=self.available,
            location=self.location,
            delivery_id=self.delivery_id,
            updated_at=self.updated_at,
        )


# --- a delivery's moves ---------------------------------------------------------------------------


def open_delivery(ready: OrderReadyForPickup, pins: PinKey, rules: Rules, now: datetime) -> Delivery:
    """An order ready at its pharmacy waits for a courier, with the proof its hand-over will need."""
    proof = proof_for(ready.total_cents, ready.controlled, rules)
    return Delivery(
        id=ready.order_id,
        order_id=ready.order_id,
        status="WAITING_FOR_COURIER",
        patient_id=ready.patient_id,
        pharmacy_id=ready.pharmacy_id,
        pickup_location=ready.pharmacy_location,
        delivery_location=ready.delivery_location,
        delivery_window=ready.delivery_window,
        total_cents=ready.total_cents,
        controlled=ready.controlled,
        proof=proof,
        pin_check=pins.check(ready.order_id, pins.pin(ready.order_id)) if proof == "PIN" else None,
        ready_at=now,
        created_at=now,
    )


def tombstone(order_id: str, reason: str, now: datetime) -> Delivery:
    """An order cancelled before it was ready: its OrderReadyForPickup, if it comes late, makes nothing."""
    return Delivery(
        id=order_id,
        order_id=order_id,
        status="CANCELLED",
        listed=False,
        cancelled_at=now,
        cancel_reason=reason,
        created_at=now,
    )


def travel(a: Location, b: Location, rules: Rules) -> timedelta:
    return timedelta(hours=distance_km(a, b) / rules.speed_kmh)


def not_before_window(eta: datetime, window: DeliveryWindow | None) -> datetime:
    """A courier does not ring before the window the patient asked for."""
    return max(eta, window.start) if window is not None else eta


def eta_when_assigned(delivery: Delivery, courier_at: Location, rules: Rules, now: datetime) -> datetime:
    """Courier to pharmacy, collecting it there, pharmacy to patient, at the set speed."""
    assert delivery.pickup_location is not None
    assert delivery.delivery_location is not None
    eta = (
        now
        + travel(courier_at, delivery.pickup_location, rules)
        + rules.handling
        + travel(delivery.pickup_location, delivery.delivery_location, rules)
    )
    return not_before_window(_to_second(eta), delivery.delivery_window)


def eta_when_picked_up(delivery: Delivery, rules: Rules, now: datetime) -> datetime:
    """From the pharmacy, where the courier is now, to the patient."""
    assert delivery.pickup_location is not None
    assert delivery.delivery_location is not None
    eta = now + travel(delivery.pickup_location, delivery.delivery_location, rules)
    return not_before_window(_to_second(eta), delivery.delivery_window)


def _to_second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


def within_reach(courier: Courier, delivery: Delivery, rules: Rules) -> bool:
    assert delivery.pickup_location is not None
    return distance_km(courier.location, delivery.pickup_location) <= rules.reach_km


def choose_courier(delivery: Delivery, couriers: Iterable[Courier], rules: Rules) -> Courier | None:
    """The nearest idle courier within reach of the pharmacy; on a tie (to the metre) the one idle
    longest, then the lowest id. None: nobody free near enough, the delivery waits."""
    assert delivery.pickup_location is not None
    pickup = delivery.pickup_location
    candidates = [
        (round(distance_km(c.location, pickup), 3), c.free_since, c.id, c)
        for c in couriers
        if c.idle
        and c.id not in delivery.handed_back_by
        and distance_km(c.location, pickup) <= rules.reach_km
    ]
    return min(candidates, key=lambda t: t[:3])[3] if candidates else None


def first_within_reach(courier: Courier, waiting: Sequence[Delivery], rules: Rules) -> Delivery | None:
    """Of deliveries in the order they became ready, the first this courier can reach (and did not
    hand back)."""
    return next(
        (
            d
            for d in waiting
            if d.status == "WAITING_FOR_COURIER"
            and courier.id not in d.handed_back_by
            and within_reach(courier, d, rules)
        ),
        None,
    )


def assign(delivery: Delivery, courier: Courier, rules: Rules, now: datetime) -> list[Event]:
    """A waiting delivery goes to the courier claimed for it; done already, nothing more happens."""
    if delivery.status != "WAITING_FOR_COURIER":
        if delivery.courier_id == courier.id:
            return []
        raise DeliveryTaken(f"delivery {delivery.id} is {delivery.status}")
    if courier.id in delivery.handed_back_by:
        raise DeliveryTaken(f"courier {courier.id} handed delivery {delivery.id} back")
    delivery.status = "ASSIGNED"
    delivery.courier_id = courier.id
    delivery.assigned_at = now
    delivery.eta = eta_when_assigned(delivery, courier.location, rules, now)
    return [
        DeliveryAssigned(
            delivery_id=delivery.id,
            order_id=delivery.order_id,
            courier_id=courier.id,
            eta=delivery.eta,
            proof=delivery.proof,
        )
    ]


def hand_back(delivery: Delivery, courier_id: str, now: datetime) -> list[Event]:
    """A courier going off duty gives back the delivery they have not collected yet: it waits for
    another courier (its attempts kept, its place in the queue too). Collected, it is theirs to
    deliver or to record a failed attempt on first. Claimed for them and not assigned yet: it is
    marked, so that claim is over (dispatch.py). Not theirs (any more): nothing to give back."""
    if delivery.status in AT_THE_DOOR and delivery.courier_id == courier_id:
        raise MoveNotAllowed(
            f"delivery {delivery.id} is {delivery.status}: deliver it or record a failed attempt"
            " before going off duty"
        )
    waiting_for_them = delivery.status == "WAITING_FOR_COURIER"
    assigned_to_them = delivery.status == "ASSIGNED" and delivery.courier_id == courier_id
    if courier_id in delivery.handed_back_by or not (waiting_for_them or assigned_to_them):
        return []
    delivery.handed_back_by.append(courier_id)
    if waiting_for_them:
        return []  # the order never heard of this courier
    delivery.status = "WAITING_FOR_COURIER"
    delivery.courier_id = None
    delivery.eta = None
    delivery.assigned_at = None
    return [
        DeliveryUnassigned(
            delivery_id=delivery.id,
            order_id=delivery.order_id,
            courier_id=courier_id,
            reason="the courier went off duty before collecting it",
        )
    ]


def _theirs(delivery: Delivery, courier_id: str) -> None:
    if not delivery.listed or delivery.courier_id != courier_id:
        raise NotTheirs(f"delivery {delivery.id} not found")


def pick_up(delivery: Delivery, courier_id: str, rules: Rules, now: datetime) -> list[Event]:
    """The assigned courier collects the order at the pharmacy: it is out for delivery (and paid)."""
    _theirs(delivery, courier_id)
    if delivery.status != "ASSIGNED":
        raise MoveNotAllowed(f"delivery {delivery.id} is {delivery.status}, not ASSIGNED")
    delivery.status = "OUT_FOR_DELIVERY"
    delivery.picked_up_at = now
    delivery.eta = eta_when_picked_up(delivery, rules, now)
    return [
        DeliveryPickedUp(
            delivery_id=delivery.id, order_id=delivery.order_id, courier_id=courier_id, eta=delivery.eta
        )
    ]


def hand_over(
    delivery: Delivery,
    courier_id: str,
    *,
    pin: str | None,
    recipient_name: str | None,
    pins: PinKey,
    rules: Rules,
    now: datetime,
) -> list[Event]:
    """Delivered, on the proof the delivery asks for: the patient's PIN (a name is not enough), or the
    name of whoever took it. A wrong PIN is only counted: the caller refuses it once that is stored."""
    _theirs(delivery, courier_id)
    if delivery.status not in AT_THE_DOOR:
        raise MoveNotAllowed(f"delivery {delivery.id} is {delivery.status}, not out for delivery")
    name = (recipient_name or "").strip() or None
    if delivery.proof == "PIN":
        if delivery.wrong_pins_this_visit >= rules.max_wrong_pins:
            raise PinsExhausted(
                f"{rules.max_wrong_pins} wrong PINs on this visit: record a failed attempt (FailDelivery)"
            )
        if not (pin or "").strip():
            raise ProofMissing("pin", "this delivery is handed over on the patient's PIN only")
        assert pin is not None
        assert delivery.pin_check is not None
        if not pins.matches(delivery.order_id, pin, delivery.pin_check):
            delivery.wrong_pins += 1
            delivery.wrong_pins_this_visit += 1
            return []
    elif name is None:
        raise ProofMissing("recipient_name", "this delivery is handed over against the recipient's name")
    delivery.status = "DELIVERED"
    delivery.recipient_name = name
    delivery.delivered_at = now
    return [
        DeliveryCompleted(
            delivery_id=delivery.id,
            order_id=delivery.order_id,
            courier_id=courier_id,
            proof=delivery.proof,
            recipient_name=name,
        )
    ]


def fail_attempt(
    delivery: Delivery,
    courier_id: str,
    reason: DeliveryFailure,
    note: str | None,
    rules: Rules,
    now: datetime,
) -> list[Event]:
    """A visit that could not hand the order over. Before the last, the courier keeps it and tries
    again; the last sends it back to its pharmacy (refunded, not resold), the courier free again."""
    _theirs(delivery, courier_id)
    if delivery.status not in AT_THE_DOOR:
        raise MoveNotAllowed(f"delivery {delivery.id} is {delivery.status}, not out for delivery")
    delivery.attempts.append(DeliveryAttemptView(reason=reason, note=note, at=now))
    delivery.wrong_pins_this_visit = 0
    attempt = len(delivery.attempts)
    retrying = attempt < rules.max_attempts
    failed = DeliveryAttemptFailed(
        delivery_id=delivery.id,
        order_id=delivery.order_id,
        courier_id=courier_id,
        reason=reason,
        note=note,
        attempt=attempt,
        retrying=retrying,
    )
    if retrying:
        delivery.status = "ATTEMPT_FAILED"
        return [failed]
    reasons = ", ".join(a.reason for a in delivery.attempts)
    return [failed, _return(delivery, f"{attempt} failed attempts: {reasons}", now)]


def _return(delivery: Delivery, reason: str, now: datetime) -> DeliveryReturned:
    delivery.status = "RETURNED"
    delivery.returned_at = now
    return DeliveryReturned(
        delivery_id=delivery.id, order_id=delivery.order_id, pharmacy_id=delivery.pharmacy_id, reason=reason
    )


def cancel(delivery: Delivery, reason: str, now: datetime) -> list[Event]:
    """The order was cancelled. Not picked up yet: the delivery is off, its courier free. Picked up:
    the courier brings it back, as after a last failed attempt (stock returned, payment refunded)."""
    if delivery.status in FINISHED:
        return []
    delivery.cancel_reason = reason
    delivery.cancelled_at = now
    if delivery.status in AT_THE_DOOR:
        return [_return(delivery, f"order cancelled: {reason}", now)]
    delivery.status = "CANCELLED"
    return []


def claim_released(delivery: Delivery | None, courier_id: str) -> bool:
    """Whether a courier's claim on this delivery is over: it went to someone else, or it ended (or it
    is gone), or the courier handed it back. Else a claim on a delivery still waiting is never over:
    its assignment may be under way."""
    if delivery is None or courier_id in delivery.handed_back_by:
        return True
    if delivery.status == "WAITING_FOR_COURIER":
        return False
    return delivery.courier_id != courier_id or delivery.status in FINISHED


# --- a courier's moves ----------------------------------------------------------------------------


def new_courier(courier_id: str, available: bool, location: Location, now: datetime) -> Courier:
    return Courier(
        id=courier_id,
        available=available,
        location=location,
        updated_at=now,
        free_since=now,
        created_at=now,
    )


def _free(courier: Courier) -> list[Event]:
    """A courier free now says so, where they are: the event comes back to settle them (dispatch.py)."""
    if not courier.idle:
        courier.announced_location = None
        return []
    courier.announced_location = courier.location
    return [CourierFree(courier_id=courier.id, location=courier.location)]


def joining(courier: Courier) -> list[Event]:
    """A courier who joins on duty is free from the start."""
    return _free(courier)


def update_courier(
    courier: Courier, available: bool, location: Location, rules: Rules, now: datetime
) -> list[Event]:
    """Where the courier is, and whether they take deliveries. Coming back on duty starts their wait.
    Free now and not before, or free and moved far enough to reach other pharmacies: they say so
    (CourierFree); a free courier's nearer pings say nothing."""
    was_idle = courier.idle
    if available and not courier.available:
        courier.free_since = now
    courier.available = available
    courier.location = location
    courier.updated_at = now
    said = courier.announced_location
    if courier.idle and was_idle and said is not None and distance_km(said, location) < rules.free_move_km:
        return []
    return _free(courier)


def claim(courier: Courier, delivery_id: str) -> list[Event]:
    """Take an idle courier for one delivery, before the delivery is assigned (dispatch.py)."""
    if courier.delivery_id == delivery_id:
        return []
    if not courier.idle:
        raise CourierNotFree(f"courier {courier.id} is not free")
    courier.delivery_id = delivery_id
    return []


def release(courier: Courier, delivery_id: str, now: datetime) -> list[Event]:
    """The courier's delivery (or claim) is over: they are free from now, and say so if on duty."""
    if courier.delivery_id != delivery_id:
        return []
    courier.delivery_id = None
    courier.free_since = now
    return _free(courier)
