"""RPC commands the gateway sends, and the views services answer with.

`owner_id` on a query is the scope the gateway has already decided: set, the service answers only
about that user's records (another's id is `not_found`); None, the caller is staff and sees all.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from contracts.base import Command, Frozen
from contracts.codes import Code, Schedule
from contracts.documents import ScanDraftView
from contracts.events import (
    DeliveryFailure,
    DeliveryWindow,
    LineShortage,
    Location,
    PrescribedLine,
    Prescriber,
    PrescriptionSource,
    ProofKind,
    RejectionReason,
    ReservedLine,
)


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
    # Only these (a courier's page names the pharmacies of its deliveries in one question).
    pharmacy_ids: tuple[str, ...] | None = Field(default=None, max_length=200)
    # Only the pharmacies whose staff this user is on (a pharmacist's own).
    staff_member: str | None = None


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
    # Only those whose name starts with this, case aside (a search as one types).
    name_prefix: str | None = Field(default=None, min_length=1, max_length=100)


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


class QuoteLine(Frozen):
    medication_id: str
    quantity: int = Field(gt=0, le=1000)


class QuoteOrder(Command):
    """What these lines would cost brought to this place now: priced at the pharmacy that would serve
    them if their stock were reserved at this moment (the nearest within reach with every line), with
    both fees. Nothing is held: the order's price is fixed when its stock is reserved."""

    TYPE = "QuoteOrder"
    lines: tuple[QuoteLine, ...] = Field(min_length=1, max_length=50)
    destination: Location


class OrderQuote(Frozen):
    # The lines' medications as the catalogue has them (unknown and discontinued ones left out).
    medications: tuple[MedicationView, ...]
    # None when no pharmacy within reach has every line now: `shortages` says why.
    pharmacy_id: str | None = None
    distance_km: float | None = None
    # Each medication once, its quantities added up, at the catalogue's price.
    lines: tuple[ReservedLine, ...] = ()
    service_fee_cents: int = 0
    delivery_fee_cents: int | None = None
    total_cents: int | None = None
    shortages: tuple[LineShortage, ...] = ()


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
    # Dispensed, then brought back (a failed delivery, a cancel after dispensing): never sold again.
    returned: int = 0


class GetStock(Command):
    """A medication's stock at a pharmacy, for its staff or an admin: for sale, held, sold, returned."""

    TYPE = "GetStock"
    pharmacy_id: str
    medication_id: str
    actor_id: str
    actor_is_admin: bool = False


class ListStock(Command):
    """Every medication a pharmacy has stock of (for sale, held, sold, returned), for its staff or an
    admin, by medication id."""

    TYPE = "ListStock"
    pharmacy_id: str
    actor_id: str
    actor_is_admin: bool = False
    page: Page = Page()


class DispenseOrder(Command):
    """A pharmacist of the order's pharmacy (or an admin) made the final check: its stock is sold."""

    TYPE = "DispenseOrder"
    WRITE = True
    # In order with the order's events at inventory (its payment, its cancel).
    PARTITION_BY = "order_id"
    order_id: str
    actor_id: str
    actor_is_admin: bool = False


class ListDispensingQueue(Command):
    """The paid orders waiting at a pharmacy for their final check, oldest first (its staff, admins)."""

    TYPE = "ListDispensingQueue"
    pharmacy_id: str
    actor_id: str
    actor_is_admin: bool = False
    page: Page = Page()


class DispensingView(Frozen):
    order_id: str
    pharmacy_id: str
    lines: tuple[ReservedLine, ...]
    total_cents: int
    paid_at: datetime | None
    # The pharmacist who verified its prescription-only lines; None when none needed it.
    verified_by: str | None = None


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


class RemovePaymentMethod(Command):
    """The patient removes a card: never offered or charged again; payments already made on it stay."""

    TYPE = "RemovePaymentMethod"
    WRITE = True
    # The owner's partition, as AddPaymentMethod's: one writer for a patient's cards.
    PARTITION_BY = "owner_id"
    owner_id: str
    payment_method_id: str


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


# AUTHORISED: held on the card, nothing taken; CAPTURED: taken (at pickup); VOIDED: the hold released,
# never charged; REFUNDED: taken, then given back. APPROVED: charged at once, before authorisations.
PaymentStatus = Literal["AUTHORISED", "CAPTURED", "VOIDED", "APPROVED", "DECLINED", "REFUNDED"]


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
    # When the courier's pickup took the authorised amount, and when a hold was released instead.
    captured_at: datetime | None = None
    voided_at: datetime | None = None


# --- prescription_service ------------------------------------------------------------------------


