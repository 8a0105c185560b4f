"""A FHIR prescription taken in: its lines matched to the catalogue, then uploaded like any other. No I/O.

The reading is `prescription_service.fhir`'s; here each line finds its medication, by a checked code
when the catalogue carries one (exactly), else by name and strength, and the rules of an upload apply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from contracts.base import Event
from contracts.commands import CatalogueEntry, ImportFhirPrescription, LineFlags, UploadPrescription
from contracts.events import PrescribedLine, Prescriber
from prescription_service import domain
from prescription_service.domain import Prescription
from prescription_service.fhir import (
    FhirImport,
    FhirRefused,
    ImportedLine,
    Problem,
    import_fhir_prescription,
    match_coded,
)

# A line without a quantity is taken as one pack and flagged: the pharmacist sets it on approval.
QUANTITY_UNSTATED = 1
_MEDICATION_KEYS = ("medicationCodeableConcept", "medicationReference")


def import_fhir(command: ImportFhirPrescription, now: datetime) -> tuple[Prescription, list[Event]]:
    """The prescription a FHIR document holds, its original kept sealed beside it.

    Raises FhirRefused naming every problem at a JSON pointer (a line the catalogue has no match for
    too), or the upload's own refusals (domain.RefillsNotAllowed).
    """
    imported = import_fhir_prescription(command.document)
    lines, flags = matched_lines(imported, command.catalogue, json.loads(command.document))
    upload = UploadPrescription(
        patient_id=command.patient_id,
        lines=tuple(lines),
        delivery_location=command.delivery_location,
        payment_method_id=command.payment_method_id,
        issued_on=imported.issued_on,
        valid_until=imported.valid_until,
        repeats_allowed=imported.repeats_allowed,
        prescriber=None
        if imported.prescriber is None
        else Prescriber(name=imported.prescriber.name, licence_number=imported.prescriber.licence_number),
        request_id=command.request_id,
    )
    return domain.take_in(upload, "fhir", command.document, flags, now)


def matched_lines(
    imported: FhirImport, catalogue: Sequence[CatalogueEntry], document: Any
) -> tuple[list[PrescribedLine], list[LineFlags]]:
    """Each imported line as a prescribed one, or FhirRefused naming every line the catalogue lacks."""
    lines: list[PrescribedLine] = []
    flags: list[LineFlags] = []
    problems: list[Problem] = []
    by_id = {entry.id: entry for entry in catalogue}
    for i, line in enumerate(imported.lines):
        found = match_coded(line, catalogue)
        entry = by_id[found] if found is not None else _by_name_and_strength(line, catalogue)
        if isinstance(entry, str):
            problems.append(Problem(location=_line_location(document, line), message=entry))
            continue
        lines.append(
            PrescribedLine(
                medication_id=entry.id,
                quantity=line.quantity or QUANTITY_UNSTATED,
                prescription_only=entry.prescription_only,
                schedule=entry.schedule,
            )
        )
        line_flags = [*line.flags, *([] if found is not None else ["MATCHED_BY_NAME"])]
        if line_flags:
            flags.append(LineFlags(line=i, flags=tuple(line_flags)))
    if problems:
        raise FhirRefused(problems)
    return lines, flags


def _normal(text: str | None) -> str:
    return re.sub(r"\s+", "", (text or "").casefold())


def _by_name_and_strength(line: ImportedLine, catalogue: Sequence[CatalogueEntry]) -> CatalogueEntry | str:
    """The one catalogue medication of the line's name and strength (its form settling a tie), or why not."""
    named = [m for m in catalogue if _normal(m.name) == _normal(line.name)]
    if not named:
        return f"no medication named {line.name!r} in the catalogue"
    strong = [m for m in named if _normal(m.strength) == _normal(line.strength)]
    if not strong:
        return f"{line.name!r} is not stocked in the strength {line.strength or '(none given)'!r}"
    if len(strong) > 1:
        shaped = [
            m for m in strong if line.form and _normal(m.form).rstrip("s") == _normal(line.form).rstrip("s")
        ]
        if len(shaped) != 1:
            return f"{line.name!r} {line.strength} matches several medications: give its form or a code"
        strong = shaped
    return strong[0]


def _line_location(document: Any, line: ImportedLine) -> str:
    """A JSON pointer to where the line names its medication (the request, in a Bundle its entry)."""
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        for i, entry in enumerate(document.get("entry") or []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and line.source_id in (entry.get("fullUrl"), resource.get("id")):
                return f"/entry/{i}/resource" + _medication_key(resource)
        return ""
    return _medication_key(document) if isinstance(document, dict) else ""


def _medication_key(resource: dict[str, Any]) -> str:
    return next((f"/{key}" for key in _MEDICATION_KEYS if key in resource), "")
