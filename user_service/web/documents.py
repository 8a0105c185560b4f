"""A prescription's document on the web UI: the scan (or FHIR document) shown beside the draft, as the
API's own document route answers it, to the prescription's patient and to pharmacists."""

from __future__ import annotations

from fastapi import APIRouter, Response

from user_service.deps import ResourceId, Rpc
from user_service.routes import prescriptions
from user_service.web.common import PageRoute, Web, audited_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get(
    "/prescriptions/{prescription_id}/document",
    dependencies=[audited_page("prescription.document_read", "prescription_id")],
)
async def prescription_document(prescription_id: ResourceId, web: Web, rpc: Rpc) -> Response:
    """The document's bytes with their own type; another patient's prescription is a 404 (the API's
    rule). Never cached, never sniffed into another type; the edge gives it the documents' sandbox."""
    document = await prescriptions.prescription_document(prescription_id, web.user, rpc)
    document.headers["Cache-Control"] = "private, no-store"
    document.headers["X-Content-Type-Options"] = "nosniff"
    if document.media_type == "application/pdf":
        # Downloaded, for the pharmacist's own viewer: the documents' sandbox keeps Chromium's PDF
        # viewer from running inline (a sandboxed page loads no plug-in), and a page may not frame it.
        document.headers["Content-Disposition"] = (
            f'attachment; filename="prescription-{prescription_id[:8]}.pdf"'
        )
    return document
