"""Prescriptions (prescription_service behind RPC). Uploading one starts the order saga."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema

from contracts import commands as c
from contracts.events import Location, PrescribedLine, Prescriber
from service_runtime.errors import CommandRefused, ServiceUnavailable
from service_runtime.messaging import RpcClient
from user_service.audit import Audit, audited
from user_service.deps import CurrentUser, IdempotencyKey, Paging, Patient, ResourceId, Rpc, UserFilter
from user_service.domain import keyed_request_id, owner_scope
from user_service.problems import RESPONSES, FieldInvalid, field_error, problem
from user_service.schemas import (
    AnswerIn,
    LineIn,
    Page,
    PrescriptionIn,
    PrescriptionOut,
    QuoteOut,
    RefillIn,
    RefillOut,
    UploadOut,
)

router = APIRouter(tags=["prescriptions"])
log = logging.getLogger(__name__)
# The pre-checks are a courtesy: a slow service must not hold the upload for the full RPC timeout.
PRECHECK_SECONDS = 3.0


FHIR_JSON = "application/fhir+json"
# How much of the catalogue a FHIR import is matched against (pages of ListMedications' largest page).
CATALOGUE_PAGE = 200
MAX_CATALOGUE_PAGES = 50
_UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PrescriptionIn"}},
        FHIR_JSON: {
            "schema": {
                "type": "object",
                "description": "a FHIR R4 MedicationRequest, or a Bundle of them; the delivery location "
                "and card come as the query parameters latitude, longitude and payment_method_id",
            }
        },
    },
}


def with_upload_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the typed upload's schemas, which the route reads itself (it takes
    two media types), so FastAPI does not add them by itself."""
    _, schemas = models_json_schema(
        [(PrescriptionIn, "validation")], ref_template="#/components/schemas/{model}"
    )
    document.setdefault("components", {}).setdefault("schemas", {}).update(schemas["$defs"])
    return document


@router.post(
    "/prescriptions",
    status_code=202,
    response_model=UploadOut,
    dependencies=[audited("prescription.upload", subject="prescription_id")],
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        415: {**RESPONSES[422], "description": "a body neither application/json nor application/fhir+json"},
        422: {
            **RESPONSES[422],
            "description": "invalid input, an unknown medication or payment method, a prescription-only "
            "line without a document or FHIR source, a FHIR document refused (each problem at its JSON "
            "pointer), or an Idempotency-Key already used for another upload",
        },
    },
)
async def upload_prescription(
    request: Request,
    patient: Patient,
    rpc: Rpc,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
    payment_method_id: Annotated[
        str | None, Query(min_length=1, max_length=64, description="FHIR uploads only: the card to charge")
    ] = None,
    latitude: Annotated[float | None, Query(ge=-90, le=90, description="FHIR uploads only")] = None,
    longitude: Annotated[float | None, Query(ge=-180, le=180, description="FHIR uploads only")] = None,
) -> JSONResponse:
    """Accept a prescription; the order is then verified (prescription-only lines), stocked and paid.

    Typed (`application/json`): the lines, where to deliver, the card, and for prescription-only lines
    the `document_id` of their scan. FHIR (`application/fhir+json`): a MedicationRequest or a Bundle,
    with `?payment_method_id=&latitude=&longitude=`. Answers 202 with the prescription, whose
    `order_id` can be followed at /orders/{order_id}, and its `quote`: the lines' prices, the service
    fee and the delivery fee if its stock were reserved now (the order's own price is fixed when it
    is). Retried with the same Idempotency-Key, it answers with the prescription the first upload made.
    """
    request_id = None if idempotency_key is None else keyed_request_id(patient.id, idempotency_key)
    media_type = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
    if media_type == FHIR_JSON:
        answer = await _import_fhir(
            request, patient.id, rpc, request_id, payment_method_id, latitude, longitude
        )
    elif media_type == "application/json":
        if (payment_method_id, latitude, longitude) != (None, None, None):
            return field_error("payment_method_id", "query parameters are for FHIR uploads only")
        answer = await _upload_typed(request, patient.id, rpc, request_id)
    else:
        return problem(415, "send application/json (typed lines) or application/fhir+json (FHIR R4)")
    if isinstance(answer, JSONResponse):
        return answer
    view, quote = answer
    created = UploadOut(
        **PrescriptionOut.of(view).model_dump(), quote=None if quote is None else QuoteOut.of(quote)
    )
    audit.subject_id = created.id
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/v1/prescriptions/{created.id}"},
    )


Uploaded = tuple[c.PrescriptionView, c.OrderQuote | None]


async def _upload_typed(
    request: Request, patient_id: str, rpc: RpcClient, request_id: str | None
) -> Uploaded:
    try:
        body = PrescriptionIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    return await upload_typed(body, patient_id, rpc, request_id)


