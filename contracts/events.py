"""Domain events of the pharmacy saga. Money is in integer cents; ids are strings (UUIDs)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from contracts.base import Event, Frozen, Timer
from contracts.codes import Schedule

# A controlled substance's schedule (US CSA numbering); None on a medication that is not controlled.
# Where a prescription came from: lines typed by the patient (perhaps beside a scan), or a FHIR document.
PrescriptionSource = Literal["typed", "fhir"]
# Why a pharmacist refused a prescription, coded so it can be counted and acted on.
RejectionReason = Literal[
    "ILLEGIBLE",
    "EXPIRED",
    "NOT_A_PRESCRIPTION",
    "PRESCRIBER_UNVERIFIED",
    "PATIENT_MISMATCH",
    "CLINICAL_CONCERN",
    "CONTROLLED_SUBSTANCE_RULES",
    "OTHER",
]


class Location(Frozen):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class PrescribedLine(Frozen):
    medication_id: str
    quantity: int = Field(gt=0, le=1000)
    # What the catalogue said of the medication when the line was taken (defaults: events from before).
    prescription_only: bool = False
    schedule: Schedule | None = None


class DeliveryWindow(Frozen):
    """When the patient wants the medicine brought: a courier arrives between start and end."""

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("a delivery window ends after it starts")
        return self


# How a delivery is proven: a 4-digit PIN the patient tells the courier (controlled drugs, orders over
# a set value), or the name of whoever took it.
ProofKind = Literal["PIN", "NAME"]
# Why a courier could not hand an order over, coded so it can be counted and acted on.
DeliveryFailure = Literal["NO_ONE_HOME", "WRONG_ADDRESS", "REFUSED", "ID_CHECK_FAILED", "OTHER"]


class Prescriber(Frozen):
    name: str | None = None
    licence_number: str | None = None


class ReservedLine(Frozen):
    medication_id: str
    quantity: int
    unit_price_cents: int


class LineShortage(Frozen):
    """Why one prescribed line could not be reserved."""

    medication_id: str
    requested: int
    best_available: int
    reason: str


class PrescriptionUploaded(Event):
    TYPE = "PrescriptionUploaded"
    ROUTING_KEY = "prescription.uploaded"

    prescription_id: str
    order_id: str
    patient_id: str
    lines: tuple[PrescribedLine, ...]
    delivery_location: Location
    payment_method_id: str
    # What the prescription itself says (defaults: events from before verification existed).
    source: PrescriptionSource = "typed"
    document_id: str | None = None
    issued_on: date | None = None
    valid_until: date | None = None
    repeats_allowed: int = 0
    prescriber: Prescriber | None = None
    delivery_window: DeliveryWindow | None = None


class PrescriptionWithdrawn(Event):
    TYPE = "PrescriptionWithdrawn"
    ROUTING_KEY = "prescription.withdrawn"

    prescription_id: str
    order_id: str
    patient_id: str


class PrescriptionVerified(Event):
    """A pharmacist approved the prescription, perhaps with corrected lines: its order may go on."""

    TYPE = "PrescriptionVerified"
    ROUTING_KEY = "prescription.verified"

    prescription_id: str
    order_id: str
    patient_id: str
    pharmacist_id: str
    lines: tuple[PrescribedLine, ...]
    note: str | None = None


class PrescriptionRejected(Event):
    """A pharmacist refused the prescription, with a coded reason: its order is rejected."""

    TYPE = "PrescriptionRejected"
    ROUTING_KEY = "prescription.rejected"

    prescription_id: str
    order_id: str
    patient_id: str
    pharmacist_id: str
    reason: RejectionReason
    note: str | None = None


class PrescriptionHeld(Event):
    """A pharmacist asked the patient a question: the prescription waits for the answer."""

    TYPE = "PrescriptionHeld"
    ROUTING_KEY = "prescription.held"

    prescription_id: str
    order_id: str
    patient_id: str
    pharmacist_id: str
    question: str


class PrescriptionAnswered(Event):
    """The patient answered the pharmacist's question: the prescription is back in the queue."""

    TYPE = "PrescriptionAnswered"
    ROUTING_KEY = "prescription.answered"

    prescription_id: str
    order_id: str
    patient_id: str
    answer: str


class PrescriptionRefilled(Event):
    """A verified prescription with repeats left is filled again: a new order, no new verification."""

    TYPE = "PrescriptionRefilled"
    ROUTING_KEY = "prescription.refilled"

    prescription_id: str
    order_id: str  # the refill's own order
    patient_id: str
    lines: tuple[PrescribedLine, ...]
    delivery_location: Location
    payment_method_id: str
    verified_by: str | None
    refill: int  # 1 for the first refill after the first fill


