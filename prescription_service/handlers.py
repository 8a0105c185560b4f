"""One thin function per message: store uploads, follow the order, withdraw on request."""

from __future__ import annotations

from contracts.base import Envelope
from contracts.commands import (
    GetPrescription,
    ListPrescriptions,
    PrescriptionView,
    UploadPrescription,
    WithdrawPrescription,
)
from contracts.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderRejected,
    PrescriptionUploaded,
    PrescriptionWithdrawn,
)
from prescription_service import domain, store
from prescription_service.domain import Prescription, PrescriptionStatus
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, PermanentFailure
from service_runtime.service import Service, wrap
from service_runtime.store import Repository


def register(service: Service, prescriptions: Repository[Prescription]) -> None:
    async def follow(prescription_id: str, outcome: PrescriptionStatus, envelope: Envelope) -> None:
        # By id: the order events carry it, and a lookup by any other field is a scan on FerretDB.
        if await prescriptions.get(prescription_id) is None:
            raise PermanentFailure(
                f"order {envelope.correlation_id} names unknown prescription {prescription_id}"
            )
        await service.change(
            prescriptions, prescription_id, lambda p: domain.follow_order(p, outcome), cause=envelope
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
        await follow(event.prescription_id, "FILLED", envelope)

    @service.events.on(OrderRejected)
    async def order_rejected(event: OrderRejected, envelope: Envelope) -> None:
        await follow(event.prescription_id, "REJECTED", envelope)

    @service.events.on(OrderCancelled)
    async def order_cancelled(event: OrderCancelled, envelope: Envelope) -> None:
        await follow(event.prescription_id, "CANCELLED", envelope)

    @service.events.on_own(PrescriptionUploaded)
    async def restore_upload(event: PrescriptionUploaded, envelope: Envelope) -> None:
        prescription = domain.restore_upload(event, envelope.occurred_at)
        await prescriptions.add(prescription, caused_by=str(envelope.event_id))

    @service.events.on_own(PrescriptionWithdrawn)
    async def restore_withdrawal(event: PrescriptionWithdrawn, envelope: Envelope) -> None:
        await service.change(
            prescriptions,
            event.prescription_id,
            lambda p: domain.withdraw(p, envelope.occurred_at),
            cause=envelope,
        )

    @service.commands.on(UploadPrescription)
    async def upload_prescription(command: UploadPrescription) -> PrescriptionView:
        now = utc_now()
        prescription, events = domain.upload(command, now)
        if not await prescriptions.add(prescription, wrap(events, None, prescription.order_id, at=now)):
            # Delivered again after it was carried out, or retried by the patient with the same
            # Idempotency-Key: answer with what the first one made, if it asks for the same.
            existing = await prescriptions.get(prescription.id)
            assert existing is not None
            try:
                prescription = domain.upload_again(existing, command)
            except domain.UploadKeyReused as exc:
                raise CommandRefused("invalid", str(exc)) from exc
        await service.publish_pending(prescriptions, prescription.id)
        return prescription.view()

    @service.commands.on(ListPrescriptions)
    async def list_prescriptions(command: ListPrescriptions) -> list[PrescriptionView]:
        found = await store.list_prescriptions(
            prescriptions, owner_id=command.owner_id, limit=command.page.limit, offset=command.page.offset
        )
        return [p.view() for p in found]

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
        return (await _visible(command.prescription_id, command.owner_id)).view()

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
