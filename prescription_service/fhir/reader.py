"""Reading a FHIR R4 MedicationRequest, or a Bundle of them, into one prescription. No I/O.

Three passes, each naming every problem it finds at a JSON pointer into the document:
1. the document's shape, read as plain JSON: which resources it holds and how many lines;
2. fhir.resources' R4B models (R4 and R4B agree on MedicationRequest; its default R5 models do not);
3. what the library leaves to us: status, intent, quantities, dates, code values, references, and
   that the requests of one Bundle are one prescription.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

import pydantic

from prescription_service.fhir.codes import SYSTEM_LABELS, code_problem, is_checked_system
from prescription_service.fhir.model import (
    Code,
    FhirImport,
    FhirRefused,
    ImportedLine,
    LineFlag,
    Prescriber,
    Problem,
)
from prescription_service.fhir.strength import ratio_strength, read_medication_text

if TYPE_CHECKING:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.codeableconcept import CodeableConcept
    from fhir.resources.R4B.identifier import Identifier
    from fhir.resources.R4B.medication import Medication
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.practitioner import Practitioner
    from fhir.resources.R4B.practitionerrole import PractitionerRole
    from fhir.resources.R4B.quantity import Quantity
    from fhir.resources.R4B.reference import Reference
    from fhir.resources.R4B.resource import Resource

MAX_LINES = 20
# As many units as one prescribed line may ask for (contracts.events.PrescribedLine allows no more).
MAX_QUANTITY = 1000
ACTIONABLE_INTENTS = ("order", "original-order", "instance-order")
# Identifier types (HL7 v2 table 0203) that name a prescriber's licence or registration.
_LICENCE_TYPES = {"LN", "PRN", "MD", "NPI", "DN", "RN"}
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass(frozen=True)
class _Models:
    """fhir.resources' R4B classes, imported on first use: the models take ~0.1 s to import."""

    Bundle: type[Bundle]
    MedicationRequest: type[MedicationRequest]
    Medication: type[Medication]
    Practitioner: type[Practitioner]
    PractitionerRole: type[PractitionerRole]


@cache
def _models() -> _Models:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.medication import Medication
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.practitioner import Practitioner
    from fhir.resources.R4B.practitionerrole import PractitionerRole

    return _Models(Bundle, MedicationRequest, Medication, Practitioner, PractitionerRole)


def import_fhir_prescription(body: bytes | str) -> FhirImport:
    """The prescription a FHIR R4 MedicationRequest, or a Bundle of them, holds.

    Raises FhirRefused naming every problem found, each at a JSON pointer into the body.
    """
    document = _decoded(body)
    _refuse_if(list(_shape_problems(document)))
    resource = _validated(document)
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


# --- pass 1: the document's shape, as JSON ---------------------------------------------------------


def _decoded(body: bytes | str) -> Any:
    def no_constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is no JSON number")

    try:
        # Decimals as written: a quantity of 0.1 stays 0.1.
        return json.loads(body, parse_float=Decimal, parse_constant=no_constant)
    except (ValueError, RecursionError) as error:
        raise FhirRefused([Problem(location="", message=f"the body is not JSON: {error}")]) from None


def _shape_problems(document: Any) -> Iterator[Problem]:
    if not isinstance(document, dict):
        yield Problem(location="", message="a FHIR resource is a JSON object")
        return
    kind = document.get("resourceType")
    if kind not in ("MedicationRequest", "Bundle"):
        yield Problem(
            location="/resourceType",
            message=f"a prescription is a MedicationRequest or a Bundle of them, not {kind!r}",
        )
        return
    if kind == "MedicationRequest":
        yield from _resource_problems(document, "", in_bundle=False)
        return
    entries = document.get("entry", [])
    if not isinstance(entries, list):
        return  # the library names it
    requests = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            # The library would name a place that is not in the document (/entry/0/root).
            yield Problem(location=f"/entry/{index}", message="a Bundle entry is a JSON object")
            continue
        resource = entry.get("resource")
        if isinstance(resource, dict):
            yield from _resource_problems(resource, f"/entry/{index}/resource", in_bundle=True)
            requests += resource.get("resourceType") == "MedicationRequest"
    if not entries:
        yield Problem(location="/entry", message="the Bundle is empty: it holds no MedicationRequest")
    elif not requests:
        yield Problem(location="/entry", message="the Bundle holds no MedicationRequest")
    elif requests > MAX_LINES:
        yield Problem(
            location="/entry",
            message=f"the Bundle holds {requests} MedicationRequests; a prescription has at most {MAX_LINES}",
        )