class UploadPrescription(Command):
    TYPE = "UploadPrescription"
    WRITE = True
    patient_id: str
    # Each line classified by the gateway from the catalogue (prescription_only, schedule).
    lines: tuple[PrescribedLine, ...] = Field(min_length=1, max_length=50)
    delivery_location: Location
    payment_method_id: str
    # The scan the lines were read from, if any: a prescription-only line needs it (or a FHIR source).
    document_id: str | None = Field(default=None, max_length=64)
    issued_on: date | None = None
    valid_until: date | None = None
    repeats_allowed: int = Field(default=0, ge=0, le=99)
    prescriber: Prescriber | None = None
    delivery_window: DeliveryWindow | None = None


class CatalogueEntry(Frozen):
    """A medication a FHIR line may be matched to: by one of its codes, or by its name and strength."""

    id: str
    name: str
    strength: str
    form: str
    prescription_only: bool
    schedule: Schedule | None = None
    codes: tuple[Code, ...] = ()


class ImportFhirPrescription(Command):
    """A FHIR R4 MedicationRequest or Bundle, as the patient sent it, to be read into a prescription.

    The gateway cannot read FHIR (the reader is prescription_service's); it sends the catalogue's
    medications along, so the lines are matched without prescription_service asking inventory.
    """

    TYPE = "ImportFhirPrescription"
    WRITE = True
    patient_id: str
    document: str = Field(max_length=1_000_000)
    delivery_location: Location
    payment_method_id: str
    catalogue: tuple[CatalogueEntry, ...]


class ApprovePrescription(Command):
    TYPE = "ApprovePrescription"
    WRITE = True
    PARTITION_BY = "prescription_id"
    prescription_id: str
    pharmacist_id: str
    pharmacist_role: str
    # The pharmacist's corrections, classified from the catalogue like an upload's; None keeps the lines.
    lines: tuple[PrescribedLine, ...] | None = Field(default=None, min_length=1, max_length=50)
    note: str | None = Field(default=None, max_length=2000)


class RejectPrescription(Command):
    TYPE = "RejectPrescription"
    WRITE = True
    PARTITION_BY = "prescription_id"
    prescription_id: str
    pharmacist_id: str
    pharmacist_role: str
    reason: RejectionReason
    note: str | None = Field(default=None, max_length=2000)


class HoldPrescription(Command):
    TYPE = "HoldPrescription"
    WRITE = True
    PARTITION_BY = "prescription_id"
    prescription_id: str
    pharmacist_id: str
    pharmacist_role: str
    question: str = Field(min_length=1, max_length=2000)


class AnswerPrescription(Command):
    TYPE = "AnswerPrescription"
    WRITE = True
    PARTITION_BY = "prescription_id"
    owner_id: str
    prescription_id: str
    answer: str = Field(min_length=1, max_length=2000)


class RefillPrescription(Command):
    """The patient asks for a refill; `request_id` mints the refill's order (a redelivery makes none)."""

    TYPE = "RefillPrescription"
    WRITE = True
    PARTITION_BY = "prescription_id"
    owner_id: str
    prescription_id: str
    delivery_location: Location
    payment_method_id: str


class RefillView(Frozen):
    prescription_id: str
    order_id: str
    refills_left: int


class ListVerificationQueue(Command):
    """Prescriptions waiting for a pharmacist, oldest first."""

    TYPE = "ListVerificationQueue"
    page: Page = Page()


class GetVerification(Command):
    """One prescription as the pharmacists' queue shows it (waiting, held or decided)."""

    TYPE = "GetVerification"
    prescription_id: str


class ListPrescriptions(Command):
    TYPE = "ListPrescriptions"
    owner_id: str | None
    page: Page = Page()


class GetPrescription(Command):
    TYPE = "GetPrescription"
    owner_id: str | None
    prescription_id: str


class GetPrescriptionDocument(Command):
    """The original document a prescription was taken from (a FHIR document as it was sent)."""

    TYPE = "GetPrescriptionDocument"
    owner_id: str | None
    prescription_id: str


class PrescriptionDocumentView(Frozen):
    media_type: str
    # A FHIR document's JSON as sent; a scanned one's bytes in base64 instead.
    content: str = ""
    content_base64: str | None = None


class WithdrawPrescription(Command):
    TYPE = "WithdrawPrescription"
    WRITE = True
    PARTITION_BY = "prescription_id"
    owner_id: str | None
    prescription_id: str


Decision = Literal["approved", "rejected", "held", "answered"]


class VerificationStep(Frozen):
    """One step of a prescription's verification: who, when, what and why."""

    decision: Decision
    by: str
    at: datetime
    reason: RejectionReason | None = None
    note: str | None = None
    question: str | None = None
    answer: str | None = None


