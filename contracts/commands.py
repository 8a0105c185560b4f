"""RPC commands the gateway sends, and the views services answer with.

`owner_id` on a query is the scope the gateway has already decided: set, the service answers only
about that user's records (another's id is `not_found`); None, the caller is staff and sees all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import Command, Frozen
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


class ListPharmacies(Command):
    TYPE = "ListPharmacies"
    page: Page = Page()


class PharmacyView(Frozen):
    id: str
    name: str
    address: str
    location: Location


class CreateMedication(Command):
    TYPE = "CreateMedication"
    WRITE = True
    name: str
    strength: str
    form: str
    price_cents: int = Field(gt=0)
    prescription_only: bool


class UpdateMedication(Command):
    TYPE = "UpdateMedication"
    WRITE = True
    PARTITION_BY = "medication_id"
    medication_id: str
    name: str | None = None
    strength: str | None = None
    form: str | None = None
    price_cents: int | None = Field(default=None, gt=0)
    prescription_only: bool | None = None


class GetMedication(Command):
    TYPE = "GetMedication"
    medication_id: str


class ListMedications(Command):
    TYPE = "ListMedications"
    page: Page = Page()
    medication_ids: tuple[str, ...] | None = None


class DiscontinueMedication(Command):
    TYPE = "DiscontinueMedication"
    WRITE = True
    PARTITION_BY = "medication_id"
    medication_id: str


class MedicationView(Frozen):
    id: str
    name: str
    strength: str
    form: str
    price_cents: int
    prescription_only: bool


class SetStock(Command):
    TYPE = "SetStock"
    WRITE = True
    PARTITION_BY = "pharmacy_id"
    pharmacy_id: str
    medication_id: str
    quantity: int = Field(ge=0)


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
