"""The pharmacist's verification screens on the web UI: the queue, one prescription beside its
document, and the three decisions (approve, with corrections; reject with a coded reason; hold with a
question). Every rule is the API's: these pages call `verifications.*` with the signed-in user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from contracts import commands as c
from contracts.events import RejectionReason
from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service.deps import MAX_ID_LENGTH, ResourceId, Rpc
from user_service.problems import FieldInvalid
from user_service.routes import catalogue, verifications
from user_service.routes.prescriptions import medications_by_id
from user_service.schemas import ApproveIn, HoldIn, MedicationOut, RejectIn, VerificationOut
from user_service.web.common import (
    PageRoute,
    SignedIn,
    StaffPage,
    audited_page,
    field_messages,
    redirect,
    render,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

QUEUE_PAGE = 50
# Why a line needs a closer look, in words (the flag's code is shown too, for the record).
FLAG_WORDS = {
    "LOW_CONFIDENCE": "Low confidence: the scan was hard to read",
    "CLOSE_RUNNER_UP": "Close runner-up: another medication nearly matched",
    "LOOK_ALIKE": "Look-alike or sound-alike name",
    "STRENGTH_NOT_STOCKED": "Strength not stocked",
    "STRENGTH_MISSING": "No strength read",
    "FORM_MISMATCH": "Form differs from the catalogue's",
    "QUANTITY_MISSING": "No quantity read",
    "UNPARSED": "Not understood: read as text only",
    "NO_MATCH": "No catalogue match",
    "NOT_IN_DRAFT": "Not in the scan: named by the patient only",
    "QUANTITY_CHANGED": "Quantity differs from the scan",
    "MATCHED_BY_NAME": "Matched by name only, not by a code",
}
REASON_WORDS: dict[str, str] = {
    "ILLEGIBLE": "Illegible",
    "EXPIRED": "Expired",
    "NOT_A_PRESCRIPTION": "Not a prescription",
    "PRESCRIBER_UNVERIFIED": "Prescriber could not be verified",
    "PATIENT_MISMATCH": "Patient does not match",
    "CLINICAL_CONCERN": "Clinical concern",
    "CONTROLLED_SUBSTANCE_RULES": "Controlled-substance rules not met",
    "OTHER": "Other (say why in the note)",
}
REASONS = [(code, REASON_WORDS.get(code, code)) for code in get_args(RejectionReason)]
PRESCRIPTION_STATUS_WORDS = {
    "PENDING_VERIFICATION": "Waiting for a pharmacist",
    "ON_HOLD": "On hold: waiting for the patient's answer",
    "PROCESSING": "Approved: its order is under way",
    "FILLED": "Filled",
    "REJECTED": "Rejected",
    "CANCELLED": "Cancelled",
    "RETURNED": "Returned",
    "WITHDRAWN": "Withdrawn",
}
DECIDED = {
    "approved": "approved: its order goes on to stock and payment",
    "rejected": "rejected: its order is rejected, with your reason",
    "held": "put on hold: your question was sent to the patient",
}
# How many letters of a line's name find its look-alikes in the catalogue, for the correction's choice.
LOOK_ALIKE_PREFIX = 3


def flag_words(flag: str) -> str:
    return FLAG_WORDS.get(flag, flag.replace("_", " ").capitalize())


def page_context() -> dict[str, Any]:
    return {
        "flag_words": flag_words,
        "reasons": REASONS,
        "prescription_status_words": PRESCRIPTION_STATUS_WORDS,
    }


async def names_of(rpc: Rpc, ids: Sequence[str]) -> dict[str, MedicationOut]:
    """The medications named, in one question; none (ids shown) when the catalogue does not answer."""
    if not ids:
        return {}
    try:
        found = await medications_by_id(rpc, ids)
    except ServiceUnavailable:
        return {}
    return {m.id: MedicationOut.of(m) for m in found}


def line_flags(entry: VerificationOut) -> dict[int, list[str]]:
    return {f.line: f.flags for f in entry.prescription.flags}


@router.get("/verifications", dependencies=[audited_page("verification.queue")])
async def verification_queue(
    request: Request,
    web: StaffPage,
    rpc: Rpc,
    decided: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
    decision: Annotated[str | None, Query(max_length=20)] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    """Prescriptions waiting for a pharmacist, oldest first, each with its flags, a page at a time;
    after a decision, which one and what was decided."""
    found = await verifications.verification_queue(web.user, rpc, c.Page(limit=QUEUE_PAGE, offset=offset))
    ids = [line.medication_id for e in found.items for line in e.prescription.lines]
    confirmation = None
    if decided is not None and decision in DECIDED:
        confirmation = f"Prescription {decided[:8]} {DECIDED[decision]}."
    return render(
        request,
        "pharmacist_queue.html",
        web,
        entries=found.items,
        names=await names_of(rpc, ids),
        line_flags=line_flags,
        confirmation=confirmation,
        offset=offset,
        newer=max(offset - QUEUE_PAGE, 0) if offset else None,
        older=offset + QUEUE_PAGE if len(found.items) == QUEUE_PAGE else None,
        **page_context(),
    )


async def verification_page(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    prescription_id: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    """One prescription beside its document, with the decisions' forms (their errors and values)."""
    entry = await verifications.get_verification(prescription_id, web.user, rpc)
    named = [line.medication_id for p in (entry.prescription, *entry.earlier) for line in p.lines]
    named += [line.medication_id for line in (entry.draft.lines if entry.draft else []) if line.medication_id]
    names = await names_of(rpc, named)
    return render(
        request,
        "pharmacist_verification.html",
        web,
        status=status,
        entry=entry,
        p=entry.prescription,
        names=names,
        flags=line_flags(entry),
        choices=await correction_choices(rpc, web, names),
        errors=errors or {},
        values=values or {},
        **page_context(),
    )