class OrderCreated(Event):
    TYPE = "OrderCreated"
    ROUTING_KEY = "order.created"

    order_id: str
    prescription_id: str
    patient_id: str
    lines: tuple[PrescribedLine, ...]
    delivery_location: Location
    payment_method_id: str
    # The pharmacist who verified the prescription; None when no line needed one (or from before).
    verified_by: str | None = None
    delivery_window: DeliveryWindow | None = None


class StockReserved(Event):
    TYPE = "StockReserved"
    ROUTING_KEY = "stock.reserved"

    order_id: str
    patient_id: str
    pharmacy_id: str
    lines: tuple[ReservedLine, ...]
    # The lines' prices plus both fees: what is authorised on the card.
    total_cents: int
    payment_method_id: str
    service_fee_cents: int = 0
    delivery_fee_cents: int = 0


class StockReservationFailed(Event):
    TYPE = "StockReservationFailed"
    ROUTING_KEY = "stock.reservation_failed"

    order_id: str
    shortages: tuple[LineShortage, ...]


class ReservationDeadline(Timer):
    """Inventory's note to itself, due when a reservation's hold runs out (its id is the order's)."""

    TYPE = "ReservationDeadline"
    ROUTING_KEY = "stock.reservation_deadline"

    reservation_id: str
    order_id: str
    pharmacy_id: str


class ReservationExpired(Event):
    """Stock held for an order was not paid for in time: it is back on the shelf and will not be sold."""

    TYPE = "ReservationExpired"
    ROUTING_KEY = "stock.reservation_expired"

    reservation_id: str
    order_id: str
    pharmacy_id: str
    reason: str


class PaymentApproved(Event):
    """The card was authorised for the amount: nothing is taken until the courier picks the order up
    (PaymentCaptured). Before authorisations (events from before), it was charged at once."""

    TYPE = "PaymentApproved"
    ROUTING_KEY = "payment.approved"

    payment_id: str
    order_id: str
    patient_id: str
    amount_cents: int


class PaymentDeclined(Event):
    TYPE = "PaymentDeclined"
    ROUTING_KEY = "payment.declined"

    payment_id: str
    order_id: str
    patient_id: str
    amount_cents: int
    reason: str


class PaymentRefunded(Event):
    TYPE = "PaymentRefunded"
    ROUTING_KEY = "payment.refunded"

    payment_id: str
    order_id: str
    amount_cents: int
    reason: str


class OrderConfirmed(Event):
    TYPE = "OrderConfirmed"
    ROUTING_KEY = "order.confirmed"

    order_id: str
    prescription_id: str
    patient_id: str
    pharmacy_id: str
    total_cents: int


class OrderRejected(Event):
    TYPE = "OrderRejected"
    ROUTING_KEY = "order.rejected"

    order_id: str
    prescription_id: str
    patient_id: str
    reason: str


class OrderCancelled(Event):
    TYPE = "OrderCancelled"
    ROUTING_KEY = "order.cancelled"

    order_id: str
    prescription_id: str
    patient_id: str
    reason: str


class OrderReturned(Event):
    """The order came back undelivered (its delivery's last attempt failed): refunded, not filled."""

    TYPE = "OrderReturned"
    ROUTING_KEY = "order.returned"

    order_id: str
    prescription_id: str
    patient_id: str
    reason: str


class PharmacyStaffAdded(Event):
    """A pharmacist joined a pharmacy's staff: from now on they may change its stock."""

    TYPE = "PharmacyStaffAdded"
    ROUTING_KEY = "pharmacy.staff_added"

    pharmacy_id: str
    user_id: str
    # Who added them: an admin, or the pharmacist themself, on opening the pharmacy.
    added_by: str | None


class PharmacyStaffRemoved(Event):
    """A pharmacist left a pharmacy's staff: they may no longer change its stock."""

    TYPE = "PharmacyStaffRemoved"
    ROUTING_KEY = "pharmacy.staff_removed"

    pharmacy_id: str
    user_id: str
    removed_by: str | None


# --- after payment: dispensing, delivery, money taken ----------------------------------------------