class LineFlags(Frozen):
    """Why a pharmacist should look closely at one line (by its index in `lines`)."""

    line: int
    flags: tuple[str, ...]


class PrescriptionView(Frozen):
    id: str
    patient_id: str
    order_id: str
    lines: tuple[PrescribedLine, ...]
    delivery_location: Location
    payment_method_id: str
    status: str
    uploaded_at: datetime
    source: PrescriptionSource = "typed"
    document_id: str | None = None
    issued_on: date | None = None
    valid_until: date | None = None
    repeats_allowed: int = 0
    prescriber: Prescriber | None = None
    verified_by: str | None = None
    verified_at: datetime | None = None
    rejection_reason: RejectionReason | None = None
    question: str | None = None
    verification: tuple[VerificationStep, ...] = ()
    line_flags: tuple[LineFlags, ...] = ()
    refill_order_ids: tuple[str, ...] = ()
    # As the patient reads it: refills still allowed by its rules, and the last day it may be filled
    # (its valid_until, else six months after issue). None where the answer does not say.
    refills_left: int | None = None
    last_valid_day: date | None = None


class VerificationEntry(Frozen):
    """One prescription in the pharmacists' queue, with what they need beside it."""

    prescription: PrescriptionView
    # The patient's earlier prescriptions naming any of the same medications, newest first.
    earlier: tuple[PrescriptionView, ...] = ()
    # What was read from its scanned document, each line with its flags (a FHIR or typed one has none).
    draft: ScanDraftView | None = None


# --- order_service -------------------------------------------------------------------------------


OrderStatus = Literal[
    "PENDING",
    "STOCK_RESERVED",
    "CONFIRMED",
    "REJECTED",
    "CANCELLED",
    "AWAITING_VERIFICATION",
    # After payment (authorised): dispensed, carried, handed over or brought back.
    "READY_FOR_PICKUP",
    "OUT_FOR_DELIVERY",
    "DELIVERED",
    "DELIVERY_FAILED",
    "RETURNED",
]


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


class OrderDelivery(Frozen):
    """What the order knows of its delivery, from delivery_service's events (never the PIN)."""

    courier_id: str | None = None
    eta: datetime | None = None
    proof: ProofKind | None = None
    failed_attempts: int = 0
    last_failure: DeliveryFailure | None = None
    recipient_name: str | None = None
    delivered_at: datetime | None = None


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
    verified_by: str | None = None
    delivery_window: DeliveryWindow | None = None
    service_fee_cents: int = 0
    delivery_fee_cents: int = 0
    dispensed_by: str | None = None
    delivery: OrderDelivery | None = None
    # What was taken from the card (at pickup); authorised amounts are not taken until then.
    captured_cents: int = 0
    # order_service's own rules, for a client not to copy them: whether CancelOrder would be taken
    # now, and whether the order can still change. False from a service older than these fields.
    cancellable: bool = False
    ended: bool = False


# --- delivery_service ----------------------------------------------------------------------------

# WAITING_FOR_COURIER: ready at the pharmacy, no courier free within reach yet. ASSIGNED: a courier is
# on the way to the pharmacy. ATTEMPT_FAILED: the courier still has it, another attempt follows.
DeliveryStatus = Literal[
    "WAITING_FOR_COURIER",
    "ASSIGNED",
    "OUT_FOR_DELIVERY",
    "ATTEMPT_FAILED",
    "DELIVERED",
    "RETURNED",
    "CANCELLED",
]


class UpdateCourier(Command):
    """A courier says whether they take deliveries, and where they are."""

    TYPE = "UpdateCourier"
    WRITE = True
    PARTITION_BY = "courier_id"
    courier_id: str
    available: bool
    location: Location


class GetCourier(Command):
    """A courier's own state: whether they take deliveries, where they last said they were."""

    TYPE = "GetCourier"
    courier_id: str


class CourierView(Frozen):
    id: str
    available: bool
    location: Location
    # The delivery they carry now, if any.
    delivery_id: str | None = None
    updated_at: datetime


class ListDeliveries(Command):
    """A courier's deliveries (courier_id), or every one (None: admins, dispatch), newest first.

    Asked by a courier, an ended one comes without the patient's place, window, recipient's name and
    attempts' notes (delivery_service/domain.py, Delivery.view_for)."""

    TYPE = "ListDeliveries"
    courier_id: str | None
    status: DeliveryStatus | None = None
    page: Page = Page()


class GetDelivery(Command):
    """One delivery: its courier's, or anyone's (courier_id None: the gateway checked the caller).

    Its courier sees it as ListDeliveries shows it."""

    TYPE = "GetDelivery"
    delivery_id: str
    courier_id: str | None = None


class GetDeliveryPin(Command):
    """The PIN of an order's hand-over, for its patient only."""

    TYPE = "GetDeliveryPin"
    order_id: str
    patient_id: str


