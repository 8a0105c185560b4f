"""A scanned prescription on the web UI: a photo or PDF read into a draft, which the patient checks
and confirms into an upload with its document."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

from fastapi import APIRouter, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile as SentFile

from service_runtime.errors import CommandRefused
from user_service.deps import Rpc
from user_service.problems import FieldInvalid
from user_service.routes import documents
from user_service.schemas import ScanDraftOut
from user_service.web.cards import with_cards
from user_service.web.common import PageRoute, PatientPage, SignedIn, audited_page, render
from user_service.web.new_order import OrderForm, uploaded_once

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The scan worker's refusals of a document, said beside the file input.
DOCUMENT_REFUSALS = frozenset({"invalid", "too_large", "unsupported_media_type"})
# What each of the scan's flags means to the patient: words, never a colour alone.
FLAG_WORDS = {
    "LOW_CONFIDENCE": "hard to read: check it against the paper",
    "CLOSE_RUNNER_UP": "another medication matches almost as well",
    "LOOK_ALIKE": "its name looks like another medication's",
    "STRENGTH_NOT_STOCKED": "this strength is not in the catalogue",
    "STRENGTH_MISSING": "no strength was read",
    "FORM_MISMATCH": "the form read (tablet, capsule...) is not the catalogue's",
    "QUANTITY_MISSING": "no quantity was read: give one",
    "UNPARSED": "not understood as a medication line",
    "NO_MATCH": "no medication in the catalogue matches",
    "QUANTITY_CHANGED": "the quantity differs from the one read",
    "NOT_IN_DRAFT": "not read from the document",
    "MATCHED_BY_NAME": "matched by its name only",
}


@router.get("/prescriptions/scan")
async def scan_page(request: Request, web: PatientPage) -> HTMLResponse:
    return render(request, "patient_scan.html", web, errors={})


@router.post("/prescriptions/scan", dependencies=[audited_page("prescription.scan", "document_id")])
async def scan(request: Request, web: PatientPage, rpc: Rpc) -> HTMLResponse:
    """Read the document sent; the draft is shown at once, to check and confirm (its own form)."""
    sent = (await request.form()).get("document")
    # Starlette's own upload, which FastAPI's UploadFile (the API route's) only dresses.
    if not isinstance(sent, SentFile) or not sent.filename:
        return render(
            request, "patient_scan.html", web, 422, errors={"document": "choose a photo or PDF to upload"}
        )
    document = UploadFile(sent.file, size=sent.size, filename=sent.filename, headers=sent.headers)
    try:
        answer = await documents.scan_prescription(web.user, rpc, request.state.audit, document)
    except CommandRefused as exc:
        if exc.code not in DOCUMENT_REFUSALS:
            raise
        return render(request, "patient_scan.html", web, 422, errors={"document": f"{exc.detail}."})
    if isinstance(answer, Response):  # the API's own refusal (too large), as problem+json
        detail = json.loads(bytes(answer.body))["detail"]
        return render(
            request, "patient_scan.html", web, answer.status_code, errors={"document": f"{detail}."}
        )
    return await draft_page(request, web, rpc, answer, form_id=str(uuid4()))


def draft_lines(draft: ScanDraftOut, form: OrderForm | None) -> list[dict[str, Any]]:
    """Each line of the draft to show, by its place in the draft (two lines may match one medication),
    with the quantity read or the one the form had; a line left out of the form stays out."""
    typed = {} if form is None else dict(zip(form.draft_lines, form.quantities, strict=False))
    return [
        {"read": line, "position": i, "quantity": typed.get(str(i), line.quantity or "")}
        for i, line in enumerate(draft.lines)
        if form is None or line.medication_id is None or str(i) in typed
    ]


async def draft_page(
    request: Request,
    web: SignedIn,
    rpc: Rpc,
    draft: ScanDraftOut,
    *,
    form_id: str,
    form: OrderForm | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    placed: bool = False,
) -> HTMLResponse:
    """The draft to confirm: each line as read, its match, its confidence and flags in words, and
    the quantity to order (as read, or as the form had it)."""
    lines = draft_lines(draft, form)
    values: dict[str, Any] = {
        "form_id": form_id,
        "placed_already": placed,
        **({} if form is None else form.values()),
    }
    return await with_cards(
        request,
        web,
        rpc,
        "patient_scan_draft.html",
        status,
        errors,
        {**values, "draft": draft, "lines": lines, "flag_words": FLAG_WORDS},
    )


@router.post(
    "/prescriptions/scan/confirm", dependencies=[audited_page("prescription.upload", "prescription_id")]
)
async def confirm(request: Request, web: PatientPage, rpc: Rpc) -> Response:
    """The draft's lines as the patient confirmed them, uploaded with their document."""
    form = OrderForm(await request.form())
    if form.document_id is None:
        raise FieldInvalid("document_id", "this form has no document: upload the scan again")

    async def again(
        errors: dict[str, str], form_id: str = form.form_id, *, placed: bool = False
    ) -> HTMLResponse:
        assert form.document_id is not None
        draft = await documents.get_document_draft(form.document_id, web.user, rpc)
        return await draft_page(
            request, web, rpc, draft, form_id=form_id, form=form, errors=errors, status=422, placed=placed
        )

    return await uploaded_once(request, web, rpc, form, "web-scan", again)
