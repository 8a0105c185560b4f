"""The gateway's HTTP models: what clients send and receive. Separate from the messages they cause."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from contracts import commands as c
from contracts.codes import Code, Schedule, code_problem
from contracts.documents import ScanDraftView
from contracts.events import DeliveryFailure, DeliveryWindow, RejectionReason
from user_service.domain import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Role, User

T = TypeVar("T")


class Body(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    # Strict: JSON's `true` is not the number 1, nor "12" the number 12 (the document says which is which).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


def money(cents: int) -> float:
    return float(Decimal(cents) / 100)


def cents(amount: Decimal) -> int:
    return int(amount * 100)


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int


# --- users ---


class RegisterIn(Body):
    # A password is kept as typed: stripped here, it would never match the sign-in form, which is not.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, strict=True)

    email: Annotated[EmailStr, StringConstraints(strip_whitespace=True)]
    # The length rule is in the document too, so a client (and Schemathesis) knows it before sending.
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
    full_name: Annotated[str, StringConstraints(strip_whitespace=True)] = Field(
        min_length=1, max_length=200, pattern=r"\S"
    )


class UserOut(BaseModel):
    id: str
    email: str
    full_name: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id, email=user.email, full_name=user.full_name, role=user.role, created_at=user.created_at
        )


class RoleIn(Body):
    role: Role


class UserSearchIn(Body):
    """Who to find: in a body, not the query, so an email stays out of URLs and access logs."""

    email: str = Field(min_length=1, max_length=320, description="the account's email, exactly (any case)")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    refresh_token: str


class RefreshTokenIn(Body):
    refresh_token: str = Field(min_length=1, max_length=200)


# --- pharmacies, medications, stock ---


class PharmacyIn(Body):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=500)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class PharmacyOut(BaseModel):
    id: str
    name: str
    address: str
    latitude: float
    longitude: float

    @classmethod
    def of(cls, v: c.PharmacyView) -> PharmacyOut:
        return cls(
            id=v.id,
            name=v.name,
            address=v.address,
            latitude=v.location.latitude,
            longitude=v.location.longitude,
        )


# Lax, unlike the rest: an amount comes as a string ("4.20") or a number, either made a Decimal.
Price = Field(gt=0, le=Decimal("100000"), max_digits=8, decimal_places=2, strict=False)
# The same, left out of a change that keeps the price as it is.
PriceChange = Field(default=None, gt=0, le=Decimal("100000"), max_digits=8, decimal_places=2, strict=False)


MAX_CODES = 20


class CodeIn(Body):
    """A medication code: its system's URI (RxNorm, ATC and PZN codes are checked) and the code."""

    system: str = Field(
        min_length=1, max_length=200, pattern=r"^\S+$", examples=["http://fhir.de/CodeSystem/ifa/pzn"]
    )
    code: str = Field(min_length=1, max_length=64, pattern=r"^\S+$", examples=["01234562"])

    @field_validator("code")
    @classmethod
    def valid_in_its_system(cls, code: str, info: ValidationInfo) -> str:
        # The system came first; when it was refused, its own error says so.
        system = info.data.get("system")
        if system is not None and (why := code_problem(Code(system=system, code=code))):
            raise PydanticCustomError("medication_code", why)
        return code


class MedicationIn(Body):
    name: str = Field(min_length=1, max_length=200)
    strength: str = Field(min_length=1, max_length=100)
    form: str = Field(min_length=1, max_length=100)
    price: Decimal = Price
    prescription_only: bool
    # A controlled substance's schedule, II to V (then it must be prescription-only); null when none.
    schedule: Schedule | None = None
    codes: list[CodeIn] = Field(default=[], max_length=MAX_CODES)


class MedicationPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    strength: str | None = Field(default=None, min_length=1, max_length=100)
    form: str | None = Field(default=None, min_length=1, max_length=100)
    price: Decimal | None = PriceChange
    prescription_only: bool | None = None
    # Sent, even as null, it replaces the schedule; left out, the schedule stays.
    schedule: Schedule | None = None
    # Sent, it replaces every code ([] removes them all); left out, the codes stay.
    codes: list[CodeIn] | None = Field(default=None, max_length=MAX_CODES)


