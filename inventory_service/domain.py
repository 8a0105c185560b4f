"""Stock rules: where an order can be served and what it costs; holding, dispensing, releasing and taking
back stock. No I/O."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from contracts.base import Event
from contracts.codes import CLASSIFYING_SYSTEMS, SYSTEM_LABELS, Code, Schedule, code_problem
from contracts.commands import (
    AvailabilityView,
    DispensingView,
    MedicationView,
    OrderQuote,
    PharmacyView,
    StockView,
)
from contracts.events import (
    LineShortage,
    Location,
    OrderDispensed,
    PharmacyStaffAdded,
    PharmacyStaffRemoved,
    PrescribedLine,
    ReservationDeadline,
    ReservationExpired,
    ReservedLine,
)
from service_runtime.aggregate import Aggregate

EARTH_RADIUS_KM = 6371.0


class OutOfStock(Exception):
    """A pharmacy no longer has enough of a medication to hold what an order needs."""


class NotOnStaff(Exception):
    """Only a pharmacy's own staff, or an admin, may change its stock, dispense or see its orders."""


class NotDispensable(Exception):
    """The order cannot be dispensed as it stands: not paid for, or dispensed by another pharmacist."""


class Medication(Aggregate):
    name: str
    strength: str
    form: str
    price_cents: int
    prescription_only: bool
    # Entries stored before schedules and codes load as unscheduled and uncoded.
    schedule: Schedule | None = None
    codes: list[Code] = []
    # What the entry is found by its codes with: one "system|code" string per code (see `code_key`).
    code_keys: list[str] = []
    discontinued: bool = False
    catalogue_key: str
    created_at: datetime

    def view(self) -> MedicationView:
        return MedicationView(
            id=self.id,
            name=self.name,
            strength=self.strength,
            form=self.form,
            price_cents=self.price_cents,
            prescription_only=self.prescription_only,
            schedule=self.schedule,
            codes=tuple(self.codes),
        )

    def recode(self, codes: Sequence[Code]) -> None:
        """Give the entry these codes, all of them, in this order."""
        self.codes = list(codes)
        self.code_keys = [code_key(code) for code in codes]


class CatalogueRefused(Exception):
    """A catalogue entry as asked for would break a catalogue rule; `field` names what is at fault."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class CodeTaken(CatalogueRefused):
    """A code that names one medication is carried by another entry of the catalogue already."""


def code_key(code: Code) -> str:
    """How a code is looked up: its system and its value, as FHIR's token search writes them."""
    return f"{code.system}|{code.code}"


def check_entry(*, schedule: Schedule | None, prescription_only: bool, codes: Sequence[Code]) -> None:
    """A catalogue entry's own rules: valid codes, none twice, and a controlled one is prescription-only."""
    seen: set[str] = set()
    for index, code in enumerate(codes):
        if why := code_problem(code):
            raise CatalogueRefused(f"codes.{index}.code", why)
        if code_key(code) in seen:
            raise CatalogueRefused(f"codes.{index}", "the same code is given twice")
        seen.add(code_key(code))
    if schedule is not None and not prescription_only:
        raise CatalogueRefused(
            "schedule", f"a controlled medication (schedule {schedule}) is prescription-only"
        )


def check_codes_free(medication_id: str, codes: Sequence[Code], carriers: Iterable[Medication]) -> None:
    """A code names one medication: none of these may be carried by another entry still in the catalogue.

    A classifying code (ATC) is shared by a substance's strengths and forms, and so by several entries.
    A discontinued entry keeps its codes for the orders that name it, but no longer holds them.
    """
    held = {
        key: other.id
        for other in carriers
        if other.id != medication_id and not other.discontinued
        for key in other.code_keys
    }
    for index, code in enumerate(codes):
        if code.system in CLASSIFYING_SYSTEMS:
            continue
        if (other_id := held.get(code_key(code))) is not None:
            system = SYSTEM_LABELS.get(code.system, code.system)
            raise CodeTaken(
                f"codes.{index}", f"{system} {code.code} is already the code of medication {other_id}"
            )


