"""A FHIR document as JSON (pass 1: its shape) and as fhir.resources' R4B models (pass 2). No I/O."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

import pydantic

from prescription_service.fhir.model import FhirRefused, Problem

if TYPE_CHECKING:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.medication import Medication
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.practitioner import Practitioner
    from fhir.resources.R4B.practitionerrole import PractitionerRole
    from fhir.resources.R4B.resource import Resource

MAX_LINES = 20


@dataclass(frozen=True)
class Models:
    """fhir.resources' R4B classes, imported on first use: the models take ~0.1 s to import."""

    Bundle: type[Bundle]
    MedicationRequest: type[MedicationRequest]
    Medication: type[Medication]
    Practitioner: type[Practitioner]
    PractitionerRole: type[PractitionerRole]


@cache
def models() -> Models:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.medication import Medication
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.practitioner import Practitioner
    from fhir.resources.R4B.practitionerrole import PractitionerRole

    return Models(Bundle, MedicationRequest, Medication, Practitioner, PractitionerRole)


# --- pass 1: the document's shape, as JSON ---------------------------------------------------------


def decoded(body: bytes | str) -> Any:
    def no_constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is no JSON number")

    try:
        # Decimals as written: a quantity of 0.1 stays 0.1.
        return json.loads(body, parse_float=Decimal, parse_constant=no_constant)
    except (ValueError, RecursionError) as error:
        raise FhirRefused([Problem(location="", message=f"the body is not JSON: {error}")]) from None


def shape_problems(document: Any) -> Iterator[Problem]:
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
            message="names its medication twice: medicationCodeableConcept or medicationReference, not both",
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


def validated(document: dict[str, Any]) -> Resource:
    fhir = models()
    model = fhir.Bundle if document["resourceType"] == "Bundle" else fhir.MedicationRequest
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