async def correction_choices(rpc: Rpc, web: SignedIn, names: dict[str, MedicationOut]) -> list[MedicationOut]:
    """What a line may be corrected to: its own medication, what the scan matched, and the catalogue's
    names that start as each of them does (where a look-alike is found)."""
    choices = dict(names)
    prefixes = {m.name[:LOOK_ALIKE_PREFIX] for m in names.values() if len(m.name) >= LOOK_ALIKE_PREFIX}
    for prefix in sorted(prefixes):
        try:
            listed = await catalogue.list_medications(web.user, rpc, c.Page(limit=20, offset=0), None, prefix)
        except (ServiceUnavailable, CommandRefused):
            continue
        choices.update({m.id: m for m in listed.items})
    return sorted(choices.values(), key=lambda m: (m.name.casefold(), m.strength))


@router.get(
    "/verifications/{prescription_id}", dependencies=[audited_page("verification.read", "prescription_id")]
)
async def verification(
    request: Request, prescription_id: ResourceId, web: StaffPage, rpc: Rpc
) -> HTMLResponse:
    return await verification_page(request, web, rpc, prescription_id)


def decided(request: Request, prescription_id: str, decision: str) -> Response:
    return redirect(request, f"/verifications?decided={prescription_id}&decision={decision}")


async def refused_or_raise(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    prescription_id: str,
    exc: CommandRefused,
    form: str,
    values: dict[str, Any],
) -> HTMLResponse:
    """A conflict (expired, decided meanwhile) is said beside the decision's form, and a correction the
    rules refuse (a typed line corrected to a prescription-only one, refills a schedule forbids) beside
    its line, or the form, with what was typed kept; any other refusal (another's, one's own
    prescription) is the route class's page."""
    if exc.code == "invalid" and exc.field:
        loc = tuple(exc.field.split("."))
        # A field the form has no input for (repeats_allowed) is said beside the form.
        shown = line_field(loc) if loc[0] == "lines" else FORM_INPUTS[form].get(loc[0], form)
        errors = {shown: f"{exc.detail}."}
        return await verification_page(request, web, rpc, prescription_id, 422, errors, values)
    if exc.code != "conflict":
        raise exc
    return await verification_page(request, web, rpc, prescription_id, 409, {form: f"{exc.detail}."}, values)


