"""RPC commands the gateway sends, and the views services answer with.

`owner_id` on a query is the scope the gateway has already decided: set, the service answers only
about that user's records (another's id is `not_found`); None, the caller is staff and sees all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import Command, Frozen
from contracts.codes import Code, Schedule
from contracts.events import LineShortage, Location, PrescribedLine, ReservedLine


class Ping(Command):
    TYPE = "Ping"


class SweepOutbox(Command):
    """A service's note to itself: publish what its outboxes still hold.

    Queued on the service's first partition, so one replica sweeps at a time. Clearing an outbox entry
    is one single-document update, atomic beside a handler writing the same document. Every service
    takes it; nobody answers it.
    """

    TYPE = "SweepOutbox"
    WRITE = True
    # Only events that waited longer than this: younger ones are the fast path's.
    older_than_seconds: float = Field(default=0, ge=0)


class Page(Frozen):
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0)


# --- inventory_service ---------------------------------------------------------------------------


class CreatePharmacy(Command):
    TYPE = "CreatePharmacy"
    WRITE = True
    name: str
    address: str
    location: Location
    # The pharmacist opening it, who becomes its first staff member; None when an admin opens it.
    founder_id: str | None = None


class ListPharmacies(Command):
    TYPE = "ListPharmacies"
    page: Page = Page()


class PharmacyView(Frozen):
    id: str
    name: str
    address: str
    location: Location


# Every write to the catalogue queues on one partition, so one writer checks and claims a medication's
# codes (unique across the catalogue, spread over many documents) with no other write in between.
CATALOGUE: Literal["catalogue"] = "catalogue"


class CreateMedication(Command):
    TYPE = "CreateMedication"
    WRITE = True
    PARTITION_BY = "catalogue"
    catalogue: Literal["catalogue"] = CATALOGUE
    name: str
    strength: str
    form: str
    price_cents: int = Field(gt=0)
    prescription_only: bool
    schedule: Schedule | None = None
    codes: tuple[Code, ...] = ()


class UpdateMedication(Command):
    """A change to a catalogue entry: a field left None stays as it is."""

    TYPE = "UpdateMedication"
    WRITE = True
    PARTITION_BY = "catalogue"
    catalogue: Literal["catalogue"] = CATALOGUE
    medication_id: str
    name: str | None = None
    strength: str | None = None
    form: str | None = None
    price_cents: int | None = Field(default=None, gt=0)
    prescription_only: bool | None = None
    # Whether `schedule` is part of the change: then its None means "no schedule", not "unchanged".
    sets_schedule: bool = False
    schedule: Schedule | None = None
    # The entry's codes, all of them (an empty tuple removes every code).
    codes: tuple[Code, ...] | None = None


class GetMedication(Command):
    TYPE = "GetMedication"
    medication_id: str


class ListMedications(Command):
    TYPE = "ListMedications"
    page: Page = Page()
    medication_ids: tuple[str, ...] | None = None
    # Only the medication carrying this code (a code names one medication in the catalogue).
    code: Code | None = None


class DiscontinueMedication(Command):
    TYPE = "DiscontinueMedication"
    WRITE = True
    PARTITION_BY = "catalogue"
    catalogue: Literal["catalogue"] = CATALOGUE
    medication_id: str


class MedicationView(Frozen):
    id: str
    name: str
    strength: str
    form: str
    price_cents: int
    prescription_only: bool
    # Defaults for a view from an inventory older than these fields.
    schedule: Schedule | None = None
    codes: tuple[Code, ...] = ()


class SetStock(Command):
    """Set a pharmacy's stock of a medication, as `actor_id` asks: only its staff or an admin may.

    Who asks travels with the command, so the pharmacy decides under its own lock: a pharmacist
    removed from its staff a moment before is refused (forbidden). Without an actor, nobody may.
    """

    TYPE = "SetStock"
    WRITE = True
    PARTITION_BY = "pharmacy_id"
    pharmacy_id: str
    medication_id: str
    quantity: int = Field(ge=0)
    actor_id: str | None = None
    actor_is_admin: bool = False


class AddPharmacyStaff(Command):
    """Put a pharmacist on a pharmacy's staff (the gateway has checked the user is a pharmacist)."""

    TYPE = "AddPharmacyStaff"
    WRITE = True
    # With the pharmacy's stock writes: a change of staff and a stock change it allows are ordered.
    PARTITION_BY = "pharmacy_id"
    pharmacy_id: str
    user_id: str
    actor_id: str | None = None


