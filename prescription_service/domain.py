"""A prescription's life. No I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from hashlib import sha256
from typing import Annotated, Literal

from pydantic import PlainSerializer

from contracts.base import Event
from contracts.commands import (
    AnswerPrescription,
    ApprovePrescription,
    HoldPrescription,
    LineFlags,
    PrescriptionView,
    RefillPrescription,
    RejectPrescription,
    UploadPrescription,
    VerificationStep,
)
from contracts.documents import ScanDraftView
from contracts.events import (
    Location,
    PrescribedLine,
    Prescriber,
    PrescriptionAnswered,
    PrescriptionHeld,
    PrescriptionRefilled,
    PrescriptionRejected,
    PrescriptionSource,
    PrescriptionUploaded,
    PrescriptionVerified,
    PrescriptionWithdrawn,
)
from service_runtime.aggregate import Aggregate, minted_id

# A prescription-only line waits for a pharmacist: PENDING_VERIFICATION (in the queue) or ON_HOLD (a
# question to the patient). Then PROCESSING until its order ends, and what the order became.
# RETURNED: its order came back undelivered, so it was not filled. WITHDRAWN: the patient took it back.
PrescriptionStatus = Literal[
    "PENDING_VERIFICATION",
    "ON_HOLD",
    "PROCESSING",
    "FILLED",
    "REJECTED",
    "CANCELLED",
    "RETURNED",
    "WITHDRAWN",
]
# Still waiting for its order to end, or for a pharmacist before that.
OPEN: frozenset[PrescriptionStatus] = frozenset({"PENDING_VERIFICATION", "ON_HOLD", "PROCESSING"})
AWAITING_PHARMACIST: frozenset[PrescriptionStatus] = frozenset({"PENDING_VERIFICATION", "ON_HOLD"})
# Who may verify: any pharmacist (a central team, not the dispensing pharmacy's), or an admin.
VERIFIERS = frozenset({"pharmacist", "admin"})
# Schedules III and IV: at most five refills, none later than six months after issue (21 CFR 1306.22).
MAX_CONTROLLED_REFILLS = 5
CONTROLLED_REFILL_MONTHS = 6
# How long a prescription that names no last day is valid, from its issue (or its upload).
DEFAULT_VALIDITY_MONTHS = 6


# A calendar day is kept as its ISO text: BSON has datetimes only, and a day is not an instant.
StoredDay = Annotated[date, PlainSerializer(date.isoformat, return_type=str)]


class UploadKeyReused(Exception):
    """The upload's request id (a patient's Idempotency-Key) already made a prescription of other contents."""


class NeedsDocument(Exception):
    """A prescription-only or controlled line was typed with no document or FHIR source behind it."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class RefillsNotAllowed(Exception):
    """The repeats asked for break a controlled schedule's rules."""