# The inputs each decision's form has, by the API's field name: where a refusal of that field is shown.
FORM_INPUTS = {
    "approve": {"note": "note"},
    "reject": {"reason": "reason", "note": "reject_note"},
    "hold": {"question": "question"},
}


def line_field(loc: Sequence[int | str]) -> str:
    """The input a line's error is shown beside: `medication-<i>` or `quantity-<i>`; else the field."""
    if len(loc) >= 3 and loc[0] == "lines":
        return f"{'medication' if loc[2] == 'medication_id' else 'quantity'}-{loc[1]}"
    return "approve" if loc[0] == "lines" else str(loc[0])


@router.post(
    "/verifications/{prescription_id}/approve",
    dependencies=[audited_page("prescription.approve", "prescription_id")],
)
async def approve(request: Request, prescription_id: ResourceId, web: StaffPage, rpc: Rpc) -> Response:
    form = await request.form()
    medication_ids = [str(v) for v in form.getlist("medication_id")][:50]
    quantities = [str(v) for v in form.getlist("quantity")][:50]
    note = str(form.get("note") or "").strip()
    values = {"medication_ids": medication_ids, "quantities": quantities, "note": note}
    current = await verifications.get_verification(prescription_id, web.user, rpc)
    as_sent = [(line.medication_id, str(line.quantity)) for line in current.prescription.lines]
    corrected = list(zip(medication_ids, quantities, strict=False)) != as_sent
    try:
        body = ApproveIn.model_validate(
            {
                "lines": [
                    {"medication_id": m, "quantity": int(q) if q.strip().isdigit() else q}
                    for m, q in zip(medication_ids, quantities, strict=False)
                ]
                if corrected
                else None,
                "note": note or None,
            }
        )
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            loc = error["loc"]
            errors.setdefault(line_field(loc), str(error["msg"]).removeprefix("Value error, "))
        return await verification_page(request, web, rpc, prescription_id, 422, errors, values)
    try:
        await verifications.approve(prescription_id, web.user, rpc, request.state.audit, body)
    except FieldInvalid as exc:  # a line's medication the catalogue does not have
        errors = {line_field(tuple(exc.field.split("."))): f"{exc.message}."}
        return await verification_page(request, web, rpc, prescription_id, 422, errors, values)
    except CommandRefused as exc:
        return await refused_or_raise(request, web, rpc, prescription_id, exc, "approve", values)
    return decided(request, prescription_id, "approved")


@router.post(
    "/verifications/{prescription_id}/reject",
    dependencies=[audited_page("prescription.reject", "prescription_id")],
)
async def reject(
    request: Request,
    prescription_id: ResourceId,
    web: StaffPage,
    rpc: Rpc,
    reason: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    values = {"reason": reason, "reject_note": note}
    try:
        body = RejectIn.model_validate({"reason": reason, "note": note.strip() or None})
    except ValidationError as exc:
        errors = field_messages(exc, {"reason": "reason", "note": "reject_note"})
        if "reason" in errors:
            errors["reason"] = "choose the reason from the list"
        return await verification_page(request, web, rpc, prescription_id, 422, errors, values)
    try:
        await verifications.reject(prescription_id, body, web.user, rpc, request.state.audit)
    except CommandRefused as exc:
        return await refused_or_raise(request, web, rpc, prescription_id, exc, "reject", values)
    return decided(request, prescription_id, "rejected")


@router.post(
    "/verifications/{prescription_id}/hold",
    dependencies=[audited_page("prescription.hold", "prescription_id")],
)
async def hold(
    request: Request,
    prescription_id: ResourceId,
    web: StaffPage,
    rpc: Rpc,
    question: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    values = {"question": question}
    try:
        body = HoldIn.model_validate({"question": question.strip()})
    except ValidationError as exc:
        errors = field_messages(exc)
        if "question" in errors and not question.strip():
            errors["question"] = "write the question the patient should answer"
        return await verification_page(request, web, rpc, prescription_id, 422, errors, values)
    try:
        await verifications.hold(prescription_id, body, web.user, rpc, request.state.audit)
    except CommandRefused as exc:
        return await refused_or_raise(request, web, rpc, prescription_id, exc, "hold", values)
    return decided(request, prescription_id, "held")