class DeliveryPinView(Frozen):
    order_id: str
    pin: str | None  # None: this delivery takes the recipient's name, no PIN


class PickUpDelivery(Command):
    TYPE = "PickUpDelivery"
    WRITE = True
    # A delivery's id is its order's: its commands queue in order with the order's events.
    PARTITION_BY = "delivery_id"
    delivery_id: str
    courier_id: str


class CompleteDelivery(Command):
    """Handed over, with the proof the delivery asks for: the patient's PIN, or the recipient's name."""

    TYPE = "CompleteDelivery"
    WRITE = True
    PARTITION_BY = "delivery_id"
    delivery_id: str
    courier_id: str
    pin: str | None = Field(default=None, max_length=8)
    recipient_name: str | None = Field(default=None, max_length=200)


class FailDelivery(Command):
    TYPE = "FailDelivery"
    WRITE = True
    PARTITION_BY = "delivery_id"
    delivery_id: str
    courier_id: str
    reason: DeliveryFailure
    note: str | None = Field(default=None, max_length=500)


class DeliveryAttemptView(Frozen):
    reason: DeliveryFailure
    note: str | None = None
    at: datetime


class DeliveryView(Frozen):
    id: str
    order_id: str
    status: DeliveryStatus
    pharmacy_id: str
    pickup_location: Location
    # None, with the window, the recipient's name and attempts' notes: an ended delivery, to its courier.
    delivery_location: Location | None
    delivery_window: DeliveryWindow | None = None
    courier_id: str | None = None
    eta: datetime | None = None
    proof: ProofKind
    attempts: tuple[DeliveryAttemptView, ...] = ()
    wrong_pins: int = 0
    recipient_name: str | None = None
    delivered_at: datetime | None = None
    created_at: datetime


# --- the journal (operations/journal.py): the operator's view of sagas and dead letters -------------

# Where a dead letter comes from: the service whose event queue failed it.
FailedService = Literal[
    "delivery_service", "inventory_service", "order_service", "payment_service", "prescription_service"
]


class GetSagaTimeline(Command):
    """One order's saga as the journal holds it: every event of its correlation id, in order."""

    TYPE = "GetSagaTimeline"
    order_id: str = Field(min_length=1, max_length=64)


class SagaStep(Frozen):
    event_id: str
    type: str
    occurred_at: datetime
    # Milliseconds since the step before (0 for the first).
    step_ms: int
    publisher: str
    detail: str


class SagaTimelineView(Frozen):
    order_id: str
    steps: tuple[SagaStep, ...]
    total_ms: int
    # The order's status when its saga ended (REJECTED, CANCELLED, DELIVERED, RETURNED), else None.
    ended: str | None
    # Not ended: what it waits for after its last event, when people move it on; None if nobody knows.
    waiting: str | None


class ListDeadLetters(Command):
    """What sits in the dead-letter queues: of one service, or of every one."""

    TYPE = "ListDeadLetters"
    service: FailedService | None = None


class DeadLetterView(Frozen):
    service: str
    message_id: str
    type: str
    error_type: str
    error: str
    failed_at: str
    attempts: int


class GetDeadLetter(Command):
    TYPE = "GetDeadLetter"
    service: FailedService
    message_id: str = Field(min_length=1, max_length=200)


class DeadLetterDetailView(DeadLetterView):
    headers: dict[str, Any]
    # The message as it was sent: its JSON when it is JSON, else its text.
    body: Any


class RedriveDeadLetters(Command):
    """Send dead letters back to the event queue of the service that failed them (or, dry run, only
    say which and where).

    Not WRITE: it changes no aggregate, only moves messages from a dead-letter queue back to the queue
    they came from (published with confirms before the dead letter is removed), so it needs no place
    among a service's events; the journal process answers it on its RPC queue.
    """

    TYPE = "RedriveDeadLetters"
    service: FailedService | None = None
    # Only these messages; every one of the chosen service(s) when empty.
    message_ids: tuple[str, ...] = Field(default=(), max_length=1000)
    dry_run: bool = True


class RedrivenView(Frozen):
    service: str
    message_id: str
    # The queue it was (or would be) sent back to.
    queue: str


class NotRedrivenView(RedrivenView):
    # Why it was not sent back; it is still a dead letter.
    reason: str


class RedriveView(Frozen):
    dry_run: bool
    redriven: tuple[RedrivenView, ...]
    # Message ids asked for that no dead-letter queue held.
    not_found: tuple[str, ...] = ()
    # Found but not sent back (each says why): they stay dead letters. Those in `redriven` were sent.
    failed: tuple[NotRedrivenView, ...] = ()