def catalogue_key(name: str, strength: str, form: str) -> str:
    """Two catalogue entries with the same name, strength and form are the same medication."""
    return "|".join(part.strip().casefold() for part in (name, strength, form))


class StockLevel(BaseModel):
    available: int = 0
    reserved: int = 0
    sold: int = 0
    # Dispensed, then brought back (a failed delivery, a cancel after dispensing): never for sale again.
    returned: int = 0


class Hold(BaseModel):
    lines: list[ReservedLine]
    held_at: datetime


class Pharmacy(Aggregate):
    """A pharmacy and its stock: one document, so holding every line of an order is one atomic write."""

    name: str
    address: str
    location: Location
    stock: dict[str, StockLevel] = {}
    holds: dict[str, Hold] = {}
    # Orders whose sold stock came back, to the shelf (a legacy sale cancelled) or to the returned units
    # (dispensed, then cancelled or not delivered): guards against doing either twice.
    returns: list[str] = []
    # Its pharmacists' user ids, in the order they joined: who may change its stock, besides admins.
    staff: list[str] = []
    created_at: datetime

    def available(self, medication_id: str) -> int:
        level = self.stock.get(medication_id)
        return level.available if level else 0

    def set_available(self, medication_id: str, quantity: int) -> None:
        self.stock.setdefault(medication_id, StockLevel()).available = quantity

    def check_staff(self, actor_id: str | None, *, actor_is_admin: bool, to: str) -> None:
        """Let its own pharmacists and admins through; anyone else is refused (NotOnStaff), saying `to`."""
        if not actor_is_admin and (actor_id is None or actor_id not in self.staff):
            raise NotOnStaff(f"only the staff of pharmacy {self.id} or an admin may {to}")

    def restock(
        self, medication_id: str, quantity: int, *, actor_id: str | None, actor_is_admin: bool
    ) -> None:
        """Set the units for sale of a medication, as its staff or an admin asks; anyone else is refused."""
        self.check_staff(actor_id, actor_is_admin=actor_is_admin, to="change its stock")
        self.set_available(medication_id, quantity)

    def add_staff(self, user_id: str, *, added_by: str | None) -> list[Event]:
        """Put a pharmacist on the staff, announced once: adding one already there changes nothing."""
        if user_id in self.staff:
            return []
        self.staff.append(user_id)
        return [PharmacyStaffAdded(pharmacy_id=self.id, user_id=user_id, added_by=added_by)]

    def remove_staff(self, user_id: str, *, removed_by: str | None) -> list[Event]:
        """Take a pharmacist off the staff, announced once: removing one not there changes nothing."""
        if user_id not in self.staff:
            return []
        self.staff.remove(user_id)
        return [PharmacyStaffRemoved(pharmacy_id=self.id, user_id=user_id, removed_by=removed_by)]

    def hold(self, order_id: str, lines: Sequence[ReservedLine], now: datetime) -> None:
        """Move every line from available to reserved, all or nothing."""
        if order_id in self.holds:
            return
        needed: Counter[str] = Counter()
        for line in lines:
            needed[line.medication_id] += line.quantity
        for medication_id, quantity in needed.items():
            if self.available(medication_id) < quantity:
                raise OutOfStock(f"{self.name} has {self.available(medication_id)} of {medication_id}")
        for line in lines:
            level = self.stock[line.medication_id]
            level.available -= line.quantity
            level.reserved += line.quantity
        self.holds[order_id] = Hold(lines=list(lines), held_at=now)

    def release(self, order_id: str) -> None:
        """Give an order's held stock back to the shelf (payment declined, order cancelled)."""
        hold = self.holds.pop(order_id, None)
        for line in hold.lines if hold else ():
            level = self.stock[line.medication_id]
            level.reserved -= line.quantity
            level.available += line.quantity

    def sell(self, order_id: str) -> None:
        """The order's held stock is sold (dispensed; before authorisations, paid), once."""
        hold = self.holds.pop(order_id, None)
        for line in hold.lines if hold else ():
            level = self.stock[line.medication_id]
            level.reserved -= line.quantity
            level.sold += line.quantity

    def dispense(self, order_id: str, *, actor_id: str, actor_is_admin: bool) -> None:
        """Its pharmacist (or an admin) made the final check: the order's held stock is sold, once."""
        self.check_staff(actor_id, actor_is_admin=actor_is_admin, to="dispense its orders")
        self.sell(order_id)

    def take_back(self, order_id: str, lines: Sequence[ReservedLine]) -> None:
        """Sold stock of a legacy sale (paid, sold at once) cancelled returns to the shelf, once."""
        if order_id in self.returns:
            return
        for line in lines:
            level = self.stock[line.medication_id]
            level.sold -= line.quantity
            level.available += line.quantity
        self.returns.append(order_id)

    def take_in_return(self, order_id: str, lines: Sequence[ReservedLine]) -> None:
        """Dispensed stock that came back is counted as returned, once: it left the shelf for good.

        A dispensing whose sale was not written yet (its OrderDispensed still on its way back here)
        still holds the stock: it is sold first, so the return takes what was dispensed."""
        if order_id in self.returns:
            return
        self.sell(order_id)
        for line in lines:
            level = self.stock[line.medication_id]
            level.sold -= line.quantity
            level.returned += line.quantity
        self.returns.append(order_id)

    def view(self) -> PharmacyView:
        return PharmacyView(id=self.id, name=self.name, address=self.address, location=self.location)

    def stock_view(self, medication_id: str) -> StockView:
        level = self.stock.get(medication_id, StockLevel())
        return StockView(
            pharmacy_id=self.id,
            medication_id=medication_id,
            quantity=level.available,
            reserved=level.reserved,
            sold=level.sold,
            returned=level.returned,
        )