class RemovePharmacyStaff(Command):
    TYPE = "RemovePharmacyStaff"
    WRITE = True
    PARTITION_BY = "pharmacy_id"
    pharmacy_id: str
    user_id: str
    actor_id: str | None = None


class ListPharmacyStaff(Command):
    TYPE = "ListPharmacyStaff"
    pharmacy_id: str


class PharmacyStaffView(Frozen):
    pharmacy_id: str
    # User ids, in the order they joined.
    staff: tuple[str, ...]


class StockView(Frozen):
    pharmacy_id: str
    medication_id: str
    quantity: int
    reserved: int
    sold: int


class GetAvailability(Command):
    TYPE = "GetAvailability"
    medication_id: str
    near: Location | None = None


class AvailabilityView(Frozen):
    pharmacy_id: str
    pharmacy_name: str
    address: str
    location: Location
    quantity: int
    distance_km: float | None = None


# --- payment_service -----------------------------------------------------------------------------


class AddPaymentMethod(Command):
    TYPE = "AddPaymentMethod"
    WRITE = True
    PARTITION_BY = "owner_id"
    owner_id: str
    card_number: str
    exp_month: int
    exp_year: int
    cvc: str


class ListPaymentMethods(Command):
    TYPE = "ListPaymentMethods"
    owner_id: str


class GetPaymentMethod(Command):
    TYPE = "GetPaymentMethod"
    owner_id: str | None
    payment_method_id: str


class PaymentMethodView(Frozen):
    id: str
    owner_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    created_at: datetime


class ListPayments(Command):
    TYPE = "ListPayments"
    owner_id: str | None
    page: Page = Page()


class GetPayment(Command):
    TYPE = "GetPayment"
    owner_id: str | None
    payment_id: str


class HidePayment(Command):
    TYPE = "HidePayment"
    WRITE = True
    PARTITION_BY = "payment_id"
    payment_id: str
    hidden_by: str


PaymentStatus = Literal["APPROVED", "DECLINED", "REFUNDED"]


class PaymentView(Frozen):
    id: str
    order_id: str
    patient_id: str
    payment_method_id: str
    amount_cents: int
    status: PaymentStatus
    brand: str
    last4: str
    decline_reason: str | None = None
    created_at: datetime
    refunded_at: datetime | None = None


# --- prescription_service ------------------------------------------------------------------------


class UploadPrescription(Command):
    TYPE = "UploadPrescription"
    WRITE = True
    patient_id: str
    lines: tuple[PrescribedLine, ...] = Field(min_length=1, max_length=50)
    delivery_location: Location
    payment_method_id: str


class ListPrescriptions(Command):
    TYPE = "ListPrescriptions"
    owner_id: str | None
    page: Page = Page()


class GetPrescription(Command):
    TYPE = "GetPrescription"
    owner_id: str | None
    prescription_id: str


class WithdrawPrescription(Command):
    TYPE = "WithdrawPrescription"
    WRITE = True
    PARTITION_BY = "prescription_id"
    owner_id: str | None
    prescription_id: str


class PrescriptionView(Frozen):
    id: str
    patient_id: str
    order_id: str
    lines: tuple[PrescribedLine, ...]
    delivery_location: Location
    payment_method_id: str
    status: str
    uploaded_at: datetime


# --- order_service -------------------------------------------------------------------------------


OrderStatus = Literal["PENDING", "STOCK_RESERVED", "CONFIRMED", "REJECTED", "CANCELLED"]


class ListOrders(Command):
    TYPE = "ListOrders"
    owner_id: str | None
    # Only orders in this status (couriers list the CONFIRMED ones, waiting for delivery).
    status: OrderStatus | None = None
    page: Page = Page()


class GetOrder(Command):
    TYPE = "GetOrder"
    owner_id: str | None
    order_id: str


class CancelOrder(Command):
    TYPE = "CancelOrder"
    WRITE = True
    PARTITION_BY = "order_id"
    owner_id: str | None
    order_id: str
    reason: str = "cancelled by the customer"


class StatusChange(Frozen):
    status: OrderStatus
    at: datetime
    reason: str | None = None


class OrderView(Frozen):
    id: str
    prescription_id: str
    patient_id: str
    pharmacy_id: str | None
    status: OrderStatus
    lines: tuple[PrescribedLine, ...]
    priced_lines: tuple[ReservedLine, ...] = ()
    total_cents: int | None
    shortages: tuple[LineShortage, ...] = ()
    refunded_cents: int = 0
    history: tuple[StatusChange, ...]
    created_at: datetime
    # Where the medicine goes. None only from a service older than this field.
    delivery_location: Location | None = None
