"""Prescriptions (prescription_service behind RPC). Uploading one starts the order saga."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from contracts import commands as c
from contracts.events import Location, PrescribedLine
from service_runtime.errors import CommandRefused, ServiceUnavailable
from service_runtime.messaging import RpcClient
from user_service.audit import Audit, audited
from user_service.deps import CurrentUser, IdempotencyKey, Paging, Patient, ResourceId, Rpc, UserFilter
from user_service.domain import keyed_request_id, owner_scope
from user_service.problems import RESPONSES, field_error
from user_service.schemas import Page, PrescriptionIn, PrescriptionOut

router = APIRouter(tags=["prescriptions"])
log = logging.getLogger(__name__)
# The pre-checks are a courtesy: a slow service must not hold the upload for the full RPC timeout.
PRECHECK_SECONDS = 3.0


@router.post(
    "/prescriptions",
    status_code=202,
    response_model=PrescriptionOut,
    dependencies=[audited("prescription.upload", subject="prescription_id")],
    responses={
        422: {
            **RESPONSES[422],
            "description": "invalid input, an unknown medication or payment method, or an "
            "Idempotency-Key already used for another upload",
        }
    },
)
async def upload_prescription(
    body: PrescriptionIn, patient: Patient, rpc: Rpc, audit: Audit, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Accept a prescription; the order is then created, stocked and paid by itself.

    Answers 202 with the prescription, whose `order_id` can be followed at /orders/{order_id}.
    Retried with the same Idempotency-Key, it answers with the prescription the first upload made.
    """
    # Refuse what can never succeed now, with the field at fault, rather than as a rejected order later.
    # Best effort: with a service briefly down the upload is still taken, and the saga itself
    # declines an unknown card or rejects an unknown medication.
    try:
        problem = await _unknown_references(body, patient.id, rpc)
    except ServiceUnavailable as exc:
        log.warning("upload accepted without checking its references: %s", exc)
        problem = None
    if problem is not None:
        return problem
    command = c.UploadPrescription(
        patient_id=patient.id,
        lines=tuple(
            PrescribedLine(medication_id=line.medication_id, quantity=line.quantity) for line in body.lines
        ),
        delivery_location=Location(
            latitude=body.delivery_location.latitude, longitude=body.delivery_location.longitude
        ),
        payment_method_id=body.payment_method_id,
        request_id=None if idempotency_key is None else keyed_request_id(patient.id, idempotency_key),
    )
    created = PrescriptionOut.of(await rpc.ask(command, c.PrescriptionView))
    audit.subject_id = created.id
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/v1/prescriptions/{created.id}"},
    )


async def _unknown_references(body: PrescriptionIn, patient_id: str, rpc: RpcClient) -> JSONResponse | None:
    ids = tuple(dict.fromkeys(line.medication_id for line in body.lines))
    # Two services, two questions: asked at once, so the upload waits for the slower one only.
    # Both answers are awaited, whatever the first says: no RPC is left running unattended.
    card_known, found = await asyncio.gather(
        _payment_method_known(rpc, patient_id, body.payment_method_id),
        _medications(rpc, ids),
        return_exceptions=True,
    )
    if isinstance(card_known, BaseException):
        raise card_known
    if not card_known:
        return field_error("payment_method_id", "no such payment method of yours")
    if isinstance(found, BaseException):
        raise found
    known = {m.id for m in found}
    for i, line in enumerate(body.lines):
        if line.medication_id not in known:
            return field_error(f"lines.{i}.medication_id", "no such medication in the catalogue")
    return None


async def _medications(rpc: RpcClient, ids: tuple[str, ...]) -> list[c.MedicationView]:
    found: list[c.MedicationView] = await rpc.ask(
        c.ListMedications(medication_ids=ids), list[c.MedicationView], timeout=PRECHECK_SECONDS
    )
    return found


async def _payment_method_known(rpc: RpcClient, patient_id: str, payment_method_id: str) -> bool:
    try:
        await rpc.ask(
            c.GetPaymentMethod(owner_id=patient_id, payment_method_id=payment_method_id),
            dict,
            timeout=PRECHECK_SECONDS,
        )
    except CommandRefused as exc:
        if exc.code != "not_found":
            raise
        return False
    return True


@router.get(
    "/prescriptions",
    response_model=Page[PrescriptionOut],
    dependencies=[audited("prescription.list", subject="user_id")],
)
async def list_prescriptions(
    user: CurrentUser, rpc: Rpc, page: Paging, user_id: UserFilter = None
) -> Page[PrescriptionOut]:
    command = c.ListPrescriptions(owner_id=owner_scope(user, user_id), page=page)
    found = await rpc.ask(command, list[c.PrescriptionView])
    return Page(items=[PrescriptionOut.of(p) for p in found], limit=page.limit, offset=page.offset)


@router.get(
    "/prescriptions/{prescription_id}",
    response_model=PrescriptionOut,
    dependencies=[audited("prescription.read", subject="prescription_id")],
)
async def get_prescription(prescription_id: ResourceId, user: CurrentUser, rpc: Rpc) -> PrescriptionOut:
    command = c.GetPrescription(owner_id=owner_scope(user, None), prescription_id=prescription_id)
    return PrescriptionOut.of(await rpc.ask(command, c.PrescriptionView))


@router.delete(
    "/prescriptions/{prescription_id}",
    status_code=204,
    dependencies=[audited("prescription.withdraw", subject="prescription_id")],
)
async def withdraw_prescription(prescription_id: ResourceId, user: CurrentUser, rpc: Rpc) -> Response:
    """Withdraw a prescription: it leaves every listing and its order is cancelled if not yet paid."""
    command = c.WithdrawPrescription(owner_id=owner_scope(user, None), prescription_id=prescription_id)
    await rpc.ask(command, None)
    return Response(status_code=204)