async def upload_typed(
    body: PrescriptionIn, patient_id: str, rpc: RpcClient, request_id: str | None
) -> Uploaded:
    """A typed upload, checked: FieldInvalid names an unknown card or medication."""
    destination = Location(
        latitude=body.delivery_location.latitude, longitude=body.delivery_location.longitude
    )
    card_known, quote = await _checked_references(
        rpc, patient_id, body.payment_method_id, body.lines, destination
    )
    if not card_known:
        raise FieldInvalid("payment_method_id", "no such payment method of yours")
    lines = classified(body.lines, quote.medications)
    command = c.UploadPrescription(
        patient_id=patient_id,
        lines=tuple(lines),
        delivery_location=destination,
        payment_method_id=body.payment_method_id,
        document_id=body.document_id,
        issued_on=body.issued_on,
        valid_until=body.valid_until,
        repeats_allowed=body.repeats_allowed,
        prescriber=None if body.prescriber is None else Prescriber(**body.prescriber.model_dump()),
        delivery_window=None if body.delivery_window is None else body.delivery_window.contract(),
        request_id=request_id,
    )
    view: c.PrescriptionView = await rpc.ask(command, c.PrescriptionView)
    return view, quote


async def _import_fhir(
    request: Request,
    patient_id: str,
    rpc: RpcClient,
    request_id: str | None,
    payment_method_id: str | None,
    latitude: float | None,
    longitude: float | None,
) -> Uploaded | JSONResponse:
    for name, value in (
        ("payment_method_id", payment_method_id),
        ("latitude", latitude),
        ("longitude", longitude),
    ):
        if value is None:
            return field_error(name, "a FHIR upload names it as a query parameter")
    assert payment_method_id is not None
    assert latitude is not None
    assert longitude is not None
    raw = await request.body()
    try:
        document = raw.decode()
    except UnicodeDecodeError:
        return field_error("body", "a FHIR JSON document is UTF-8")
    card_known, catalogue = await asyncio.gather(
        _payment_method_known(rpc, patient_id, payment_method_id), _whole_catalogue(rpc)
    )
    if not card_known:
        return field_error("payment_method_id", "no such payment method of yours")
    destination = Location(latitude=latitude, longitude=longitude)
    command = c.ImportFhirPrescription(
        patient_id=patient_id,
        document=document,
        delivery_location=destination,
        payment_method_id=payment_method_id,
        catalogue=tuple(catalogue_entry(m) for m in catalogue),
        request_id=request_id,
    )
    view: c.PrescriptionView = await rpc.ask(command, c.PrescriptionView)
    # The lines are known only now, as the import matched them: their quote is a courtesy, and the
    # prescription is stored already, so no failure of it may turn the answer into an error.
    try:
        quote: c.OrderQuote | None = await quote_of(rpc, view.lines, destination)
    except (ServiceUnavailable, CommandRefused, ValidationError) as exc:
        log.warning("FHIR upload answered without its quote: %s", exc)
        quote = None
    return view, quote


def catalogue_entry(medication: c.MedicationView) -> c.CatalogueEntry:
    """What a FHIR line may be matched against: by a code, else by name, strength and form."""
    return c.CatalogueEntry(
        id=medication.id,
        name=medication.name,
        strength=medication.strength,
        form=medication.form,
        prescription_only=medication.prescription_only,
        schedule=medication.schedule,
        codes=medication.codes,
    )


def classified(lines: Sequence[LineIn], catalogue: Sequence[c.MedicationView]) -> list[PrescribedLine]:
    """Each line as the catalogue classifies it (prescription-only, schedule); FieldInvalid names an
    unknown one."""
    known = {m.id: catalogue_entry(m) for m in catalogue}
    out = []
    for i, line in enumerate(lines):
        entry = known.get(line.medication_id)
        if entry is None:
            raise FieldInvalid(f"lines.{i}.medication_id", "no such medication in the catalogue")
        out.append(
            PrescribedLine(
                medication_id=line.medication_id,
                quantity=line.quantity,
                prescription_only=entry.prescription_only,
                schedule=entry.schedule,
            )
        )
    return out


async def catalogue_of(rpc: RpcClient, lines: Sequence[LineIn]) -> list[c.MedicationView]:
    """The lines' medications. Required: unanswered, the upload cannot be classified (503)."""
    return await medications_by_id(rpc, [line.medication_id for line in lines])


async def medications_by_id(rpc: RpcClient, ids: Sequence[str]) -> list[c.MedicationView]:
    """These medications, in one question: those the catalogue no longer sells are left out."""
    found: list[c.MedicationView] = await rpc.ask(
        c.ListMedications(medication_ids=tuple(dict.fromkeys(ids))),
        list[c.MedicationView],
        timeout=PRECHECK_SECONDS,
    )
    return found


async def quote_of(
    rpc: RpcClient, lines: Sequence[LineIn] | Sequence[PrescribedLine], destination: Location
) -> c.OrderQuote:
    """The lines' medications and their price delivered here now, in one question to inventory."""
    command = c.QuoteOrder(
        lines=tuple(c.QuoteLine(medication_id=line.medication_id, quantity=line.quantity) for line in lines),
        destination=destination,
    )
    quote: c.OrderQuote = await rpc.ask(command, c.OrderQuote, timeout=PRECHECK_SECONDS)
    return quote