def open_pharmacy(
    pharmacy_id: str, name: str, address: str, location: Location, *, founder_id: str | None, now: datetime
) -> tuple[Pharmacy, list[Event]]:
    """A new pharmacy; the pharmacist who opens it is its first staff member (an admin opening it is not)."""
    pharmacy = Pharmacy(id=pharmacy_id, name=name, address=address, location=location, created_at=now)
    events = [] if founder_id is None else pharmacy.add_staff(founder_id, added_by=founder_id)
    return pharmacy, events


# RESERVED: held, waiting for payment. PAID: the card is authorised; the stock stays held (reserved)
# until a pharmacist dispenses it, and no deadline ends it. DISPENSED: checked and packed, its stock
# sold. RETURNED: sold stock came back: dispensed, then cancelled or not delivered (counted as returned,
# never resold), or a SOLD order cancelled (back on the shelf). EXPIRED: held but not paid for in time;
# the stock went back and will not be sold. SOLD: paid and sold at once, before authorisations; kept for
# reservations stored then.
ReservationState = Literal[
    "RESERVING",
    "RESERVED",
    "FAILED",
    "PAID",
    "DISPENSED",
    "SOLD",
    "RELEASED",
    "RETURNED",
    "EXPIRED",
]


class Reservation(Aggregate):
    """Inventory's record of one order (id = order id): where its stock is held and what became of it."""

    state: ReservationState
    patient_id: str = ""
    payment_method_id: str = ""
    pharmacy_id: str | None = None
    lines: list[ReservedLine] = []
    # The lines' prices and both fees: what the card is authorised for.
    total_cents: int = 0
    service_fee_cents: int = 0
    delivery_fee_cents: int = 0
    shortages: list[LineShortage] = []
    # The pharmacist who verified the order's prescription; None when no line needed one.
    verified_by: str | None = None
    # When the payment was authorised: the dispensing queue is served oldest first (indexed).
    paid_at: datetime | None = None
    dispensed_by: str | None = None
    dispensed_at: datetime | None = None
    # Why its sold stock came back: the cancel's reason, or the failed delivery's.
    return_reason: str | None = None
    returned_at: datetime | None = None
    created_at: datetime

    def deadline(self, hold: timedelta, now: datetime) -> ReservationDeadline:
        """The timer that ends the hold of stock just reserved, unless the order is paid for first."""
        assert self.pharmacy_id is not None
        return ReservationDeadline(
            reservation_id=self.id, order_id=self.id, pharmacy_id=self.pharmacy_id, fires_at=now + hold
        )

    def expire(self, reason: str) -> list[Event]:
        """The hold ran out before payment: a RESERVED reservation is EXPIRED, announced once.

        Any other state is left alone: stock sold, released or returned is not the deadline's business,
        and a reservation already EXPIRED was announced when it expired.
        """
        if self.state != "RESERVED" or self.pharmacy_id is None:
            return []
        self.state = "EXPIRED"
        return [
            ReservationExpired(
                reservation_id=self.id, order_id=self.id, pharmacy_id=self.pharmacy_id, reason=reason
            )
        ]

    def pay(self, at: datetime) -> None:
        """The card was authorised: a RESERVED reservation is PAID, its stock still held for dispensing.

        Any other state is left alone: a reservation released or expired meanwhile holds nothing to pay
        for (payment_service voids or refunds once the order is cancelled).
        """
        if self.state == "RESERVED":
            self.state = "PAID"
            self.paid_at = at

    def check_dispensable(self, pharmacist_id: str) -> bool:
        """Whether dispensing is still to do (PAID), False when this pharmacist already did it (a command
        delivered again); NotDispensable for any other state, or when another pharmacist did it.

        A SOLD reservation (paid before authorisations, its stock sold at once) is dispensed too, so an
        order confirmed then goes on to its courier: the sale of its stock is simply not repeated."""
        if self.state == "DISPENSED":
            if self.dispensed_by == pharmacist_id:
                return False
            raise NotDispensable(f"order {self.id} was dispensed already, by {self.dispensed_by}")
        if self.state not in ("PAID", "SOLD"):
            why = "is not paid for yet" if self.state in ("RESERVING", "RESERVED") else "cannot be dispensed"
            raise NotDispensable(f"order {self.id} {why} (its reservation is {self.state})")
        return True

    def dispense(self, pharmacist_id: str, at: datetime, pharmacy_location: Location) -> list[Event]:
        """A PAID (or legacy SOLD) order was checked and packed: DISPENSED, announced once with where to
        collect it."""
        if not self.check_dispensable(pharmacist_id):
            return []
        assert self.pharmacy_id is not None
        self.state = "DISPENSED"
        self.dispensed_by = pharmacist_id
        self.dispensed_at = at
        return [
            OrderDispensed(
                order_id=self.id,
                pharmacy_id=self.pharmacy_id,
                pharmacist_id=pharmacist_id,
                lines=tuple(self.lines),
                pharmacy_location=pharmacy_location,
            )
        ]

    def end(self, reason: str, at: datetime) -> None:
        """The order was cancelled (or its payment declined): what is held is RELEASED; what was sold
        (dispensed, or a legacy sale) is RETURNED. Other states are final already."""
        if self.state in ("RESERVING", "RESERVED", "PAID"):
            self.state = "RELEASED"
        elif self.state == "SOLD":
            self.state = "RETURNED"
        elif self.state == "DISPENSED":
            self._returned(reason, at)

    def bring_back(self, reason: str, at: datetime) -> None:
        """The courier brought the order back after the last failed attempt: its sold stock is RETURNED.
        Only what was sold can have gone out; anything else is left alone."""
        if self.state in ("DISPENSED", "SOLD"):
            self._returned(reason, at)

    def _returned(self, reason: str, at: datetime) -> None:
        self.state = "RETURNED"
        self.return_reason = reason
        self.returned_at = at

    def queue_view(self) -> DispensingView:
        assert self.pharmacy_id is not None
        return DispensingView(
            order_id=self.id,
            pharmacy_id=self.pharmacy_id,
            lines=tuple(self.lines),
            total_cents=self.total_cents,
            paid_at=self.paid_at,
            verified_by=self.verified_by,
        )