def codes_of(codes: list[CodeIn]) -> tuple[Code, ...]:
    return tuple(Code(system=code.system, code=code.code) for code in codes)


class CodeOut(BaseModel):
    system: str
    code: str


class MedicationOut(BaseModel):
    id: str
    name: str
    strength: str
    form: str
    price: float
    prescription_only: bool
    schedule: Schedule | None
    codes: list[CodeOut]

    @classmethod
    def of(cls, v: c.MedicationView) -> MedicationOut:
        return cls(
            id=v.id,
            name=v.name,
            strength=v.strength,
            form=v.form,
            price=money(v.price_cents),
            prescription_only=v.prescription_only,
            schedule=v.schedule,
            codes=[CodeOut(system=code.system, code=code.code) for code in v.codes],
        )


class StaffMemberOut(BaseModel):
    pharmacy_id: str
    user_id: str


class StockIn(Body):
    quantity: int = Field(ge=0, le=1_000_000)


class StockOut(BaseModel):
    pharmacy_id: str
    medication_id: str
    # For sale; held for paid orders not yet dispensed; dispensed; dispensed and brought back (never
    # sold again: a failed delivery, a cancel after dispensing).
    quantity: int
    reserved: int
    sold: int
    returned: int = 0


class AvailabilityOut(BaseModel):
    pharmacy_id: str
    pharmacy_name: str
    address: str
    latitude: float
    longitude: float
    quantity: int
    distance_km: float | None

    @classmethod
    def of(cls, v: c.AvailabilityView) -> AvailabilityOut:
        return cls(
            pharmacy_id=v.pharmacy_id,
            pharmacy_name=v.pharmacy_name,
            address=v.address,
            latitude=v.location.latitude,
            longitude=v.location.longitude,
            quantity=v.quantity,
            distance_km=v.distance_km,
        )


# --- payment methods and payments ---


class PaymentMethodIn(Body):
    card_number: str = Field(min_length=12, max_length=23)
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(min_length=3, max_length=4)


class PaymentMethodOut(BaseModel):
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    created_at: datetime

    @classmethod
    def of(cls, v: c.PaymentMethodView) -> PaymentMethodOut:
        return cls(
            id=v.id,
            brand=v.brand,
            last4=v.last4,
            exp_month=v.exp_month,
            exp_year=v.exp_year,
            created_at=v.created_at,
        )


class PaymentOut(BaseModel):
    id: str
    order_id: str
    patient_id: str
    payment_method_id: str
    amount: float
    status: str
    brand: str
    last4: str
    decline_reason: str | None
    created_at: datetime
    captured_at: datetime | None = None
    voided_at: datetime | None = None
    refunded_at: datetime | None

    @classmethod
    def of(cls, v: c.PaymentView) -> PaymentOut:
        return cls(
            id=v.id,
            order_id=v.order_id,
            patient_id=v.patient_id,
            payment_method_id=v.payment_method_id,
            amount=money(v.amount_cents),
            status=v.status,
            brand=v.brand,
            last4=v.last4,
            decline_reason=v.decline_reason,
            created_at=v.created_at,
            captured_at=v.captured_at,
            voided_at=v.voided_at,
            refunded_at=v.refunded_at,
        )


# --- prescriptions and orders ---


class LineIn(Body):
    medication_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)


class LocationIn(Body):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class PrescriberIn(Body):
    name: str = Field(min_length=1, max_length=200)
    licence_number: str = Field(min_length=1, max_length=64)


# How far ahead a patient may ask for a delivery window.
WINDOW_AHEAD = timedelta(days=14)