def _resource_problems(resource: dict[str, Any], pointer: str, *, in_bundle: bool) -> Iterator[Problem]:
    kind = resource.get("resourceType")
    if not _is_resource_type(kind) or (in_bundle and kind == "Bundle"):
        yield Problem(
            location=f"{pointer}/resourceType", message=f"{kind!r} is no FHIR R4 resource type here"
        )
        return
    contained = resource.get("contained", [])
    for index, item in enumerate(contained if isinstance(contained, list) else []):
        kind = item.get("resourceType") if isinstance(item, dict) else None
        if not _is_resource_type(kind) or kind == "Bundle":
            yield Problem(
                location=f"{pointer}/contained/{index}/resourceType",
                message=(
                    "a contained resource names its resourceType"
                    if kind is None
                    else f"{kind!r} is no FHIR R4 resource type that can be contained"
                ),
            )
    if resource["resourceType"] != "MedicationRequest":
        return
    dispense = resource.get("dispenseRequest")
    quantity = dispense.get("quantity") if isinstance(dispense, dict) else None
    value = quantity.get("value") if isinstance(quantity, dict) else None
    if isinstance(value, str | bool):
        # FHIR JSON writes a decimal as a number; the library would take "12" for 12.
        yield Problem(
            location=f"{pointer}/dispenseRequest/quantity/value",
            message=f"the quantity to dispense is {value!r}: a number, not a string, is needed",
        )
    if "medicationCodeableConcept" in resource and "medicationReference" in resource:
        # The library names the whole resource for this; the second medication is the place.
        yield Problem(
            location=f"{pointer}/medicationReference",
            message="names its medication twice: a medicationCodeableConcept or a medicationReference, not both",
        )
    elif not ("medicationCodeableConcept" in resource or "medicationReference" in resource):
        yield Problem(
            location=f"{pointer}/medicationCodeableConcept",
            message="names no medication: a medicationCodeableConcept or a medicationReference is needed",
        )


def _is_resource_type(kind: object) -> bool:
    # The library fails with a KeyError, not a validation error, on a resourceType it does not know.
    from fhir.resources.R4B import get_fhir_model_class

    if not isinstance(kind, str):
        return False
    try:
        get_fhir_model_class(kind)
    except ValueError:
        return False
    return True


# --- pass 2: the library's validation ----------------------------------------------------------------


def _validated(document: dict[str, Any]) -> Resource:
    models = _models()
    model = models.Bundle if document["resourceType"] == "Bundle" else models.MedicationRequest
    try:
        return model.model_validate(document)
    except pydantic.ValidationError as error:
        raise FhirRefused(
            [
                Problem(
                    location=_pointer(problem["loc"]), message=problem["msg"].removeprefix("Value error, ")
                )
                for problem in error.errors()
            ]
        ) from None


