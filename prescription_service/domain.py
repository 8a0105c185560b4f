"""A prescription's life. No I/O."""

from __future__ import annotations

import json
from datetime import datetime
from hashlib import sha256
from typing import Literal

from contracts.base import Event
from contracts.commands import PrescriptionView, UploadPrescription
from contracts.events import Location, PrescribedLine, PrescriptionUploaded, PrescriptionWithdrawn
from service_runtime.aggregate import Aggregate, minted_id

# PROCESSING until its order ends; then what the order became. WITHDRAWN: the patient took it back.
PrescriptionStatus = Literal["PROCESSING", "FILLED", "REJECTED", "CANCELLED", "WITHDRAWN"]


class UploadKeyReused(Exception):
    """The upload's request id (a patient's Idempotency-Key) already made a prescription of other contents."""


class Prescription(Aggregate):
    patient_id: str
    order_id: str
    lines: list[PrescribedLine]
    delivery_location: Location
    payment_method_id: str
    status: PrescriptionStatus = "PROCESSING"
    uploaded_at: datetime
    withdrawn_at: datetime | None = None
    # What the upload asked for (upload_fingerprint); None on prescriptions stored before it was kept.
    fingerprint: str | None = None

    def view(self) -> PrescriptionView:
        return PrescriptionView(
            id=self.id,
            patient_id=self.patient_id,
            order_id=self.order_id,
            lines=tuple(self.lines),
            delivery_location=self.delivery_location,
            payment_method_id=self.payment_method_id,
            status=self.status,
            uploaded_at=self.uploaded_at,
        )


def upload(command: UploadPrescription, now: datetime) -> tuple[Prescription, list[Event]]:
    """A new prescription, and the id of the order it will become (the saga's correlation id)."""
    prescription = Prescription(
        # The same request makes the same prescription and order: a redelivered upload creates nothing.
        id=minted_id(command.request_id, "prescription"),
        patient_id=command.patient_id,
        order_id=minted_id(command.request_id, "order"),
        lines=list(command.lines),
        delivery_location=command.delivery_location,
        payment_method_id=command.payment_method_id,
        uploaded_at=now,
        fingerprint=upload_fingerprint(command),
    )
    uploaded = PrescriptionUploaded(
        prescription_id=prescription.id,
        order_id=prescription.order_id,
        patient_id=prescription.patient_id,
        lines=command.lines,
        delivery_location=command.delivery_location,
        payment_method_id=command.payment_method_id,
    )
    return prescription, [uploaded]


def upload_fingerprint(upload: UploadPrescription | PrescriptionUploaded) -> str:
    """A sha256 of what the patient asked for, the same from the command and from the event it made."""
    asked = upload.model_dump(
        mode="json", include={"patient_id", "lines", "delivery_location", "payment_method_id"}
    )
    return sha256(json.dumps(asked, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def upload_again(existing: Prescription, command: UploadPrescription) -> Prescription:
    """An upload whose request already made `existing`: a redelivery or a client's retry gets it back.

    Refused with UploadKeyReused when it asks for something else: the answer would not be for it.
    """
    if existing.fingerprint not in (None, upload_fingerprint(command)):
        raise UploadKeyReused("this idempotency key was already used for an upload of other contents")
    return existing


def restore_upload(uploaded: PrescriptionUploaded, at: datetime) -> Prescription:
    """Rebuilding from the journal: the prescription as its upload made it."""
    return Prescription(
        id=uploaded.prescription_id,
        patient_id=uploaded.patient_id,
        order_id=uploaded.order_id,
        lines=list(uploaded.lines),
        delivery_location=uploaded.delivery_location,
        payment_method_id=uploaded.payment_method_id,
        uploaded_at=at,
        fingerprint=upload_fingerprint(uploaded),
    )


def withdraw(prescription: Prescription, now: datetime) -> list[Event]:
    """The patient takes the prescription back: hidden from view, kept for the record.

    An order not yet paid is cancelled by order_service when it hears of it.
    """
    if prescription.withdrawn_at is not None:
        return []
    prescription.withdrawn_at = now
    was_open = prescription.status == "PROCESSING"
    prescription.status = "WITHDRAWN" if was_open else prescription.status
    return [
        PrescriptionWithdrawn(
            prescription_id=prescription.id,
            order_id=prescription.order_id,
            patient_id=prescription.patient_id,
        )
    ]


def follow_order(prescription: Prescription, outcome: PrescriptionStatus) -> list[Event]:
    """Reflect the order's end; a withdrawn prescription stays withdrawn.

    A confirmed order is cancelled after all when its payment lost the race with the reservation's
    expiry (stock never sold, charge refunded): the prescription was not filled, so it follows.
    """
    if prescription.status == "PROCESSING" or (prescription.status, outcome) == ("FILLED", "CANCELLED"):
        prescription.status = outcome
    return []
