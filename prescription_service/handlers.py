"""One thin function per message: store uploads, follow the order, withdraw on request."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from contracts.base import Envelope, Event, FieldProblem
from contracts.commands import (
    AnswerPrescription,
    ApprovePrescription,
    GetPrescription,
    GetPrescriptionDocument,
    GetVerification,
    HoldPrescription,
    ImportFhirPrescription,
    ListPrescriptions,
    ListVerificationQueue,
    PrescriptionDocumentView,
    PrescriptionView,
    RefillPrescription,
    RefillView,
    RejectPrescription,
    UploadPrescription,
    VerificationEntry,
    WithdrawPrescription,
)
from contracts.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderRejected,
    OrderReturned,
    PrescriptionAnswered,
    PrescriptionHeld,
    PrescriptionRefilled,
    PrescriptionRejected,
    PrescriptionUploaded,
    PrescriptionVerified,
    PrescriptionWithdrawn,
)
from prescription_service import domain, intake, store
from prescription_service.documents import Documents
from prescription_service.domain import Prescription, PrescriptionStatus
from prescription_service.fhir import FhirRefused
from service_runtime.aggregate import minted_id
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, PermanentFailure
from service_runtime.service import Service, wrap
from service_runtime.store import Repository


def register(service: Service, prescriptions: Repository[Prescription], documents: Documents) -> None:
    async def follow(
        prescription_id: str, order_id: str, outcome: PrescriptionStatus, envelope: Envelope
    ) -> None:
        # By id: the order events carry it, and a lookup by any other field is a scan on FerretDB.
        if await prescriptions.get(prescription_id) is None:
            raise PermanentFailure(
                f"order {envelope.correlation_id} names unknown prescription {prescription_id}"
            )
        await service.change(
            prescriptions,
            prescription_id,
            lambda p: domain.follow_order(p, outcome, order_id),
            cause=envelope,
        )

    @service.events.on(OrderCreated)
    async def order_created(event: OrderCreated, envelope: Envelope) -> None:
        # The order was opened for our prescription: nothing changes until it ends, but we check it is ours.
        if await prescriptions.get(event.prescription_id) is None:
            raise PermanentFailure(
                f"order {event.order_id} names unknown prescription {event.prescription_id}"
            )

    @service.events.on(OrderConfirmed)
    async def order_confirmed(event: OrderConfirmed, envelope: Envelope) -> None:
        await follow(event.prescription_id, event.order_id, "FILLED", envelope)

    @service.events.on(OrderRejected)
    async def order_rejected(event: OrderRejected, envelope: Envelope) -> None:
        await follow(event.prescription_id, event.order_id, "REJECTED", envelope)

    @service.events.on(OrderCancelled)
    async def order_cancelled(event: OrderCancelled, envelope: Envelope) -> None:
        await follow(event.prescription_id, event.order_id, "CANCELLED", envelope)

    @service.events.on(OrderReturned)
    async def order_returned(event: OrderReturned, envelope: Envelope) -> None:
        await follow(event.prescription_id, event.order_id, "RETURNED", envelope)

    @service.events.on_own(PrescriptionUploaded)
    async def restore_upload(event: PrescriptionUploaded, envelope: Envelope) -> None:
        prescription = domain.restore_upload(event, envelope.occurred_at)
        # Its lines' flags came from its scan's draft, which no event carries: read again from the
        # document (restored from a backup before the replay), they are what the upload made.
        scanned = None if event.document_id is None else await documents.head(event.document_id)
        if scanned is not None and scanned.draft is not None:
            prescription.line_flags = domain.flags_against_draft(event.lines, scanned.draft)
        await prescriptions.add(prescription, caused_by=str(envelope.event_id))

    @service.events.on_own(PrescriptionWithdrawn)
    async def restore_withdrawal(event: PrescriptionWithdrawn, envelope: Envelope) -> None:
        await service.change(
            prescriptions,
            event.prescription_id,
            lambda p: domain.withdraw(p, envelope.occurred_at),
            cause=envelope,
        )

    for own, record in (
        (PrescriptionVerified, domain.record_verified),
        (PrescriptionRejected, domain.record_rejected),
        (PrescriptionHeld, domain.record_held),
        (PrescriptionAnswered, domain.record_answered),
        (PrescriptionRefilled, domain.record_refilled),
    ):
        _restore_decision(service, prescriptions, own, record)

    async def add_new(prescription: Prescription, events: list[Event], now: datetime) -> Prescription:
        if not await prescriptions.add(prescription, wrap(events, None, prescription.order_id, at=now)):
            # Delivered again after it was carried out, or retried by the patient with the same
            # Idempotency-Key: answer with what the first one made, if it asks for the same.
            existing = await prescriptions.get(prescription.id)
            assert existing is not None
            if existing.fingerprint not in (None, prescription.fingerprint):
                raise CommandRefused(
                    "invalid", "this idempotency key was already used for an upload of other contents"
                )
            prescription = existing
        await service.publish_pending(prescriptions, prescription.id)
        return prescription

    @service.commands.on(UploadPrescription)
    async def upload_prescription(command: UploadPrescription) -> PrescriptionView:
        now = utc_now()
        scanned = None
        if command.document_id is not None:
            scanned = await documents.head(command.document_id)
            if scanned is None or scanned.patient_id != command.patient_id:
                raise CommandRefused("invalid", "no scanned document of yours has this id", "document_id")
        with refusals():
            prescription, events = domain.upload(command, now, None if scanned is None else scanned.draft)
        if scanned is None:
            return (await add_new(prescription, events, now)).view()
        # One paper, one prescription: the same scan sent again is not a second one to fill.
        if not await documents.claim(scanned.document_id, prescription.id):
            holder = await documents.head(scanned.document_id)
            raise CommandRefused(
                "conflict",
                f"this document was already uploaded as prescription {holder and holder.prescription_id}",
                "document_id",
            )
        try:
            return (await add_new(prescription, events, now)).view()
        except BaseException:
            # Not stored (an Idempotency-Key reused for other contents, the store gone): the scan is
            # free again, unless an earlier delivery of this same upload had claimed it.
            if scanned.prescription_id is None:
                with contextlib.suppress(Exception):  # the refusal that got here is the one to answer
                    await documents.release(scanned.document_id, prescription.id)
            raise

    @service.commands.on(ImportFhirPrescription)
    async def import_fhir_prescription(command: ImportFhirPrescription) -> PrescriptionView:
        now = utc_now()
        with refusals():
            prescription, events = intake.import_fhir(command, now)
        return (await add_new(prescription, events, now)).view()

    async def decide(
        prescription_id: str,
        owner_id: str | None,
        decision: Callable[[Prescription, datetime], Sequence[Event]],
    ) -> PrescriptionView:
        prescription = await _visible(prescription_id, owner_id)
        now = utc_now()
        with refusals():
            changed = await service.change(
                prescriptions,
                prescription.id,
                lambda p: decision(p, now),
                cause=None,
                correlation_id=prescription.order_id,
                at=now,
            )
        return changed.view()

    @service.commands.on(ApprovePrescription)
    async def approve_prescription(command: ApprovePrescription) -> PrescriptionView:
        return await decide(command.prescription_id, None, lambda p, now: domain.approve(p, command, now))

    @service.commands.on(RejectPrescription)
    async def reject_prescription(command: RejectPrescription) -> PrescriptionView:
        return await decide(command.prescription_id, None, lambda p, now: domain.reject(p, command, now))

    @service.commands.on(HoldPrescription)
    async def hold_prescription(command: HoldPrescription) -> PrescriptionView:
        return await decide(command.prescription_id, None, lambda p, now: domain.hold(p, command, now))

    @service.commands.on(AnswerPrescription)
    async def answer_prescription(command: AnswerPrescription) -> PrescriptionView:
        return await decide(
            command.prescription_id, command.owner_id, lambda p, now: domain.answer(p, command, now)
        )

    @service.commands.on(RefillPrescription)
    async def refill_prescription(command: RefillPrescription) -> RefillView:
        if command.request_id is None:
            raise CommandRefused("invalid", "a refill needs a request id: it names the refill's order")
        await _visible(command.prescription_id, command.owner_id)
        now = utc_now()
        # The refill's events belong to its own order's saga.
        order_id = minted_id(command.request_id, "refill-order")
        with refusals():
            prescription = await service.change(
                prescriptions,
                command.prescription_id,
                lambda p: domain.refill(p, command, now),
                cause=None,
                correlation_id=order_id,
                at=now,
            )
        made = prescription.refills_made()
        return RefillView(
            prescription_id=prescription.id,
            order_id=order_id,
            refills_left=domain.refills_left(prescription, made, now.date()),
        )

    @service.commands.on(ListVerificationQueue)
    async def list_verification_queue(command: ListVerificationQueue) -> list[VerificationEntry]:
        waiting = await store.verification_queue(
            prescriptions, limit=command.page.limit, offset=command.page.offset
        )
        return [await _verification_entry(prescription) for prescription in waiting]

    async def _verification_entry(prescription: Prescription) -> VerificationEntry:
        earlier = await store.earlier_of_the_same(prescriptions, prescription)
        scanned = None if prescription.document_id is None else await documents.head(prescription.document_id)
        return VerificationEntry(
            prescription=prescription.view(),
            earlier=tuple(p.view() for p in earlier),
            draft=None if scanned is None else scanned.draft,
        )

    @service.commands.on(GetVerification)
    async def get_verification(command: GetVerification) -> VerificationEntry:
        return await _verification_entry(await _visible(command.prescription_id, None))

    @service.commands.on(ListPrescriptions)
    async def list_prescriptions(command: ListPrescriptions) -> list[PrescriptionView]:
        found = await store.list_prescriptions(
            prescriptions, owner_id=command.owner_id, limit=command.page.limit, offset=command.page.offset
        )
        today = utc_now().date()
        return [p.view(today) for p in found]

    async def _visible(prescription_id: str, owner_id: str | None) -> Prescription:
        prescription = await prescriptions.get(prescription_id)
        if (
            prescription is None
            or prescription.withdrawn_at is not None
            or (owner_id is not None and prescription.patient_id != owner_id)
        ):
            raise CommandRefused("not_found", f"prescription {prescription_id} not found")
        return prescription

    @service.commands.on(GetPrescription)
    async def get_prescription(command: GetPrescription) -> PrescriptionView:
        return (await _visible(command.prescription_id, command.owner_id)).view(utc_now().date())

    @service.commands.on(GetPrescriptionDocument)
    async def get_prescription_document(command: GetPrescriptionDocument) -> PrescriptionDocumentView:
        prescription = await _visible(command.prescription_id, command.owner_id)
        if prescription.document is not None:
            return PrescriptionDocumentView(media_type="application/fhir+json", content=prescription.document)
        scanned = None if prescription.document_id is None else await documents.get(prescription.document_id)
        if scanned is None:
            raise CommandRefused("not_found", "no document is kept with this prescription: it was typed")
        return PrescriptionDocumentView(
            media_type=scanned.content_type, content_base64=base64.b64encode(scanned.content).decode()
        )

    @service.commands.on(WithdrawPrescription)
    async def withdraw_prescription(command: WithdrawPrescription) -> None:
        prescription = await _visible(command.prescription_id, command.owner_id)
        now = utc_now()
        await service.change(
            prescriptions,
            prescription.id,
            lambda p: domain.withdraw(p, now),
            cause=None,
            correlation_id=prescription.order_id,
            at=now,
        )


@contextmanager
def refusals() -> Iterator[None]:
    """The domain's refusals, as the answers the gateway maps to HTTP (once, here)."""
    try:
        yield
    except domain.NeedsDocument as exc:
        raise CommandRefused("invalid", str(exc), field=f"lines.{exc.line}.medication_id") from exc
    except domain.RefillsNotAllowed as exc:
        raise CommandRefused("invalid", str(exc), field="repeats_allowed") from exc
    except domain.ImplausibleDate as exc:
        raise CommandRefused("invalid", str(exc), field=exc.field) from exc
    except FhirRefused as exc:
        problems = tuple(FieldProblem(field=p.location, message=p.message) for p in exc.problems)
        raise CommandRefused("invalid", f"the FHIR document was refused: {exc}", errors=problems) from exc
    except (domain.NotAPharmacist, domain.OwnPrescription) as exc:
        raise CommandRefused("forbidden", str(exc)) from exc
    except (domain.PrescriptionExpired, domain.NotAwaitingVerification, domain.NotRefillable) as exc:
        raise CommandRefused("conflict", str(exc)) from exc


def _restore_decision(
    service: Service,
    prescriptions: Repository[Prescription],
    event_type: type[Any],
    record: Callable[[Prescription, Any, datetime], list[Event]],
) -> None:
    """Rebuilding from the journal: a pharmacist's (or the patient's) decision is kept again."""

    async def restore(event: Any, envelope: Envelope) -> None:
        await service.change(
            prescriptions,
            event.prescription_id,
            lambda p: record(p, event, envelope.occurred_at),
            cause=envelope,
        )

    restore.__name__ = f"restore_{event_type.__name__}"
    service.events.on_own(event_type)(restore)