def _pointer(parts: Sequence[int | str]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


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


@dataclass(frozen=True)
class _Found:
    resource: Resource
    pointer: str


def _requests(resource: Resource) -> list[tuple[MedicationRequest, str]]:
    models = _models()
    if isinstance(resource, models.MedicationRequest):
        return [(resource, "")]
    assert isinstance(resource, models.Bundle)
    return [
        (entry.resource, f"/entry/{index}/resource")
        for index, entry in enumerate(resource.entry or [])
        if isinstance(entry.resource, models.MedicationRequest)
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
        prescriber=_prescriber(request, pointer, document, problems),
        patient_reference=_patient_reference(request.subject),
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
        found = _resolve(reference, request, pointer, document)
        if found is None and _is_local(reference):
            problems.append(_dangling(reference, where))
        elif found is None and reference.display:
            # A Medication outside the document: its display is all we have to match by.
            return _finished_line(request, reference.display, [], [], None, None, quantity, flags)
        elif found is None:
            problems.append(
                Problem(
                    location=where, message="names a Medication that is neither contained nor in the Bundle"
                )
            )
        elif not _is(found, "Medication"):
            problems.append(
                Problem(location=f"{where}/reference", message=f"names a {_kind(found)}, not a Medication")
            )
        else:
            medication = found.resource
            assert isinstance(medication, _models().Medication)
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


# --- references: contained (#id), Bundle entries (fullUrl or Type/id) ------------------------------


def _resolve(
    reference: Reference, request: MedicationRequest, pointer: str, document: Resource
) -> _Found | None:
    """The resource a reference names in this document (the request at `pointer`, its Bundle), if any."""
    target = reference.reference
    if not target:
        return None
    if target.startswith("#"):
        for index, contained in enumerate(request.contained or []):
            if contained.id == target[1:]:
                return _Found(contained, f"{pointer}/contained/{index}")
        return None
    if isinstance(document, _models().Bundle):
        for index, entry in enumerate(document.entry or []):
            resource = entry.resource
            if resource is None:
                continue
            local = f"{_resource_type(resource)}/{resource.id}"
            if target in (entry.fullUrl, local) or (entry.fullUrl or "").endswith("/" + target):
                return _Found(resource, f"/entry/{index}/resource")
    return None


def _is_local(reference: Reference) -> bool:
    return (reference.reference or "").startswith("#")


def _dangling(reference: Reference, where: str) -> Problem:
    # A local reference must resolve: the resource it names is part of this document.
    return Problem(
        location=f"{where}/reference",
        message=f"{reference.reference} names no resource contained in the request",
    )


def _resource_type(resource: Resource) -> str:
    return str(resource.get_resource_type())


def _is(found: _Found, kind: str) -> bool:
    return _resource_type(found.resource) == kind


def _kind(found: _Found) -> str:
    return _resource_type(found.resource)


def _prescriber(
    request: MedicationRequest, pointer: str, document: Resource, problems: list[Problem]
) -> Prescriber | None:
    requester = request.requester
    if requester is None:
        return None
    where = f"{pointer}/requester"
    found = _resolve(requester, request, pointer, document)
    if found is None and _is_local(requester):
        problems.append(_dangling(requester, where))
        return None
    if found is None:
        # A prescriber outside the document: what the reference itself says.
        return _named(requester.display, [], [requester.identifier] if requester.identifier else [])
    if _is(found, "PractitionerRole"):
        role = found.resource
        assert isinstance(role, _models().PractitionerRole)
        link = role.practitioner
        practitioner = _resolve(link, request, pointer, document) if link else None
        if link is not None and practitioner is None and _is_local(link):
            problems.append(_dangling(link, f"{found.pointer}/practitioner"))
        if practitioner is not None and _is(practitioner, "Practitioner"):
            return _practitioner(practitioner.resource, role.identifier or [])
        return _named((link.display if link else None) or requester.display, [], role.identifier or [])
    if _is(found, "Practitioner"):
        return _practitioner(found.resource, [])
    problems.append(
        Problem(
            location=f"{where}/reference",
            message=f"the requester is a {_kind(found)}: a prescription is written by a Practitioner",
        )
    )
    return None


def _practitioner(resource: Resource, role_identifiers: list[Identifier]) -> Prescriber | None:
    assert isinstance(resource, _models().Practitioner)
    names = resource.name or []
    official = next((name for name in names if name.use == "official"), names[0] if names else None)
    name = None
    if official is not None:
        parts = [*(official.prefix or []), *(official.given or []), official.family]
        name = official.text or " ".join(part for part in parts if part) or None
    qualified = [
        identifier
        for qualification in resource.qualification or []
        for identifier in qualification.identifier or []
    ]
    return _named(name, qualified, [*(resource.identifier or []), *role_identifiers])


def _named(
    name: str | None, qualified: Sequence[Identifier], identifiers: Sequence[Identifier]
) -> Prescriber | None:
    licence = _licence(qualified, identifiers)
    if name is None and licence is None:
        return None
    return Prescriber(
        name=name,
        licence_number=licence.value if licence else None,
        licence_system=licence.system if licence else None,
    )


def _licence(qualified: Sequence[Identifier], identifiers: Sequence[Identifier]) -> Identifier | None:
    """A qualification's identifier (FHIR's place for a licence), else one typed as a licence, else any."""
    with_value = [identifier for identifier in identifiers if identifier.value]
    typed = [
        identifier
        for identifier in with_value
        if any(
            coding.system == _V2_0203 and coding.code in _LICENCE_TYPES
            for coding in (identifier.type.coding or [] if identifier.type else [])
        )
    ]
    return next((identifier for identifier in [*qualified, *typed, *with_value] if identifier.value), None)


def _patient_reference(subject: Reference | None) -> str | None:
    if subject is None:
        return None
    if subject.reference:
        return subject.reference
    if subject.identifier and subject.identifier.value:
        return f"{subject.identifier.system or ''}|{subject.identifier.value}"
    return subject.display or None


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