# The states in which an order has stock at its pharmacy: held for it, or sold to it.
HAS_STOCK: frozenset[ReservationState] = frozenset({"RESERVING", "RESERVED", "PAID", "DISPENSED", "SOLD"})


def give_back(pharmacy: Pharmacy, reservation: Reservation) -> None:
    """What an order's end does to its stock at the pharmacy, by how far the order got: a hold (reserved
    or paid) goes back on the shelf; a legacy sale goes back on the shelf; a dispensed order's stock is
    counted as returned, never to be sold again. Each at most once."""
    if reservation.state in ("RESERVING", "RESERVED", "PAID"):
        pharmacy.release(reservation.id)
    elif reservation.state == "SOLD":
        pharmacy.take_back(reservation.id, reservation.lines)
    elif reservation.state == "DISPENSED":
        pharmacy.take_in_return(reservation.id, reservation.lines)


def unpaid_reason(hold: timedelta) -> str:
    """Why a reservation expired, in the patient's words: "payment not received within 15 minutes"."""
    seconds = hold.total_seconds()
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"payment not received within {count} {unit}{'s' if count != 1 else ''}"
    return f"payment not received within {seconds:g} second{'s' if seconds != 1 else ''}"


def distance_km(a: Location, b: Location) -> float:
    """Great-circle distance (haversine): the store has no geo index we can rely on."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def merge_lines(lines: Iterable[PrescribedLine]) -> dict[str, int]:
    """Quantities per medication: a prescription may name one medication on two lines."""
    wanted: Counter[str] = Counter()
    for line in lines:
        wanted[line.medication_id] += line.quantity
    return dict(wanted)


@dataclass(frozen=True)
class Fees:
    """What an order costs beyond its lines: a service fee, and delivery priced on the distance."""

    service_cents: int
    delivery_base_cents: int
    delivery_per_km_cents: int

    def delivery_cents(self, km: float) -> int:
        """The base, and the rate for every started kilometre from the pharmacy to the patient."""
        # To the metre first: a float a hair over a whole kilometre is not another one started.
        return self.delivery_base_cents + self.delivery_per_km_cents * math.ceil(round(km, 3))


@dataclass(frozen=True)
class Plan:
    pharmacy: Pharmacy
    lines: list[ReservedLine]
    service_fee_cents: int
    delivery_fee_cents: int

    @property
    def lines_cents(self) -> int:
        return sum(line.quantity * line.unit_price_cents for line in self.lines)

    @property
    def total_cents(self) -> int:
        """What the card is authorised for: the lines and both fees."""
        return self.lines_cents + self.service_fee_cents + self.delivery_fee_cents


def priced_plan(pharmacy: Pharmacy, lines: Sequence[ReservedLine], destination: Location, fees: Fees) -> Plan:
    """The order served by this pharmacy, with its fees: delivery from the pharmacy to the patient."""
    return Plan(
        pharmacy=pharmacy,
        lines=list(lines),
        service_fee_cents=fees.service_cents,
        delivery_fee_cents=fees.delivery_cents(distance_km(pharmacy.location, destination)),
    )


def plan_reservation(
    lines: Sequence[PrescribedLine],
    destination: Location,
    pharmacies: Sequence[Pharmacy],
    catalogue: Mapping[str, Medication],
    *,
    radius_km: float,
    fees: Fees,
    exclude: frozenset[str] = frozenset(),
    verified: bool = False,
) -> Plan | list[LineShortage]:
    """The nearest pharmacy within the radius that has every line, priced with its fees, or why each
    short line is short.

    A prescription-only line is never held for an order whose prescription no pharmacist verified,
    whatever the order says of its lines: the catalogue decides what is prescription-only.
    """
    wanted = merge_lines(lines)
    shortages = [
        LineShortage(
            medication_id=m, requested=q, best_available=0, reason=_catalogue_problem(catalogue.get(m))
        )
        for m, q in wanted.items()
        if catalogue.get(m) is None or catalogue[m].discontinued
    ] + [
        LineShortage(medication_id=m, requested=q, best_available=0, reason=UNVERIFIED)
        for m, q in wanted.items()
        if not verified
        and (medication := catalogue.get(m)) is not None
        and not medication.discontinued
        and medication.prescription_only
    ]
    if shortages:
        return shortages
    # A pharmacy excluded after a failed hold can serve nothing: it must not count towards a shortage.
    nearby = sorted(
        (p for p in pharmacies if p.id not in exclude and distance_km(p.location, destination) <= radius_km),
        key=lambda p: (distance_km(p.location, destination), p.id),
    )
    for pharmacy in nearby:
        if all(pharmacy.available(m) >= q for m, q in wanted.items()):
            priced = [
                ReservedLine(medication_id=m, quantity=q, unit_price_cents=catalogue[m].price_cents)
                for m, q in wanted.items()
            ]
            return priced_plan(pharmacy, priced, destination, fees)
    return [
        _shortage(m, q, nearby, radius_km)
        for m, q in wanted.items()
        if not any(p.available(m) >= q for p in nearby)
    ] or [_split_shortage(wanted, radius_km)]


def quote(
    lines: Sequence[PrescribedLine],
    destination: Location,
    pharmacies: Sequence[Pharmacy],
    catalogue: Mapping[str, Medication],
    *,
    radius_km: float,
    fees: Fees,
) -> OrderQuote:
    """What the lines would cost if their stock were reserved now: the plan a reservation would make,
    priced, or the catalogue's prices and why no pharmacy can serve them.

    Priced as if verified: a quote is about price and stock, and the pharmacist's check comes after
    it; the reservation itself still holds no prescription-only line of an unverified order.
    """
    wanted = merge_lines(lines)
    known = [catalogue[m] for m in wanted if m in catalogue and not catalogue[m].discontinued]
    medications = tuple(m.view() for m in known)
    outcome = plan_reservation(
        lines, destination, pharmacies, catalogue, radius_km=radius_km, fees=fees, verified=True
    )
    if isinstance(outcome, Plan):
        return OrderQuote(
            medications=medications,
            pharmacy_id=outcome.pharmacy.id,
            distance_km=round(distance_km(outcome.pharmacy.location, destination), 3),
            lines=tuple(outcome.lines),
            service_fee_cents=outcome.service_fee_cents,
            delivery_fee_cents=outcome.delivery_fee_cents,
            total_cents=outcome.total_cents,
        )
    return OrderQuote(
        medications=medications,
        lines=tuple(
            ReservedLine(medication_id=m.id, quantity=wanted[m.id], unit_price_cents=m.price_cents)
            for m in known
        ),
        service_fee_cents=fees.service_cents,
        shortages=tuple(outcome),
    )


UNVERIFIED = "prescription-only: the prescription was not verified by a pharmacist"


def _catalogue_problem(medication: Medication | None) -> str:
    return "not in the catalogue" if medication is None else "discontinued"


def _shortage(
    medication_id: str, requested: int, nearby: Sequence[Pharmacy], radius_km: float
) -> LineShortage:
    best = max((p.available(medication_id) for p in nearby), default=0)
    reason = (
        f"no pharmacy within {radius_km:g} km has it in stock"
        if best == 0
        else f"at most {best} available at one pharmacy within {radius_km:g} km"
    )
    return LineShortage(medication_id=medication_id, requested=requested, best_available=best, reason=reason)


def _split_shortage(wanted: Mapping[str, int], radius_km: float) -> LineShortage:
    # Every line is in stock somewhere, but no single pharmacy has them all.
    first = next(iter(wanted))
    return LineShortage(
        medication_id=first,
        requested=wanted[first],
        best_available=0,
        reason=f"no single pharmacy within {radius_km:g} km has every line of the prescription",
    )


def availability(
    medication_id: str, pharmacies: Iterable[Pharmacy], near: Location | None
) -> list[AvailabilityView]:
    """Pharmacies that have the medication on the shelf, nearest first when a location is given."""
    views = [
        AvailabilityView(
            pharmacy_id=p.id,
            pharmacy_name=p.name,
            address=p.address,
            location=p.location,
            quantity=p.available(medication_id),
            distance_km=round(distance_km(p.location, near), 3) if near else None,
        )
        for p in pharmacies
        if p.available(medication_id) > 0
    ]
    return sorted(views, key=lambda v: (v.distance_km or 0.0, v.pharmacy_name))
