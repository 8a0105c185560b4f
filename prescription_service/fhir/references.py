"""What a request's references name: contained resources (#id), Bundle entries (fullUrl or Type/id),
and the prescriber and patient they lead to. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prescription_service.fhir.document import models
from prescription_service.fhir.model import Prescriber, Problem

if TYPE_CHECKING:
    from fhir.resources.R4B.identifier import Identifier
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.reference import Reference
    from fhir.resources.R4B.resource import Resource

# Identifier types (HL7 v2 table 0203) that name a prescriber's licence or registration.
_LICENCE_TYPES = {"LN", "PRN", "MD", "NPI", "DN", "RN"}
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass(frozen=True)
class Found:
    resource: Resource
    pointer: str


def resolve(
    reference: Reference, request: MedicationRequest, pointer: str, document: Resource
) -> Found | None:
    """The resource a reference names in this document (the request at `pointer`, its Bundle), if any."""
    target = reference.reference
    if not target:
        return None
    if target.startswith("#"):
        for index, contained in enumerate(request.contained or []):
            if contained.id == target[1:]:
                return Found(contained, f"{pointer}/contained/{index}")
        return None
    if isinstance(document, models().Bundle):
        for index, entry in enumerate(document.entry or []):
            resource = entry.resource
            if resource is None:
                continue
            local = f"{resource_type(resource)}/{resource.id}"
            if target in (entry.fullUrl, local) or (entry.fullUrl or "").endswith("/" + target):
                return Found(resource, f"/entry/{index}/resource")
    return None


def is_local(reference: Reference) -> bool:
    return (reference.reference or "").startswith("#")


def dangling(reference: Reference, where: str) -> Problem:
    # A local reference must resolve: the resource it names is part of this document.
    return Problem(
        location=f"{where}/reference",
        message=f"{reference.reference} names no resource contained in the request",
    )


def resource_type(resource: Resource) -> str:
    return str(resource.get_resource_type())


def is_a(found: Found, kind: str) -> bool:
    return resource_type(found.resource) == kind


def kind_of(found: Found) -> str:
    return resource_type(found.resource)


def prescriber_of(
    request: MedicationRequest, pointer: str, document: Resource, problems: list[Problem]
) -> Prescriber | None:
    requester = request.requester
    if requester is None:
        return None
    where = f"{pointer}/requester"
    found = resolve(requester, request, pointer, document)
    if found is None and is_local(requester):
        problems.append(dangling(requester, where))
        return None
    if found is None:
        # A prescriber outside the document: what the reference itself says.
        return _named(requester.display, [], [requester.identifier] if requester.identifier else [])
    if is_a(found, "PractitionerRole"):
        role = found.resource
        assert isinstance(role, models().PractitionerRole)
        link = role.practitioner
        practitioner = resolve(link, request, pointer, document) if link else None
        if link is not None and practitioner is None and is_local(link):
            problems.append(dangling(link, f"{found.pointer}/practitioner"))
        if practitioner is not None and is_a(practitioner, "Practitioner"):
            return _practitioner(practitioner.resource, role.identifier or [])
        return _named((link.display if link else None) or requester.display, [], role.identifier or [])
    if is_a(found, "Practitioner"):
        return _practitioner(found.resource, [])
    problems.append(
        Problem(
            location=f"{where}/reference",
            message=f"the requester is a {kind_of(found)}: a prescription is written by a Practitioner",
        )
    )
    return None


def _practitioner(resource: Resource, role_identifiers: list[Identifier]) -> Prescriber | None:
    assert isinstance(resource, models().Practitioner)
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


def patient_reference_of(subject: Reference | None) -> str | None:
    if subject is None:
        return None
    if subject.reference:
        return subject.reference
    if subject.identifier and subject.identifier.value:
        return f"{subject.identifier.system or ''}|{subject.identifier.value}"
    return subject.display or None
