"""The pharmacists' verification queue and their decisions (prescription_service behind RPC).

Any pharmacist verifies (a central team); an admin may too. Each decision is an event, kept with the
prescription (who, when, why) and in the audit log (who, when, the decision and its coded reason).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from contracts import commands as c
from user_service.audit import Audit, audited
from user_service.deps import Paging, ResourceId, Rpc, Staff
from user_service.routes.prescriptions import catalogue_of, classified
from user_service.schemas import ApproveIn, HoldIn, Page, PrescriptionOut, RejectIn, VerificationOut

router = APIRouter(tags=["verifications"])


@router.get(
    "/verifications",
    response_model=Page[VerificationOut],
    dependencies=[audited("verification.queue")],
)
async def verification_queue(pharmacist: Staff, rpc: Rpc, page: Paging) -> Page[VerificationOut]:
    """Prescriptions waiting for a pharmacist, oldest first, each with its lines' flags and the
    patient's earlier prescriptions of the same medications."""
    found = await rpc.ask(c.ListVerificationQueue(page=page), list[c.VerificationEntry])
    return Page(items=[VerificationOut.of(entry) for entry in found], limit=page.limit, offset=page.offset)


@router.get(
    "/verifications/{prescription_id}",
    response_model=VerificationOut,
    dependencies=[audited("verification.read", subject="prescription_id")],
)
async def get_verification(prescription_id: ResourceId, pharmacist: Staff, rpc: Rpc) -> VerificationOut:
    """One prescription as the queue shows it, whatever its status: its lines' flags, what was read
    from its scan, and the patient's earlier prescriptions of the same medications."""
    entry = await rpc.ask(c.GetVerification(prescription_id=prescription_id), c.VerificationEntry)
    return VerificationOut.of(entry)


@router.post(
    "/verifications/{prescription_id}/approve",
    response_model=PrescriptionOut,
    dependencies=[audited("prescription.approve", subject="prescription_id")],
)
async def approve(
    prescription_id: ResourceId, pharmacist: Staff, rpc: Rpc, audit: Audit, body: ApproveIn | None = None
) -> PrescriptionOut | JSONResponse:
    """Approve the prescription, optionally with corrected `lines`: its order goes on to stock and
    payment. 403 for one's own prescription, 409 when expired or not awaiting verification."""
    body = body or ApproveIn()
    lines = None
    if body.lines is not None:
        lines = tuple(classified(body.lines, await catalogue_of(rpc, body.lines)))
    command = c.ApprovePrescription(
        prescription_id=prescription_id,
        pharmacist_id=pharmacist.id,
        pharmacist_role=pharmacist.role,
        lines=lines,
        note=body.note,
    )
    audit.details = {"decision": "approved", "corrected": str(lines is not None).lower()}
    return PrescriptionOut.of(await rpc.ask(command, c.PrescriptionView))


@router.post(
    "/verifications/{prescription_id}/reject",
    response_model=PrescriptionOut,
    dependencies=[audited("prescription.reject", subject="prescription_id")],
)
async def reject(
    prescription_id: ResourceId, body: RejectIn, pharmacist: Staff, rpc: Rpc, audit: Audit
) -> PrescriptionOut:
    """Reject the prescription with a coded `reason` and a `note`: its order is REJECTED, saying why."""
    command = c.RejectPrescription(
        prescription_id=prescription_id,
        pharmacist_id=pharmacist.id,
        pharmacist_role=pharmacist.role,
        reason=body.reason,
        note=body.note,
    )
    audit.details = {"decision": "rejected", "reason": body.reason}
    return PrescriptionOut.of(await rpc.ask(command, c.PrescriptionView))


@router.post(
    "/verifications/{prescription_id}/hold",
    response_model=PrescriptionOut,
    dependencies=[audited("prescription.hold", subject="prescription_id")],
)
async def hold(
    prescription_id: ResourceId, body: HoldIn, pharmacist: Staff, rpc: Rpc, audit: Audit
) -> PrescriptionOut:
    """Ask the patient a `question`; the prescription leaves the queue until they answer it."""
    command = c.HoldPrescription(
        prescription_id=prescription_id,
        pharmacist_id=pharmacist.id,
        pharmacist_role=pharmacist.role,
        question=body.question,
    )
    audit.details = {"decision": "held"}
    return PrescriptionOut.of(await rpc.ask(command, c.PrescriptionView))
