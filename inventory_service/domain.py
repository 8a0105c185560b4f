"""Stock rules: where an order can be served and what it costs, holding and releasing stock. No I/O."""

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
from contracts.commands import AvailabilityView, MedicationView, PharmacyView, StockView
from contracts.events import (
    LineShortage,
    Location,
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
    """Only a pharmacy's own staff, or an admin, may change its stock."""


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
    # Orders whose sold stock came back (cancelled after a late payment): guards against doing it twice.
    returns: list[str] = []
    # Its pharmacists' user ids, in the order they joined: who may change its stock, besides admins.
    staff: list[str] = []
    created_at: datetime

    def available(self, medication_id: str) -> int:
        level = self.stock.get(medication_id)
        return level.available if level else 0

    def set_available(self, medication_id: str, quantity: int) -> None:
        self.stock.setdefault(medication_id, StockLevel()).available = quantity

    def restock(
        self, medication_id: str, quantity: int, *, actor_id: str | None, actor_is_admin: bool
    ) -> None:
        """Set the units for sale of a medication, as its staff or an admin asks; anyone else is refused."""
        if not actor_is_admin and (actor_id is None or actor_id not in self.staff):
            raise NotOnStaff(f"only the staff of pharmacy {self.id} or an admin may change its stock")
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
        """The order is paid: its held stock is sold."""
        hold = self.holds.pop(order_id, None)
        for line in hold.lines if hold else ():
            level = self.stock[line.medication_id]
            level.reserved -= line.quantity
            level.sold += line.quantity

    def take_back(self, order_id: str, lines: Sequence[ReservedLine]) -> None:
        """Sold stock of an order cancelled after payment returns to the shelf, once."""
        if order_id in self.returns:
            return
        for line in lines:
            level = self.stock[line.medication_id]
            level.sold -= line.quantity
            level.available += line.quantity
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
        )


def open_pharmacy(
    pharmacy_id: str, name: str, address: str, location: Location, *, founder_id: str | None, now: datetime
) -> tuple[Pharmacy, list[Event]]:
    """A new pharmacy; the pharmacist who opens it is its first staff member (an admin opening it is not)."""
    pharmacy = Pharmacy(id=pharmacy_id, name=name, address=address, location=location, created_at=now)
    events = [] if founder_id is None else pharmacy.add_staff(founder_id, added_by=founder_id)
    return pharmacy, events


# EXPIRED: held for the order but not paid for in time; the stock went back and will not be sold.
ReservationState = Literal["RESERVING", "RESERVED", "FAILED", "SOLD", "RELEASED", "RETURNED", "EXPIRED"]


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