class ImplausibleDate(Exception):
    """A prescription's date that cannot be: issued in the future, or valid until before its issue."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotAPharmacist(Exception):
    """Only pharmacists and admins verify prescriptions."""


class OwnPrescription(Exception):
    """A pharmacist may not verify a prescription of their own."""


class PrescriptionExpired(Exception):
    """The prescription is past its validity: it cannot be approved (reject it as EXPIRED)."""


class NotRefillable(Exception):
    """No refill now: the first fill is not done, the prescription expired, or no repeats are left."""


class NotAwaitingVerification(Exception):
    """The prescription is not waiting for this decision (already decided, withdrawn, or not on hold)."""


class Prescription(Aggregate):
    patient_id: str
    order_id: str
    lines: list[PrescribedLine]
    delivery_location: Location
    payment_method_id: str
    status: PrescriptionStatus = "PROCESSING"
    uploaded_at: datetime
    withdrawn_at: datetime | None = None
    # In the lists its patient and staff read: no longer once withdrawn. A field of its own, so that a
    # list is read from an index (no index key can be matched exactly by a null `withdrawn_at`).
    listed: bool = True
    # What the upload asked for (upload_fingerprint); None on prescriptions stored before it was kept.
    fingerprint: str | None = None
    source: PrescriptionSource = "typed"
    document_id: str | None = None
    # The original FHIR document as sent (sealed): what the pharmacist reads beside the lines.
    document: str | None = None
    issued_on: StoredDay | None = None
    valid_until: StoredDay | None = None
    repeats_allowed: int = 0
    prescriber: Prescriber | None = None
    verified_by: str | None = None
    verified_at: datetime | None = None
    rejection_reason: str | None = None
    question: str | None = None
    verification: list[VerificationStep] = []
    line_flags: list[LineFlags] = []
    # The orders of its refills, in order; the first fill's is `order_id`.
    refill_order_ids: list[str] = []
    # Of those, the ones that ended filled, and the ones that did not (rejected, cancelled): only a
    # filled one uses a repeat, and a new refill waits until the last one has ended.
    refills_filled: list[str] = []
    refills_failed: list[str] = []

    def refills_made(self) -> int:
        return len(self.refill_order_ids) - len(self.refills_failed)

    def refill_in_flight(self) -> str | None:
        ended = {*self.refills_filled, *self.refills_failed}
        return next((o for o in self.refill_order_ids if o not in ended), None)

    def view(self, today: date | None = None) -> PrescriptionView:
        """What the gateway is told; given `today`, also its refills left and its last valid day."""
        return PrescriptionView.model_validate(
            {
                **(
                    {}
                    if today is None
                    else {
                        "refills_left": refills_left(self, self.refills_made(), today),
                        "last_valid_day": last_valid_day(self),
                    }
                ),
                **self.model_dump(
                    include={
                        "id",
                        "patient_id",
                        "order_id",
                        "lines",
                        "delivery_location",
                        "payment_method_id",
                        "status",
                        "uploaded_at",
                        "source",
                        "document_id",
                        "issued_on",
                        "valid_until",
                        "repeats_allowed",
                        "prescriber",
                        "verified_by",
                        "verified_at",
                        "rejection_reason",
                        "question",
                        "verification",
                        "line_flags",
                        "refill_order_ids",
                    }
                ),
            }
        )


def needs_pharmacist(line: PrescribedLine) -> bool:
    """A prescription-only or controlled line is dispensed only after a pharmacist verified it."""
    return line.prescription_only or line.schedule is not None


def check_lines_have_a_source(
    lines: Sequence[PrescribedLine], source: PrescriptionSource, document_id: str | None
) -> None:
    """A prescription-only or controlled line needs its prescription (a scan or FHIR), never typed alone."""
    if source == "fhir" or document_id is not None:
        return
    for i, line in enumerate(lines):
        if line.schedule is not None:
            raise NeedsDocument(
                i, f"a schedule {line.schedule} controlled medication needs a scanned document or FHIR source"
            )
        if line.prescription_only:
            raise NeedsDocument(i, "a prescription-only medication needs a scanned document or FHIR source")


def check_refill_rules(lines: Sequence[PrescribedLine], repeats_allowed: int) -> None:
    """Schedule II has no refills; schedules III and IV at most five (within six months of issue)."""
    schedules = {line.schedule for line in lines}
    if "II" in schedules and repeats_allowed > 0:
        raise RefillsNotAllowed("a schedule II medication cannot be refilled: repeats_allowed must be 0")
    if schedules & {"III", "IV"} and repeats_allowed > MAX_CONTROLLED_REFILLS:
        raise RefillsNotAllowed(
            f"a schedule III or IV medication has at most {MAX_CONTROLLED_REFILLS} refills"
        )


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return day.replace(year=year, month=month, day=min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def refills_left(prescription: Prescription, refills_made: int, today: date) -> int:
    """Refills still allowed: `repeats_allowed` counts those after the first fill, within the rules.

    A controlled schedule III or IV prescription is not refilled later than six months after issue.
    """
    schedules = {line.schedule for line in prescription.lines}
    if "II" in schedules:
        return 0
    allowed = prescription.repeats_allowed
    if schedules & {"III", "IV"}:
        allowed = min(allowed, MAX_CONTROLLED_REFILLS)
        issued = prescription.issued_on or prescription.uploaded_at.date()
        if today > _add_months(issued, CONTROLLED_REFILL_MONTHS):
            return 0
    return max(allowed - refills_made, 0)


def is_expired(prescription: Prescription, today: date) -> bool:
    """Past its last day: `valid_until`, or DEFAULT_VALIDITY_MONTHS after its issue (else its upload)
    when it names none, so that no prescription stays valid, and refillable, for ever."""
    return today > last_valid_day(prescription)


def last_valid_day(prescription: Prescription) -> date:
    if prescription.valid_until is not None:
        return prescription.valid_until
    return _add_months(prescription.issued_on or prescription.uploaded_at.date(), DEFAULT_VALIDITY_MONTHS)


def check_dates(issued_on: date | None, valid_until: date | None, today: date) -> None:
    """A prescription is not issued after today, nor valid until a day before its issue."""
    if issued_on is not None and issued_on > today:
        raise ImplausibleDate("issued_on", f"a prescription cannot be issued after today ({today})")
    if issued_on is not None and valid_until is not None and valid_until < issued_on:
        raise ImplausibleDate("valid_until", "a prescription cannot be valid until a day before its issue")


def upload(
    command: UploadPrescription, now: datetime, draft: ScanDraftView | None = None
) -> tuple[Prescription, list[Event]]:
    """A new prescription, and the id of the order it will become (the saga's correlation id).

    With a scanned document, `draft` is what was read from it: each line confirmed is flagged as the
    draft flagged it, and where the patient's line is not what was read. Refused (NeedsDocument,
    RefillsNotAllowed) when its lines may not be taken as sent.
    """
    flags = [] if draft is None else flags_against_draft(command.lines, draft)
    return take_in(command, "typed", None, flags, now)


def flags_against_draft(lines: Sequence[PrescribedLine], draft: ScanDraftView) -> list[LineFlags]:
    """What a pharmacist must see of each confirmed line beside the scan it came from: the draft line's
    own flags, NOT_IN_DRAFT when no line read names its medication, QUANTITY_CHANGED when the quantity
    confirmed is not the one read."""
    flagged = []
    for i, line in enumerate(lines):
        read = [d for d in draft.lines if d.medication_id == line.medication_id]
        flags = list(dict.fromkeys(flag for d in read for flag in d.flags))
        if not read:
            flags.append("NOT_IN_DRAFT")
        elif all(d.quantity != line.quantity for d in read):
            flags.append("QUANTITY_CHANGED")
        if flags:
            flagged.append(LineFlags(line=i, flags=tuple(flags)))
    return flagged


def take_in(
    command: UploadPrescription,
    source: PrescriptionSource,
    document: str | None,
    line_flags: list[LineFlags],
    now: datetime,
) -> tuple[Prescription, list[Event]]:
    check_lines_have_a_source(command.lines, source, command.document_id)
    check_refill_rules(command.lines, command.repeats_allowed)
    check_dates(command.issued_on, command.valid_until, now.date())
    uploaded = PrescriptionUploaded(
        # The same request makes the same prescription and order: a redelivered upload creates nothing.
        prescription_id=minted_id(command.request_id, "prescription"),
        order_id=minted_id(command.request_id, "order"),
        patient_id=command.patient_id,
        lines=command.lines,
        delivery_location=command.delivery_location,
        payment_method_id=command.payment_method_id,
        source=source,
        document_id=command.document_id,
        issued_on=command.issued_on,
        valid_until=command.valid_until,
        repeats_allowed=command.repeats_allowed,
        prescriber=command.prescriber,
        delivery_window=command.delivery_window,
    )
    prescription = restore_upload(uploaded, now)
    prescription.fingerprint = upload_fingerprint(command)
    prescription.document = document
    prescription.line_flags = line_flags
    return prescription, [uploaded]


_ASKED = {"patient_id", "lines", "delivery_location", "payment_method_id"}
_ASKED_SINCE_VERIFICATION = {
    "document_id",
    "issued_on",
    "valid_until",
    "repeats_allowed",
    "prescriber",
    "delivery_window",
}


def upload_fingerprint(upload: UploadPrescription | PrescriptionUploaded) -> str:
    """A sha256 of what the patient asked for, the same from the command and from the event it made.

    Lines count by medication and quantity (their classification is the catalogue's, not the
    patient's); the prescription's details only when given, so older fingerprints still match.
    """
    asked = upload.model_dump(mode="json", include=_ASKED)
    asked["lines"] = [
        {"medication_id": x["medication_id"], "quantity": x["quantity"]} for x in asked["lines"]
    ]
    asked |= upload.model_dump(mode="json", include=_ASKED_SINCE_VERIFICATION, exclude_defaults=True)
    return sha256(json.dumps(asked, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def upload_again(existing: Prescription, command: UploadPrescription) -> Prescription:
    """An upload whose request already made `existing`: a redelivery or a client's retry gets it back.

    Refused with UploadKeyReused when it asks for something else: the answer would not be for it.
    """
    if existing.fingerprint not in (None, upload_fingerprint(command)):
        raise UploadKeyReused("this idempotency key was already used for an upload of other contents")
    return existing


def restore_upload(uploaded: PrescriptionUploaded, at: datetime) -> Prescription:
    """The prescription as its upload made it (also when rebuilding from the journal)."""
    waits = any(needs_pharmacist(line) for line in uploaded.lines)
    return Prescription(
        id=uploaded.prescription_id,
        patient_id=uploaded.patient_id,
        order_id=uploaded.order_id,
        lines=list(uploaded.lines),
        delivery_location=uploaded.delivery_location,
        payment_method_id=uploaded.payment_method_id,
        status="PENDING_VERIFICATION" if waits else "PROCESSING",
        uploaded_at=at,
        fingerprint=upload_fingerprint(uploaded),
        source=uploaded.source,
        document_id=uploaded.document_id,
        issued_on=uploaded.issued_on,
        valid_until=uploaded.valid_until,
        repeats_allowed=uploaded.repeats_allowed,
        prescriber=uploaded.prescriber,
    )


def _may_decide(prescription: Prescription, pharmacist_id: str, role: str) -> None:
    if role not in VERIFIERS:
        raise NotAPharmacist("only a pharmacist or an admin verifies prescriptions")
    if prescription.patient_id == pharmacist_id:
        raise OwnPrescription("a pharmacist cannot verify their own prescription: another one must")
    if prescription.status not in AWAITING_PHARMACIST:
        raise NotAwaitingVerification(f"the prescription is {prescription.status}, not awaiting verification")


def approve(prescription: Prescription, command: ApprovePrescription, now: datetime) -> list[Event]:
    """A pharmacist approves (perhaps correcting the lines): the order goes on to stock and payment.

    Refused when expired, when it is the pharmacist's own, or when corrected lines break the rules.
    """
    if prescription.verified_by == command.pharmacist_id and prescription.status not in AWAITING_PHARMACIST:
        return []  # the same approval again (a retry): already done
    _may_decide(prescription, command.pharmacist_id, command.pharmacist_role)
    if is_expired(prescription, now.date()):
        raise PrescriptionExpired(
            f"the prescription expired on {last_valid_day(prescription)}: it cannot be approved"
        )
    lines = command.lines or tuple(prescription.lines)
    check_lines_have_a_source(lines, prescription.source, prescription.document_id)
    check_refill_rules(lines, prescription.repeats_allowed)
    verified = PrescriptionVerified(
        prescription_id=prescription.id,
        order_id=prescription.order_id,
        patient_id=prescription.patient_id,
        pharmacist_id=command.pharmacist_id,
        lines=lines,
        note=command.note,
    )
    record_verified(prescription, verified, now)
    return [verified]


def record_verified(prescription: Prescription, verified: PrescriptionVerified, at: datetime) -> list[Event]:
    """The approval as it is kept (and replayed on a rebuild)."""
    if prescription.status in AWAITING_PHARMACIST:
        if list(verified.lines) != prescription.lines:
            prescription.line_flags = []  # flags were about the lines as read, not the corrected ones
        prescription.lines = list(verified.lines)
        prescription.status = "PROCESSING"
        prescription.question = None
    prescription.verified_by = verified.pharmacist_id
    prescription.verified_at = at
    prescription.verification.append(
        VerificationStep(decision="approved", by=verified.pharmacist_id, at=at, note=verified.note)
    )
    return []


def reject(prescription: Prescription, command: RejectPrescription, now: datetime) -> list[Event]:
    """A pharmacist refuses the prescription with a coded reason: its order is rejected."""
    _may_decide(prescription, command.pharmacist_id, command.pharmacist_role)
    rejected = PrescriptionRejected(
        prescription_id=prescription.id,
        order_id=prescription.order_id,
        patient_id=prescription.patient_id,
        pharmacist_id=command.pharmacist_id,
        reason=command.reason,
        note=command.note,
    )
    record_rejected(prescription, rejected, now)
    return [rejected]


def record_rejected(prescription: Prescription, rejected: PrescriptionRejected, at: datetime) -> list[Event]:
    if prescription.status in AWAITING_PHARMACIST:
        prescription.status = "REJECTED"
        prescription.question = None
    prescription.rejection_reason = rejected.reason
    prescription.verification.append(
        VerificationStep(
            decision="rejected", by=rejected.pharmacist_id, at=at, reason=rejected.reason, note=rejected.note
        )
    )
    return []


def hold(prescription: Prescription, command: HoldPrescription, now: datetime) -> list[Event]:
    """A pharmacist asks the patient a question; the prescription leaves the queue until answered."""
    _may_decide(prescription, command.pharmacist_id, command.pharmacist_role)
    if prescription.status != "PENDING_VERIFICATION":
        raise NotAwaitingVerification("the prescription is already waiting for the patient's answer")
    held = PrescriptionHeld(
        prescription_id=prescription.id,
        order_id=prescription.order_id,
        patient_id=prescription.patient_id,
        pharmacist_id=command.pharmacist_id,
        question=command.question,
    )
    record_held(prescription, held, now)
    return [held]


def record_held(prescription: Prescription, held: PrescriptionHeld, at: datetime) -> list[Event]:
    if prescription.status == "PENDING_VERIFICATION":
        prescription.status = "ON_HOLD"
        prescription.question = held.question
    prescription.verification.append(
        VerificationStep(decision="held", by=held.pharmacist_id, at=at, question=held.question)
    )
    return []


def answer(prescription: Prescription, command: AnswerPrescription, now: datetime) -> list[Event]:
    """The patient answers the pharmacist's question: the prescription is back in the queue."""
    if prescription.status != "ON_HOLD":
        raise NotAwaitingVerification("no question of a pharmacist is waiting for an answer")
    answered = PrescriptionAnswered(
        prescription_id=prescription.id,
        order_id=prescription.order_id,
        patient_id=prescription.patient_id,
        answer=command.answer,
    )
    record_answered(prescription, answered, now)
    return [answered]


def record_answered(prescription: Prescription, answered: PrescriptionAnswered, at: datetime) -> list[Event]:
    if prescription.status == "ON_HOLD":
        prescription.status = "PENDING_VERIFICATION"
        prescription.question = None
    prescription.verification.append(
        VerificationStep(decision="answered", by=answered.patient_id, at=at, answer=answered.answer)
    )
    return []


def withdraw(prescription: Prescription, now: datetime) -> list[Event]:
    """The patient takes the prescription back: hidden from view, kept for the record.

    An order not yet paid is cancelled by order_service when it hears of it. The status says
    WITHDRAWN unless its order sold the medicines (FILLED stays: that is what happened), whether the
    order ended before or after; `follow_order` keeps to the same rule from the other side.
    """
    if prescription.withdrawn_at is not None:
        return []
    prescription.withdrawn_at = now
    prescription.listed = False
    if prescription.status != "FILLED":
        prescription.status = "WITHDRAWN"
    return [
        PrescriptionWithdrawn(
            prescription_id=prescription.id,
            order_id=prescription.order_id,
            patient_id=prescription.patient_id,
        )
    ]


def follow_order(
    prescription: Prescription, outcome: PrescriptionStatus, order_id: str | None = None
) -> list[Event]:
    """Reflect the first fill's order's end.

    A refill's order ends on its own: the prescription stays FILLED; a refill whose order did not
    end filled gives its repeat back.

    A confirmed order is cancelled after all when its payment lost the race with the reservation's
    expiry (stock never sold, charge refunded), or comes back undelivered (RETURNED: refunded, its
    medicines never resold): the prescription was not filled, so it follows.

    The patient's withdrawal and the order's end commute (see `withdraw`): a sold order makes it
    FILLED even when the withdrawal was handled first (an order already paid is not cancelled by it);
    any other end leaves a withdrawn prescription WITHDRAWN. A rebuild from the journal may apply the
    two in the other order than the live service did, and must come to the same state.
    """
    if order_id is not None and order_id in prescription.refill_order_ids:
        follow_refill(prescription, order_id, outcome)
        return []
    if order_id not in (None, prescription.order_id):
        return []
    withdrawn = prescription.withdrawn_at is not None
    if prescription.status in OPEN or (prescription.status, outcome) == ("WITHDRAWN", "FILLED"):
        prescription.status = outcome
    elif prescription.status == "FILLED" and outcome in ("CANCELLED", "RETURNED"):
        prescription.status = "WITHDRAWN" if withdrawn else outcome
    return []


def follow_refill(prescription: Prescription, order_id: str, outcome: PrescriptionStatus) -> None:
    """A refill's order ended: filled uses the repeat; rejected, cancelled (even after a
    confirmation, when its payment lost the race with the reservation's expiry) or returned
    undelivered gives it back."""
    if outcome == "FILLED":
        if order_id not in prescription.refills_filled and order_id not in prescription.refills_failed:
            prescription.refills_filled.append(order_id)
    elif order_id not in prescription.refills_failed:
        prescription.refills_failed.append(order_id)
        if order_id in prescription.refills_filled:
            prescription.refills_filled.remove(order_id)


def refill(prescription: Prescription, command: RefillPrescription, now: datetime) -> list[Event]:
    """A new order from a filled prescription with refills left and not expired: no new verification.

    Refused (NotRefillable) saying why; the same request again (a redelivery) makes no second order.
    """
    order_id = minted_id(command.request_id, "refill-order")
    if order_id in prescription.refill_order_ids:
        return []
    if prescription.status != "FILLED":
        raise NotRefillable(f"the prescription is {prescription.status}: only a filled one is refilled")
    today = now.date()
    if is_expired(prescription, today):
        raise NotRefillable(f"the prescription expired on {last_valid_day(prescription)}: no refills")
    made = prescription.refills_made()
    if refills_left(prescription, made, today) == 0:
        raise NotRefillable(_why_no_refill(prescription, made))
    if (open_order := prescription.refill_in_flight()) is not None:
        raise NotRefillable(f"the last refill (order {open_order}) has not ended yet: one refill at a time")
    refilled = PrescriptionRefilled(
        prescription_id=prescription.id,
        order_id=order_id,
        patient_id=prescription.patient_id,
        lines=tuple(prescription.lines),
        delivery_location=command.delivery_location,
        payment_method_id=command.payment_method_id,
        verified_by=prescription.verified_by,
        refill=made + 1,
    )
    record_refilled(prescription, refilled, now)
    return [refilled]


def _why_no_refill(prescription: Prescription, made: int) -> str:
    schedules = {line.schedule for line in prescription.lines}
    if "II" in schedules:
        return "a schedule II prescription is never refilled"
    if schedules & {"III", "IV"} and made < min(prescription.repeats_allowed, MAX_CONTROLLED_REFILLS):
        return (
            f"a schedule III or IV prescription is not refilled {CONTROLLED_REFILL_MONTHS} months after issue"
        )
    return f"no refills left: {made} of {prescription.repeats_allowed} used"


def record_refilled(prescription: Prescription, refilled: PrescriptionRefilled, at: datetime) -> list[Event]:
    """The refill as it is kept (and replayed on a rebuild)."""
    if refilled.order_id not in prescription.refill_order_ids:
        prescription.refill_order_ids.append(refilled.order_id)
    return []
