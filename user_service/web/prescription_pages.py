"""A patient's prescriptions on the web UI: the list, one prescription's page, and what the patient
does with it there: answer the pharmacist's question, refill, withdraw."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from contracts import commands as c
from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service.deps import ResourceId, Rpc
from user_service.routes import payments, prescriptions
from user_service.routes.prescriptions import medications_by_id
from user_service.schemas import AnswerIn, PrescriptionOut, RefillIn
from user_service.web.common import (
    PageRoute,
    PatientPage,
    SignedIn,
    audited_page,
    field_messages,
    redirect,
    render,
)
from user_service.web.new_order import number

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PRESCRIPTION_WORDS = {
    "PENDING_VERIFICATION": "Waiting for a pharmacist",
    "ON_HOLD": "A pharmacist asks you a question",
    "PROCESSING": "Verified: its order is under way",
    "FILLED": "Filled",
    "REJECTED": "Rejected by a pharmacist",
    "CANCELLED": "Its order was cancelled",
    "RETURNED": "Its order came back undelivered",
    "WITHDRAWN": "Withdrawn",
}
REFILL_FIELDS = {
    "delivery_location.latitude": "latitude",
    "delivery_location.longitude": "longitude",
    "payment_method_id": "payment_method_id",
}


async def line_names(rpc: Rpc, found: list[PrescriptionOut]) -> dict[str, str]:
    """Each line's medication as the patient knows it; its id if the catalogue no longer lists it."""
    ids = [line.medication_id for p in found for line in p.lines]
    try:
        listed = await medications_by_id(rpc, ids) if ids else []
    except ServiceUnavailable:
        return {}
    return {m.id: f"{m.name} {m.strength}" for m in listed}


@router.get("/prescriptions", dependencies=[audited_page("prescription.list")])
async def prescription_list(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    found = await prescriptions.list_prescriptions(web.user, rpc, c.Page(limit=50, offset=0), None)
    return render(
        request,
        "patient_prescriptions.html",
        web,
        prescriptions=found.items,
        names=await line_names(rpc, found.items),
        words=PRESCRIPTION_WORDS,
    )


async def prescription_page(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    prescription_id: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    """One prescription with its forms, and the errors and values of the one sent."""
    found = await prescriptions.get_prescription(prescription_id, web.user, rpc)
    cards = await payments.list_payment_methods(web.user, rpc)
    where = {
        "latitude": str(round(found.delivery_location.latitude, 6)),
        "longitude": str(round(found.delivery_location.longitude, 6)),
        "payment_method_id": found.payment_method_id,
        "form_id": str(uuid4()),
    }
    return render(
        request,
        "patient_prescription.html",
        web,
        status=status,
        prescription=found,
        names=await line_names(rpc, [found]),
        words=PRESCRIPTION_WORDS,
        cards=cards.items,
        errors=errors or {},
        values={**where, **(values or {})},
    )


@router.get(
    "/prescriptions/{prescription_id}", dependencies=[audited_page("prescription.read", "prescription_id")]
)
async def prescription(
    request: Request, prescription_id: ResourceId, web: PatientPage, rpc: Rpc
) -> HTMLResponse:
    return await prescription_page(request, web, rpc, prescription_id)


@router.post(
    "/prescriptions/{prescription_id}/answer",
    dependencies=[audited_page("prescription.answer", "prescription_id")],
)
async def answer(
    request: Request,
    prescription_id: ResourceId,
    web: PatientPage,
    rpc: Rpc,
    answer: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """The patient's answer to the pharmacist's question: the prescription goes back to the queue."""
    values = {"answer": answer}  # a refused answer is put back in the box, to correct
    try:
        body = AnswerIn(answer=answer.strip())
        await prescriptions.answer_pharmacist(prescription_id, body, web.user, rpc)
    except ValidationError as exc:
        errors = field_messages(exc)
        return await prescription_page(
            request, web, rpc, prescription_id, status=422, errors=errors, values=values
        )
    except CommandRefused as exc:
        if exc.code != "conflict":
            raise
        errors = {"answer": f"{exc.detail}."}
        return await prescription_page(
            request, web, rpc, prescription_id, status=409, errors=errors, values=values
        )
    return redirect(request, f"/prescriptions/{prescription_id}")


@router.post(
    "/prescriptions/{prescription_id}/refill",
    dependencies=[audited_page("prescription.refill", "prescription_id")],
)
async def refill(
    request: Request,
    prescription_id: ResourceId,
    web: PatientPage,
    rpc: Rpc,
    latitude: Annotated[str, Form(max_length=40)] = "",
    longitude: Annotated[str, Form(max_length=40)] = "",
    payment_method_id: Annotated[str, Form(max_length=100)] = "",
    form_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """A new order from a filled prescription, delivered and paid as the form says; why not, if not."""
    values = {"latitude": latitude, "longitude": longitude, "payment_method_id": payment_method_id}

    async def again(status: int, errors: dict[str, str]) -> HTMLResponse:
        return await prescription_page(
            request, web, rpc, prescription_id, status=status, errors=errors, values=values
        )

    try:
        body = RefillIn.model_validate(
            {
                "delivery_location": {"latitude": number(latitude), "longitude": number(longitude)},
                "payment_method_id": payment_method_id,
            }
        )
        # One refill per form shown: a double click makes no second order.
        key = f"web-refill:{form_id}" if form_id else None
        answer = await prescriptions.refill_prescription(
            prescription_id, body, web.user, rpc, request.state.audit, key
        )
    except ValidationError as exc:
        return await again(422, field_messages(exc, REFILL_FIELDS))
    except CommandRefused as exc:
        if exc.code != "conflict":
            raise
        return await again(409, {"refill": f"{exc.detail}."})
    said = json.loads(bytes(answer.body))
    if answer.status_code != 202:  # a field at fault, as problem+json (an unknown or removed card)
        errors = {REFILL_FIELDS.get(e["field"], "refill"): f"{e['message']}." for e in said["errors"]}
        return await again(answer.status_code, errors)
    return redirect(request, f"/orders/{said['order_id']}")


@router.post(
    "/prescriptions/{prescription_id}/withdraw",
    dependencies=[audited_page("prescription.withdraw", "prescription_id")],
)
async def withdraw(request: Request, prescription_id: ResourceId, web: PatientPage, rpc: Rpc) -> Response:
    await prescriptions.withdraw_prescription(prescription_id, web.user, rpc)
    return redirect(request, "/prescriptions")
