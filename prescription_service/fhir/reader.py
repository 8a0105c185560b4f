"""Reading a FHIR R4 MedicationRequest, or a Bundle of them, into one prescription. No I/O.

Three passes, each naming every problem it finds at a JSON pointer into the document:
1. the document's shape, read as plain JSON: which resources it holds and how many lines;
2. fhir.resources' R4B models (R4 and R4B agree on MedicationRequest; its default R5 models do not);
3. what the library leaves to us: status, intent, quantities, dates, code values, references, and
   that the requests of one Bundle are one prescription.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from prescription_service.fhir.codes import SYSTEM_LABELS, code_problem, is_checked_system
from prescription_service.fhir.document import decoded, models, shape_problems, validated
from prescription_service.fhir.model import (
    Code,
    FhirImport,
    FhirRefused,
    ImportedLine,
    LineFlag,
    Prescriber,
    Problem,
)
from prescription_service.fhir.references import (
    dangling,
    is_a,
    is_local,
    kind_of,
    patient_reference_of,
    prescriber_of,
    resolve,
)
from prescription_service.fhir.strength import ratio_strength, read_medication_text

if TYPE_CHECKING:
    from fhir.resources.R4B.codeableconcept import CodeableConcept
    from fhir.resources.R4B.medication import Medication
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.quantity import Quantity
    from fhir.resources.R4B.resource import Resource

# As many units as one prescribed line may ask for (contracts.events.PrescribedLine allows no more).
MAX_QUANTITY = 1000
ACTIONABLE_INTENTS = ("order", "original-order", "instance-order")


def import_fhir_prescription(body: bytes | str) -> FhirImport:
    """The prescription a FHIR R4 MedicationRequest, or a Bundle of them, holds.

    Raises FhirRefused naming every problem found, each at a JSON pointer into the body.
    """
    document = decoded(body)
    _refuse_if(list(shape_problems(document)))
    resource = validated(document)
    requests = _requests(resource)
    problems: list[Problem] = []
    read = [_read_request(request, pointer, resource, problems) for request, pointer in requests]
    if not problems:
        problems.extend(_disagreements(read))
    _refuse_if(problems)
    first = read[0]
    return FhirImport(
        lines=[request.line for request in read],
        issued_on=first.issued_on,
        valid_until=first.valid_until,
        repeats_allowed=first.repeats_allowed,
        prescriber=first.prescriber,
        patient_reference=first.patient_reference,
    )


# --- pass 3: what the library leaves to us -----------------------------------------------------------


# Records a problem at a pointer below the request's own.
_Refuse = Callable[[str, str], None]


@dataclass(frozen=True)
class _ReadRequest:
    pointer: str
    line: ImportedLine
    issued_on: date | None
    valid_until: date | None
    repeats_allowed: int
    prescriber: Prescriber | None
    patient_reference: str | None


def _requests(resource: Resource) -> list[tuple[MedicationRequest, str]]:
    fhir = models()
    if isinstance(resource, fhir.MedicationRequest):
        return [(resource, "")]
    assert isinstance(resource, fhir.Bundle)
    return [
        (entry.resource, f"/entry/{index}/resource")
        for index, entry in enumerate(resource.entry or [])
        if isinstance(entry.resource, fhir.MedicationRequest)
    ]


def _read_request(
    request: MedicationRequest, pointer: str, document: Resource, problems: list[Problem]
) -> _ReadRequest:
    def refuse(where: str, message: str) -> None:
        problems.append(Problem(location=f"{pointer}{where}", message=message))

    if request.status == "draft":
        refuse(
            "/status", "a draft MedicationRequest is not yet a prescription: only an active one is dispensed"
        )
    elif request.status != "active":
        refuse("/status", f"the MedicationRequest is {request.status!r}: only an active one is dispensed")
    if request.intent not in ACTIONABLE_INTENTS:
        refuse(
            "/intent",
            f"intent {request.intent!r} is no order; it must be one of {', '.join(ACTIONABLE_INTENTS)}",
        )

    dispense = request.dispenseRequest
    quantity = _quantity(dispense.quantity if dispense else None, refuse)
    issued_on = _day(request.authoredOn, "/authoredOn", refuse)
    period = dispense.validityPeriod if dispense else None
    valid_until = _day(period.end if period else None, "/dispenseRequest/validityPeriod/end", refuse)
    if issued_on and valid_until and valid_until < issued_on:
        refuse(
            "/dispenseRequest/validityPeriod/end",
            f"valid until {valid_until}: before the prescription was written ({issued_on}, authoredOn)",
        )

    line = _line(request, pointer, document, quantity, problems)
    return _ReadRequest(
        pointer=pointer,
        line=line,
        issued_on=issued_on,
        valid_until=valid_until,
        repeats_allowed=(dispense.numberOfRepeatsAllowed or 0) if dispense else 0,
        prescriber=prescriber_of(request, pointer, document, problems),
        patient_reference=patient_reference_of(request.subject),
    )


def _quantity(quantity: Quantity | None, refuse: _Refuse) -> int | None:
    if quantity is None:
        return None
    value: object = quantity.value
    where = "/dispenseRequest/quantity/value"
    if not isinstance(value, Decimal | int) or isinstance(value, bool):
        refuse(where, "the quantity to dispense has no value")
        return None
    if value != int(value) or not 0 < value <= MAX_QUANTITY:
        refuse(
            where, f"the quantity to dispense is {value}: it must be a whole number from 1 to {MAX_QUANTITY}"
        )
        return None
    return int(value)


def _day(value: object, where: str, refuse: _Refuse) -> date | None:
    # The library keeps a partial date ("2026-03") as a string.
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    refuse(where, f"{value!r} names no day: a prescription's dates need year, month and day")
    return None


def _line(
    request: MedicationRequest,
    pointer: str,
    document: Resource,
    quantity: int | None,
    problems: list[Problem],
) -> ImportedLine:
    flags: list[LineFlag] = []
    strength: str | None = None
    form: str | None = None
    concept: CodeableConcept | None = request.medicationCodeableConcept
    concept_pointer = f"{pointer}/medicationCodeableConcept"
    reference = request.medicationReference
    if concept is None and reference is not None:
        where = f"{pointer}/medicationReference"
        found = resolve(reference, request, pointer, document)
        if found is None and is_local(reference):
            problems.append(dangling(reference, where))
        elif found is None and reference.display:
            # A Medication outside the document: its display is all we have to match by.
            return _finished_line(request, reference.display, [], [], None, None, quantity, flags)
        elif found is None:
            problems.append(
                Problem(
                    location=where, message="names a Medication that is neither contained nor in the Bundle"
                )
            )
        elif not is_a(found, "Medication"):
            problems.append(
                Problem(location=f"{where}/reference", message=f"names a {kind_of(found)}, not a Medication")
            )
        else:
            medication = found.resource
            assert isinstance(medication, models().Medication)
            concept_pointer = f"{found.pointer}/code"
            concept = medication.code
            if concept is None:
                problems.append(Problem(location=concept_pointer, message="the Medication has no code"))
            strength = _ingredient_strength(medication)
            form = _concept_text(medication.form).lower() if medication.form else None
    codes, other_codes = _codes(concept, concept_pointer, flags, problems)
    text = _concept_text(concept) if concept else ""
    if not text and codes:
        text = " ".join((SYSTEM_LABELS[codes[0].system], codes[0].code))
    if not text and concept is not None:
        problems.append(
            Problem(location=concept_pointer, message="names no medication: give text or a coding")
        )
    return _finished_line(request, text, codes, other_codes, strength, form or None, quantity, flags)


def _finished_line(
    request: MedicationRequest,
    text: str,
    codes: list[Code],
    other_codes: list[Code],
    strength: str | None,
    form: str | None,
    quantity: int | None,
    flags: list[LineFlag],
) -> ImportedLine:
    written = read_medication_text(text)
    if strength is None and written.strength is not None:
        strength = written.strength
        flags.append("STRENGTH_FROM_TEXT")
    if strength is None:
        flags.append("NO_STRENGTH")
    if quantity is None:
        flags.append("NO_QUANTITY")
    dosages = [dosage.text for dosage in request.dosageInstruction or [] if dosage.text]
    return ImportedLine(
        source_id=request.id,
        text=text,
        name=written.name,
        strength=strength,
        form=form or written.form,
        quantity=quantity,
        codes=codes,
        other_codes=other_codes,
        dosage_text="; ".join(dosages) or None,
        flags=flags,
    )


def _codes(
    concept: CodeableConcept | None, pointer: str, flags: list[LineFlag], problems: list[Problem]
) -> tuple[list[Code], list[Code]]:
    checked: list[Code] = []
    others: list[Code] = []
    for index, coding in enumerate(concept.coding or [] if concept else []):
        if not coding.code:
            continue
        if not coding.system:
            flags.append("CODE_WITHOUT_SYSTEM")
            continue
        code = Code(system=coding.system, code=coding.code)
        if not is_checked_system(code.system):
            if code not in others:
                others.append(code)
            flags.append("UNKNOWN_CODE_SYSTEM")
        elif (problem := code_problem(code)) is not None:
            problems.append(Problem(location=f"{pointer}/coding/{index}/code", message=problem))
        elif code not in checked:
            checked.append(code)
    return checked, others


def _concept_text(concept: CodeableConcept) -> str:
    if concept.text:
        return concept.text
    return next((coding.display for coding in concept.coding or [] if coding.display), "")


def _ingredient_strength(medication: Medication) -> str | None:
    strengths = []
    for ingredient in medication.ingredient or []:
        ratio = ingredient.strength
        if ratio is None:
            continue
        strength = ratio_strength(_amount(ratio.numerator), _amount(ratio.denominator))
        if strength:
            strengths.append(strength)
    return " / ".join(strengths) or None


def _amount(quantity: Quantity | None) -> tuple[Decimal, str] | None:
    if quantity is None or quantity.value is None:
        return None
    return Decimal(quantity.value), quantity.unit or quantity.code or ""


# --- one prescription: the requests of a Bundle agree ------------------------------------------------


def _disagreements(read: list[_ReadRequest]) -> Iterator[Problem]:
    first = read[0]
    for request in read[1:]:
        for field, where, label in (
            ("prescriber", "/requester", "prescriber"),
            ("patient_reference", "/subject", "patient"),
            ("issued_on", "/authoredOn", "date written"),
            ("valid_until", "/dispenseRequest/validityPeriod/end", "validity"),
            ("repeats_allowed", "/dispenseRequest/numberOfRepeatsAllowed", "number of repeats"),
        ):
            if getattr(request, field) != getattr(first, field):
                yield Problem(
                    location=f"{request.pointer}{where}",
                    message=(
                        f"its {label} differs from that of the first request ({first.pointer}): "
                        "one prescription has one"
                    ),
                )


def _refuse_if(problems: list[Problem]) -> None:
    if problems:
        raise FhirRefused(problems)