class OrderDispensed(Event):
    """A pharmacist of the pharmacy made the final check and packed the order: its stock is sold."""

    TYPE = "OrderDispensed"
    ROUTING_KEY = "stock.dispensed"

    order_id: str
    pharmacy_id: str
    pharmacist_id: str
    lines: tuple[ReservedLine, ...]
    # Where the courier collects it.
    pharmacy_location: Location


class OrderReadyForPickup(Event):
    """The order waits at its pharmacy for a courier: everything delivery needs, in one fact."""

    TYPE = "OrderReadyForPickup"
    ROUTING_KEY = "order.ready_for_pickup"

    order_id: str
    patient_id: str
    pharmacy_id: str
    pharmacy_location: Location
    delivery_location: Location
    delivery_window: DeliveryWindow | None = None
    total_cents: int
    # A controlled drug is among its lines: the hand-over needs the patient's PIN.
    controlled: bool


class DeliveryAssigned(Event):
    TYPE = "DeliveryAssigned"
    ROUTING_KEY = "delivery.assigned"

    delivery_id: str
    order_id: str
    courier_id: str
    eta: datetime
    proof: ProofKind


class DeliveryUnassigned(Event):
    """Its courier went off duty before collecting it: it waits for another courier (attempts kept)."""

    TYPE = "DeliveryUnassigned"
    ROUTING_KEY = "delivery.unassigned"

    delivery_id: str
    order_id: str
    courier_id: str
    reason: str


class DeliveryPickedUp(Event):
    """The courier has the order: the payment is captured now."""

    TYPE = "DeliveryPickedUp"
    ROUTING_KEY = "delivery.picked_up"

    delivery_id: str
    order_id: str
    courier_id: str
    eta: datetime


class DeliveryCompleted(Event):
    TYPE = "DeliveryCompleted"
    ROUTING_KEY = "delivery.completed"

    delivery_id: str
    order_id: str
    courier_id: str
    proof: ProofKind
    # Who took it, as the courier recorded it (with a PIN proof too, when given).
    recipient_name: str | None = None


class DeliveryAttemptFailed(Event):
    TYPE = "DeliveryAttemptFailed"
    ROUTING_KEY = "delivery.attempt_failed"

    delivery_id: str
    order_id: str
    courier_id: str
    reason: DeliveryFailure
    note: str | None = None
    attempt: int  # 1 for the first failed attempt
    # Another attempt follows; otherwise DeliveryReturned comes next.
    retrying: bool


class DeliveryReturned(Event):
    """After its last failed attempt the order went back to its pharmacy: refunded, not resold."""

    TYPE = "DeliveryReturned"
    ROUTING_KEY = "delivery.returned"

    delivery_id: str
    order_id: str
    pharmacy_id: str
    reason: str


class CourierFree(Event):
    """A courier is free (on duty, nothing in hand) where they are: they came free, or moved far enough
    to reach other pharmacies. delivery_service's own wake-up: it gives them a delivery waiting within
    reach, also when the write that freed them lost its follow-up (see delivery_service/handlers.py)."""

    TYPE = "CourierFree"
    ROUTING_KEY = "courier.free"

    courier_id: str
    location: Location


class PaymentCaptured(Event):
    """The authorised amount was taken from the card (when the courier picked the order up)."""

    TYPE = "PaymentCaptured"
    ROUTING_KEY = "payment.captured"

    payment_id: str
    order_id: str
    amount_cents: int


class PaymentVoided(Event):
    """The authorisation was released before anything was taken: the patient was never charged."""

    TYPE = "PaymentVoided"
    ROUTING_KEY = "payment.voided"

    payment_id: str
    order_id: str
    amount_cents: int
    reason: str


ALL_EVENTS: tuple[type[Event], ...] = (
    PrescriptionUploaded,
    PrescriptionWithdrawn,
    OrderCreated,
    StockReserved,
    StockReservationFailed,
    ReservationDeadline,
    ReservationExpired,
    PaymentApproved,
    PaymentDeclined,
    PaymentRefunded,
    OrderConfirmed,
    OrderRejected,
    OrderCancelled,
    OrderReturned,
    PharmacyStaffAdded,
    PharmacyStaffRemoved,
    PrescriptionVerified,
    PrescriptionRejected,
    PrescriptionHeld,
    PrescriptionAnswered,
    PrescriptionRefilled,
    OrderDispensed,
    OrderReadyForPickup,
    DeliveryAssigned,
    DeliveryUnassigned,
    DeliveryPickedUp,
    DeliveryCompleted,
    DeliveryAttemptFailed,
    DeliveryReturned,
    CourierFree,
    PaymentCaptured,
    PaymentVoided,
)