async def _whole_catalogue(rpc: RpcClient) -> list[c.MedicationView]:
    found: list[c.MedicationView] = await rpc.ask_every_page(
        lambda page: c.ListMedications(page=page),
        c.MedicationView,
        page_size=CATALOGUE_PAGE,
        max_pages=MAX_CATALOGUE_PAGES,
        timeout=PRECHECK_SECONDS,
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


async def _checked_references(
    rpc: RpcClient, patient_id: str, payment_method_id: str, lines: Sequence[LineIn], destination: Location
) -> tuple[bool, c.OrderQuote]:
    # Two services, two questions: asked at once, so the upload waits for the slower one only.
    # Both answers are awaited, whatever the first says: no RPC is left running unattended.
    card_known, found = await asyncio.gather(
        _payment_method_known(rpc, patient_id, payment_method_id),
        quote_of(rpc, lines, destination),
        return_exceptions=True,
    )
    if isinstance(card_known, ServiceUnavailable):
        # A courtesy only: the saga itself declines an unknown card.
        log.warning("upload taken without checking its card: %s", card_known)
        card_known = True
    if isinstance(card_known, BaseException):
        raise card_known
    # The classification is not a courtesy: without it a prescription-only line could skip the pharmacist.
    if isinstance(found, BaseException):
        raise found
    return card_known, found


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


@router.post(
    "/prescriptions/{prescription_id}/answer",
    response_model=PrescriptionOut,
    dependencies=[audited("prescription.answer", subject="prescription_id")],
)
async def answer_pharmacist(
    prescription_id: ResourceId, body: AnswerIn, patient: Patient, rpc: Rpc
) -> PrescriptionOut:
    """Answer the pharmacist's question on a prescription ON_HOLD: it goes back to the queue. 409 if none."""
    command = c.AnswerPrescription(owner_id=patient.id, prescription_id=prescription_id, answer=body.answer)
    return PrescriptionOut.of(await rpc.ask(command, c.PrescriptionView))


@router.post(
    "/prescriptions/{prescription_id}/refills",
    status_code=202,
    response_model=RefillOut,
    dependencies=[audited("prescription.refill", subject="prescription_id")],
    responses={409: {**RESPONSES[422], "description": "not filled yet, expired, or no refills left"}},
)
async def refill_prescription(
    prescription_id: ResourceId,
    body: RefillIn,
    patient: Patient,
    rpc: Rpc,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """A new order from a filled prescription with refills left and not expired; no new verification.

    Answers 202 with the refill's `order_id` and the refills left; 409 saying why when there is none.
    """
    if not await _payment_method_known_or_unchecked(rpc, patient.id, body.payment_method_id):
        return field_error("payment_method_id", "no such payment method of yours")
    request_id = keyed_request_id(patient.id, idempotency_key) if idempotency_key else str(uuid4())
    command = c.RefillPrescription(
        owner_id=patient.id,
        prescription_id=prescription_id,
        delivery_location=Location(
            latitude=body.delivery_location.latitude, longitude=body.delivery_location.longitude
        ),
        payment_method_id=body.payment_method_id,
        request_id=request_id,
    )
    refill = await rpc.ask(command, c.RefillView)
    audit.details = {"order_id": refill.order_id}
    return JSONResponse(
        RefillOut(**refill.model_dump()).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/v1/orders/{refill.order_id}"},
    )


async def _payment_method_known_or_unchecked(rpc: RpcClient, patient_id: str, payment_method_id: str) -> bool:
    try:
        return await _payment_method_known(rpc, patient_id, payment_method_id)
    except ServiceUnavailable as exc:
        log.warning("refill taken without checking its card: %s", exc)
        return True


@router.get(
    "/prescriptions/{prescription_id}/document",
    response_class=Response,
    responses={
        200: {
            "content": {FHIR_JSON: {}, "image/png": {}, "image/jpeg": {}, "application/pdf": {}},
            "description": "the original document, as it was sent",
        }
    },
    dependencies=[audited("prescription.document_read", subject="prescription_id")],
)
async def prescription_document(prescription_id: ResourceId, user: CurrentUser, rpc: Rpc) -> Response:
    """The document the prescription was taken from (FHIR JSON, or the scan's image or PDF, byte for
    byte), for its patient and pharmacists; 404 when it was typed with none."""
    command = c.GetPrescriptionDocument(owner_id=owner_scope(user, None), prescription_id=prescription_id)
    document = await rpc.ask(command, c.PrescriptionDocumentView)
    if document.content_base64 is not None:  # a scan: its bytes, as the patient sent them
        return Response(base64.b64decode(document.content_base64), media_type=document.media_type)
    return Response(document.content, media_type=document.media_type)