class DeliveryWindowIn(Body):
    """When to bring it: a courier arrives between start and end (times with their UTC offset)."""

    start: AwareDatetime
    end: AwareDatetime

    @field_validator("start")
    @classmethod
    def _not_too_far(cls, start: datetime) -> datetime:
        if start > datetime.now(UTC) + WINDOW_AHEAD:
            raise ValueError(f"a delivery window starts within {WINDOW_AHEAD.days} days")
        return start

    @field_validator("end")
    @classmethod
    def _after_start_and_ahead(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("a delivery window ends after it starts")
        if end <= datetime.now(UTC):
            raise ValueError("a delivery window ends in the future")
        return end

    def contract(self) -> DeliveryWindow:
        return DeliveryWindow(start=self.start, end=self.end)


class DeliveryWindowOut(BaseModel):
    start: datetime
    end: datetime


class PrescriptionIn(Body):
    lines: list[LineIn] = Field(min_length=1, max_length=50)
    delivery_location: LocationIn
    delivery_window: DeliveryWindowIn | None = None
    payment_method_id: str = Field(min_length=1, max_length=64)
    # The scan these lines were read from (POST /prescriptions/scan): needed for prescription-only lines.
    document_id: str | None = Field(default=None, min_length=1, max_length=64)
    issued_on: date | None = None
    valid_until: date | None = None
    repeats_allowed: int = Field(default=0, ge=0, le=99, description="refills after the first fill")
    prescriber: PrescriberIn | None = None


class LineOut(BaseModel):
    medication_id: str
    quantity: int
    prescription_only: bool = False
    schedule: Schedule | None = None


class LocationOut(BaseModel):
    latitude: float
    longitude: float


class PrescriberOut(BaseModel):
    name: str | None
    licence_number: str | None


class VerificationStepOut(BaseModel):
    decision: c.Decision
    by: str
    at: datetime
    reason: RejectionReason | None = None
    note: str | None = None
    question: str | None = None
    answer: str | None = None


class LineFlagsOut(BaseModel):
    line: int
    flags: list[str]


class PrescriptionOut(BaseModel):
    id: str
    patient_id: str
    order_id: str
    lines: list[LineOut]
    delivery_location: LocationOut
    payment_method_id: str
    status: str
    uploaded_at: datetime
    source: Literal["typed", "fhir"] = "typed"
    document_id: str | None = None
    issued_on: date | None = None
    valid_until: date | None = None
    repeats_allowed: int = 0
    prescriber: PrescriberOut | None = None
    verified_by: str | None = None
    verified_at: datetime | None = None
    rejection_reason: RejectionReason | None = None
    question: str | None = Field(default=None, description="the pharmacist's question, while ON_HOLD")
    verification: list[VerificationStepOut] = []
    flags: list[LineFlagsOut] = Field(default=[], description="why a pharmacist should look at a line")
    refill_order_ids: list[str] = Field(default=[], description="the orders of its refills, in order")
    refills_left: int | None = Field(
        default=None, description="refills its rules still allow (read one prescription or the list)"
    )
    last_valid_day: date | None = Field(
        default=None, description="the last day it may be filled: valid_until, else six months after issue"
    )

    @classmethod
    def of(cls, v: c.PrescriptionView) -> PrescriptionOut:
        return cls(
            id=v.id,
            patient_id=v.patient_id,
            order_id=v.order_id,
            lines=[LineOut(**line.model_dump()) for line in v.lines],
            delivery_location=LocationOut(
                latitude=v.delivery_location.latitude, longitude=v.delivery_location.longitude
            ),
            payment_method_id=v.payment_method_id,
            status=v.status,
            uploaded_at=v.uploaded_at,
            source=v.source,
            document_id=v.document_id,
            issued_on=v.issued_on,
            valid_until=v.valid_until,
            repeats_allowed=v.repeats_allowed,
            prescriber=None if v.prescriber is None else PrescriberOut(**v.prescriber.model_dump()),
            verified_by=v.verified_by,
            verified_at=v.verified_at,
            rejection_reason=v.rejection_reason,
            question=v.question,
            verification=[VerificationStepOut(**step.model_dump()) for step in v.verification],
            flags=[LineFlagsOut(line=f.line, flags=list(f.flags)) for f in v.line_flags],
            refill_order_ids=list(v.refill_order_ids),
            refills_left=v.refills_left,
            last_valid_day=v.last_valid_day,
        )


class RefillIn(Body):
    delivery_location: LocationIn
    payment_method_id: str = Field(min_length=1, max_length=64)


class RefillOut(BaseModel):
    prescription_id: str
    order_id: str
    refills_left: int


class ApproveIn(Body):
    lines: list[LineIn] | None = Field(
        default=None, min_length=1, max_length=50, description="the lines as corrected by the pharmacist"
    )
    note: str | None = Field(default=None, max_length=2000)


class RejectIn(Body):
    reason: RejectionReason
    note: str | None = Field(default=None, max_length=2000)


class HoldIn(Body):
    question: str = Field(min_length=1, max_length=2000)


class AnswerIn(Body):
    answer: str = Field(min_length=1, max_length=2000)


class DraftLineOut(BaseModel):
    text: str = Field(description="the line as it was read")
    medication_id: str | None = Field(description="the catalogue medication it matched, or null")
    name: str | None
    strength: str | None
    form: str | None
    quantity: int | None
    confidence: float = Field(ge=0, le=1)
    flags: list[str] = Field(
        description="why a pharmacist must look closely: LOW_CONFIDENCE, CLOSE_RUNNER_UP, LOOK_ALIKE, "
        "STRENGTH_NOT_STOCKED, STRENGTH_MISSING, FORM_MISMATCH, QUANTITY_MISSING, UNPARSED, NO_MATCH"
    )


class ScanDraftOut(BaseModel):
    document_id: str = Field(description="upload the confirmed lines with it, as `document_id`")
    content_type: str
    text: str = Field(description="everything recognised, line by line")
    lines: list[DraftLineOut]
    pages: int

    @classmethod
    def of(cls, v: ScanDraftView) -> ScanDraftOut:
        return cls(
            document_id=v.document_id,
            content_type=v.content_type,
            text=v.text,
            lines=[DraftLineOut.model_validate(line.model_dump()) for line in v.lines],
            pages=v.pages,
        )


class VerificationOut(BaseModel):
    """A prescription waiting for a pharmacist, with the patient's earlier ones of the same medications."""

    prescription: PrescriptionOut
    earlier: list[PrescriptionOut]
    draft: ScanDraftOut | None = Field(
        default=None, description="what was read from its scanned document, each line with its flags"
    )

    @classmethod
    def of(cls, v: c.VerificationEntry) -> VerificationOut:
        return cls(
            prescription=PrescriptionOut.of(v.prescription),
            earlier=[PrescriptionOut.of(p) for p in v.earlier],
            draft=None if v.draft is None else ScanDraftOut.of(v.draft),
        )


class OrderLineOut(BaseModel):
    medication_id: str
    quantity: int
    unit_price: float | None


class ShortageOut(BaseModel):
    medication_id: str
    requested: int
    best_available: int
    reason: str


class StatusChangeOut(BaseModel):
    status: str
    at: datetime
    reason: str | None


class OrderDeliveryOut(BaseModel):
    """The order's delivery as its patient and staff see it. `pin` only ever to the order's patient."""

    courier_id: str | None
    eta: datetime | None
    proof: Literal["PIN", "NAME"] | None
    failed_attempts: int
    last_failure: DeliveryFailure | None
    recipient_name: str | None
    delivered_at: datetime | None
    pin: str | None = None

    @classmethod
    def of(cls, v: c.OrderDelivery, pin: str | None = None) -> OrderDeliveryOut:
        return cls(**v.model_dump(), pin=pin)


class OrderOut(BaseModel):
    id: str
    prescription_id: str
    patient_id: str
    pharmacy_id: str | None
    status: str
    lines: list[OrderLineOut]
    # The lines' prices plus both fees: what is authorised on the card, and taken at pickup.
    total: float | None
    service_fee: float
    delivery_fee: float
    captured: float
    refunded: float
    shortages: list[ShortageOut]
    history: list[StatusChangeOut]
    created_at: datetime
    verified_by: str | None = None
    delivery_window: DeliveryWindowOut | None = None
    dispensed_by: str | None = None
    delivery: OrderDeliveryOut | None = None
    cancellable: bool = Field(default=False, description="DELETE /orders/{id} would cancel it now")
    ended: bool = Field(default=False, description="its status can no longer change")

    @classmethod
    def of(cls, v: c.OrderView, pin: str | None = None) -> OrderOut:
        prices = {line.medication_id: line.unit_price_cents for line in v.priced_lines}
        return cls(
            id=v.id,
            prescription_id=v.prescription_id,
            patient_id=v.patient_id,
            pharmacy_id=v.pharmacy_id,
            status=v.status,
            lines=[
                OrderLineOut(
                    medication_id=line.medication_id,
                    quantity=line.quantity,
                    unit_price=money(prices[line.medication_id]) if line.medication_id in prices else None,
                )
                for line in v.lines
            ],
            total=None if v.total_cents is None else money(v.total_cents),
            service_fee=money(v.service_fee_cents),
            delivery_fee=money(v.delivery_fee_cents),
            captured=money(v.captured_cents),
            refunded=money(v.refunded_cents),
            shortages=[ShortageOut(**s.model_dump()) for s in v.shortages],
            history=[StatusChangeOut(status=h.status, at=h.at, reason=h.reason) for h in v.history],
            created_at=v.created_at,
            verified_by=v.verified_by,
            delivery_window=None
            if v.delivery_window is None
            else DeliveryWindowOut(start=v.delivery_window.start, end=v.delivery_window.end),
            dispensed_by=v.dispensed_by,
            delivery=None if v.delivery is None else OrderDeliveryOut.of(v.delivery, pin),
            cancellable=v.cancellable,
            ended=v.ended,
        )


class QuoteLineOut(BaseModel):
    medication_id: str
    name: str
    strength: str
    quantity: int
    unit_price: float
    amount: float


class QuoteOut(BaseModel):
    """The price if the order's stock were reserved now. The order's own price is fixed when its
    stock is reserved: the nearest pharmacy with every line then, which may differ from this one."""

    available: bool = Field(description="a pharmacy within reach has every line now")
    pharmacy_id: str | None
    distance_km: float | None
    lines: list[QuoteLineOut]
    lines_total: float
    service_fee: float
    delivery_fee: float | None = Field(description="None when no pharmacy can serve the order now")
    total: float | None
    shortages: list[ShortageOut]

    @classmethod
    def of(cls, q: c.OrderQuote) -> QuoteOut:
        named = {m.id: m for m in q.medications}
        return cls(
            available=q.pharmacy_id is not None,
            pharmacy_id=q.pharmacy_id,
            distance_km=q.distance_km,
            lines=[
                QuoteLineOut(
                    medication_id=line.medication_id,
                    name=named[line.medication_id].name,
                    strength=named[line.medication_id].strength,
                    quantity=line.quantity,
                    unit_price=money(line.unit_price_cents),
                    amount=money(line.quantity * line.unit_price_cents),
                )
                for line in q.lines
            ],
            lines_total=money(sum(line.quantity * line.unit_price_cents for line in q.lines)),
            service_fee=money(q.service_fee_cents),
            delivery_fee=None if q.delivery_fee_cents is None else money(q.delivery_fee_cents),
            total=None if q.total_cents is None else money(q.total_cents),
            shortages=[ShortageOut(**s.model_dump()) for s in q.shortages],
        )


class UploadOut(PrescriptionOut):
    quote: QuoteOut | None = Field(
        description="the price now, lines and both fees; None for a FHIR upload whose quote inventory "
        "could not give (a typed upload is not taken without it: 503)"
    )


# --- dispensing and delivery ---


class DeliveryAttemptOut(BaseModel):
    reason: DeliveryFailure
    note: str | None
    at: datetime


class DeliveryOut(BaseModel):
    """A delivery for its courier: where to collect it and where to take it; nothing of what is inside,
    never the PIN. Once it has ended, its courier gets null for the patient's location and window, the
    recipient's name and attempts' notes; an admin still sees them."""

    id: str
    order_id: str
    status: c.DeliveryStatus
    pharmacy_id: str
    pickup_location: LocationOut
    delivery_location: LocationOut | None
    delivery_window: DeliveryWindowOut | None
    courier_id: str | None
    eta: datetime | None
    proof: Literal["PIN", "NAME"]
    attempts: list[DeliveryAttemptOut]
    wrong_pins: int
    recipient_name: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, v: c.DeliveryView) -> DeliveryOut:
        window = v.delivery_window
        return cls(
            id=v.id,
            order_id=v.order_id,
            status=v.status,
            pharmacy_id=v.pharmacy_id,
            pickup_location=LocationOut(**v.pickup_location.model_dump()),
            delivery_location=None
            if v.delivery_location is None
            else LocationOut(**v.delivery_location.model_dump()),
            delivery_window=None if window is None else DeliveryWindowOut(start=window.start, end=window.end),
            courier_id=v.courier_id,
            eta=v.eta,
            proof=v.proof,
            attempts=[DeliveryAttemptOut(**a.model_dump()) for a in v.attempts],
            wrong_pins=v.wrong_pins,
            recipient_name=v.recipient_name,
            delivered_at=v.delivered_at,
            created_at=v.created_at,
        )


class CourierIn(Body):
    available: bool
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class CourierOut(BaseModel):
    id: str
    available: bool
    latitude: float
    longitude: float
    delivery_id: str | None
    updated_at: datetime

    @classmethod
    def of(cls, v: c.CourierView) -> CourierOut:
        return cls(
            id=v.id,
            available=v.available,
            latitude=v.location.latitude,
            longitude=v.location.longitude,
            delivery_id=v.delivery_id,
            updated_at=v.updated_at,
        )


class DeliverIn(Body):
    """The proof the delivery asks for (its `proof`): the PIN the patient tells you, or who took it."""

    pin: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")] | None = None
    recipient_name: str | None = Field(default=None, min_length=1, max_length=200)


class FailIn(Body):
    reason: DeliveryFailure
    note: str | None = Field(default=None, min_length=1, max_length=500)


class DispensingOut(BaseModel):
    """A paid order waiting at the pharmacy for its final check."""

    order_id: str
    pharmacy_id: str
    lines: list[OrderLineOut]
    total: float
    paid_at: datetime | None
    verified_by: str | None

    @classmethod
    def of(cls, v: c.DispensingView) -> DispensingOut:
        return cls(
            order_id=v.order_id,
            pharmacy_id=v.pharmacy_id,
            lines=[
                OrderLineOut(
                    medication_id=line.medication_id,
                    quantity=line.quantity,
                    unit_price=money(line.unit_price_cents),
                )
                for line in v.lines
            ],
            total=money(v.total_cents),
            paid_at=v.paid_at,
            verified_by=v.verified_by,
        )


# --- operations (the journal's view, dead letters) ---


class SagaStepOut(BaseModel):
    event_id: str
    type: str
    occurred_at: datetime
    step_ms: int = Field(description="milliseconds since the step before (0 for the first)")
    publisher: str = Field(description="the service that published the event")
    detail: str


class SagaTimelineOut(BaseModel):
    order_id: str
    steps: list[SagaStepOut]
    total_ms: int
    ended: str | None = Field(description="the order's status when its saga ended; null while it runs")
    waiting: str | None = Field(description="not ended: what it waits for after its last step, if known")

    @classmethod
    def of(cls, view: c.SagaTimelineView) -> SagaTimelineOut:
        return cls.model_validate(view.model_dump())


FailedService = c.FailedService


class DeadLetterOut(BaseModel):
    service: str
    message_id: str
    type: str
    error_type: str
    error: str
    failed_at: str
    attempts: int


class DeadLetterDetailOut(DeadLetterOut):
    headers: dict[str, Any]
    body: Any = Field(description="the message as sent: its JSON, or its text when it is not JSON")


# As many as the dead-letter page lists: a redrive of so many answers well within its timeout.
MAX_REDRIVE_IDS = 200


class RedriveIn(Body):
    service: FailedService | None = Field(default=None, description="only this service's dead letters")
    message_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default=[],
        max_length=MAX_REDRIVE_IDS,
        description=f"only these messages (at most {MAX_REDRIVE_IDS}); every one (of the service) when empty",
    )
    dry_run: bool = Field(default=True, description="say what would be sent where, and send nothing")


class RedrivenOut(BaseModel):
    service: str
    message_id: str
    queue: str = Field(description="the queue it was (or, in a dry run, would be) sent back to")


class NotRedrivenOut(RedrivenOut):
    reason: str = Field(description="why it was not sent back; it is still a dead letter")


class RedriveOut(BaseModel):
    dry_run: bool
    redriven: list[RedrivenOut] = Field(description="those sent back (in a dry run: that would be)")
    not_found: list[str] = Field(description="message ids asked for that no dead-letter queue held")
    failed: list[NotRedrivenOut] = Field(
        default=[], description="found but not sent back, each with why: they stay dead letters"
    )
