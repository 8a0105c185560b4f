"""FHIR R4 prescriptions read by prescription_service/fhir: what is imported, what is refused and where.

Every document here is written for these tests: a patient, two prescribers and a handful of medicines.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel

from prescription_service.fhir import (
    ATC,
    MAX_LINES,
    PZN,
    RXNORM,
    Code,
    FhirImport,
    FhirRefused,
    ImportedLine,
    Prescriber,
    Problem,
    code_problem,
    import_fhir_prescription,
    match_coded,
)
from prescription_service.fhir.codes import pzn_check_digit
from prescription_service.fhir.strength import read_medication_text

SNOMED = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

# PZNs worked out by hand: weights 1..7 on the first seven digits, the sum modulo 11 is the eighth.
# 0,1,2,3,4,5,6 -> 0+2+6+12+20+30+42 = 112 = 10*11 + 2
PZN_VALID = "01234562"
# 1,2,3,4,5,6,7 -> 1+4+9+16+25+36+49 = 140 = 12*11 + 8
PZN_VALID_TOO = "12345678"
# 0,0,0,0,2,0,0 -> 2*5 = 10: a remainder of 10 is never issued, whatever the eighth digit.
PZN_NEVER_ISSUED_PREFIX = "0000200"


def amoxicillin_request() -> dict[str, Any]:
    """A single MedicationRequest, its medication an RxNorm-coded concept, its prescriber contained."""
    return {
        "resourceType": "MedicationRequest",
        "id": "rx-amox-1",
        "contained": [
            {
                "resourceType": "Practitioner",
                "id": "prescriber",
                "identifier": [{"system": "https://example.org/staff", "value": "S-77"}],
                "name": [{"use": "official", "family": "Okafor", "given": ["Ada"], "prefix": ["Dr."]}],
                "qualification": [
                    {
                        "identifier": [
                            {"system": "https://example.org/medical-council", "value": "MC-204518"}
                        ],
                        "code": {"text": "Doctor of Medicine"},
                    }
                ],
            }
        ],
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {"system": RXNORM, "code": "308191", "display": "Amoxicillin 500 MG Oral Capsule"},
            ],
            "text": "Amoxicillin 500 mg capsule",
        },
        "subject": {"reference": "Patient/pat-1042", "display": "Jo Lindqvist"},
        "authoredOn": "2026-11-20T09:15:00+01:00",
        "requester": {"reference": "#prescriber"},
        "dosageInstruction": [{"text": "One capsule three times a day for 7 days"}],
        "dispenseRequest": {
            "validityPeriod": {"start": "2026-11-20", "end": "2027-02-20"},
            "numberOfRepeatsAllowed": 1,
            "quantity": {"value": 21, "unit": "capsule"},
        },
    }


def ramipril_request() -> dict[str, Any]:
    """A MedicationRequest whose medication is a contained Medication (PZN, structured strength)."""
    return {
        "resourceType": "MedicationRequest",
        "id": "rx-rami-1",
        "contained": [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {
                    "coding": [
                        {"system": PZN, "code": PZN_VALID, "display": "Ramipril 5 mg Tabletten"},
                        {"system": ATC, "code": "C09AA05"},
                    ],
                    "text": "Ramipril 5 mg tablets",
                },
                "form": {"text": "Tablet"},
                "ingredient": [
                    {
                        "itemCodeableConcept": {"text": "ramipril"},
                        "strength": {
                            "numerator": {"value": 5, "unit": "mg", "system": "http://unitsofmeasure.org"},
                            "denominator": {"value": 1, "unit": "tablet", "code": "{tbl}"},
                        },
                    }
                ],
            }
        ],
        "status": "active",
        "intent": "original-order",
        "medicationReference": {"reference": "#med"},
        "subject": {"reference": "Patient/pat-1042"},
        "authoredOn": "2026-11-21",
        "requester": {"display": "Dr. Ben Adeyemi", "identifier": {"value": "LANR-123456789"}},
        "dispenseRequest": {"quantity": {"value": 50}},
    }


def three_line_bundle() -> dict[str, Any]:
    """A Bundle of three MedicationRequests, one prescriber entry, one Medication entry and the patient."""
    prescriber = "urn:uuid:0d6f1c8e-5a40-4b55-9d8e-2f3b6c1a7e90"

    def request(request_id: str, medication: dict[str, Any], quantity: float) -> dict[str, Any]:
        return {
            "fullUrl": f"urn:uuid:{request_id}",
            "resource": {
                "resourceType": "MedicationRequest",
                "id": request_id,
                "status": "active",
                "intent": "order",
                **medication,
                "subject": {"reference": "Patient/pat-1042"},
                "authoredOn": "2026-12-01",
                "requester": {"reference": prescriber},
                "dispenseRequest": {
                    "validityPeriod": {"end": "2026-12-29"},
                    "numberOfRepeatsAllowed": 2,
                    "quantity": {"value": quantity},
                },
            },
        }

    return {
        "resourceType": "Bundle",
        "id": "bundle-77",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "https://ehr.example.org/fhir/Patient/pat-1042",
                "resource": {"resourceType": "Patient", "id": "pat-1042"},
            },
            request(
                "line-1",
                {
                    "medicationCodeableConcept": {
                        "text": "Metformin 850 mg film-coated tablet",
                        "coding": [{"system": ATC, "code": "A10BA02"}],
                    }
                },
                56,
            ),
            {
                "fullUrl": prescriber,
                "resource": {
                    "resourceType": "Practitioner",
                    "id": "gp-3",
                    "identifier": [
                        {"system": "https://example.org/clinic", "value": "C-9"},
                        {
                            "type": {"coding": [{"system": V2_0203, "code": "LN"}]},
                            "system": "https://example.org/licences",
                            "value": "L-55521",
                        },
                    ],
                    "name": [{"text": "Dr. Priya Raman"}],
                },
            },
            request("line-2", {"medicationReference": {"reference": "Medication/paracetamol-susp"}}, 1),
            {
                "fullUrl": "https://ehr.example.org/fhir/Medication/paracetamol-susp",
                "resource": {
                    "resourceType": "Medication",
                    "id": "paracetamol-susp",
                    "code": {
                        "coding": [
                            {"system": SNOMED, "code": "1234567001"},
                            {"system": RXNORM, "code": "313820"},
                        ],
                        "text": "Paracetamol oral suspension",
                    },
                    "form": {"coding": [{"display": "Oral suspension"}]},
                    "ingredient": [
                        {
                            "itemCodeableConcept": {"text": "paracetamol"},
                            "strength": {
                                "numerator": {"value": 120.0, "unit": "mg"},
                                "denominator": {"value": 5, "unit": "mL"},
                            },
                        }
                    ],
                },
            },
            request("line-3", {"medicationCodeableConcept": {"text": "Sertraline 50 mg tablets"}}, 28),
        ],
    }


def imported(document: dict[str, Any] | str) -> FhirImport:
    return import_fhir_prescription(document if isinstance(document, str) else json.dumps(document))


def refused(document: dict[str, Any] | str | bytes) -> list[Problem]:
    body = json.dumps(document) if isinstance(document, dict) else document
    with pytest.raises(FhirRefused) as refusal:
        import_fhir_prescription(body)
    return refusal.value.problems


def locations(problems: list[Problem]) -> list[str]:
    return [problem.location for problem in problems]


# --- what is imported ----------------------------------------------------------------------------------


def test_a_coded_medication_request_becomes_one_line_with_its_prescription_details() -> None:
    prescription = imported(amoxicillin_request())

    assert prescription.lines == [
        ImportedLine(
            source_id="rx-amox-1",
            text="Amoxicillin 500 mg capsule",
            name="Amoxicillin",
            strength="500 mg",
            form="capsule",
            quantity=21,
            codes=[Code(system=RXNORM, code="308191")],
            dosage_text="One capsule three times a day for 7 days",
            flags=["STRENGTH_FROM_TEXT"],
        )
    ]
    assert prescription.issued_on == date(2026, 11, 20)
    assert prescription.valid_until == date(2027, 2, 20)
    assert prescription.repeats_allowed == 1
    # The licence is the qualification's identifier, not the staff number listed first.
    assert prescription.prescriber == Prescriber(
        name="Dr. Ada Okafor",
        licence_number="MC-204518",
        licence_system="https://example.org/medical-council",
    )
    assert prescription.patient_reference == "Patient/pat-1042"


def test_a_contained_medication_gives_its_codes_strength_and_form() -> None:
    prescription = imported(ramipril_request())

    (line,) = prescription.lines
    assert line.codes == [Code(system=PZN, code=PZN_VALID), Code(system=ATC, code="C09AA05")]
    assert (line.name, line.strength, line.form, line.quantity) == ("Ramipril", "5 mg", "tablet", 50)
    assert line.flags == []  # the strength is structured, not read from text
    assert prescription.repeats_allowed == 0
    assert prescription.valid_until is None
    # A prescriber outside the document: its display and the reference's identifier.
    assert prescription.prescriber == Prescriber(name="Dr. Ben Adeyemi", licence_number="LANR-123456789")


def test_a_bundle_of_three_requests_is_one_prescription_with_the_bundled_practitioner() -> None:
    prescription = imported(three_line_bundle())

    assert [line.source_id for line in prescription.lines] == ["line-1", "line-2", "line-3"]
    metformin, paracetamol, sertraline = prescription.lines
    assert (metformin.name, metformin.strength, metformin.form) == (
        "Metformin",
        "850 mg",
        "film-coated tablet",
    )
    assert metformin.codes == [Code(system=ATC, code="A10BA02")]
    assert (paracetamol.name, paracetamol.strength, paracetamol.form) == (
        "Paracetamol oral suspension",
        "120 mg/5 mL",
        "oral suspension",
    )
    assert paracetamol.codes == [Code(system=RXNORM, code="313820")]
    # SNOMED CT is kept for the pharmacist but never trusted to match.
    assert paracetamol.other_codes == [Code(system=SNOMED, code="1234567001")]
    assert "UNKNOWN_CODE_SYSTEM" in paracetamol.flags
    assert (sertraline.strength, sertraline.codes, sertraline.flags) == ("50 mg", [], ["STRENGTH_FROM_TEXT"])
    assert prescription.prescriber == Prescriber(
        name="Dr. Priya Raman", licence_number="L-55521", licence_system="https://example.org/licences"
    )
    assert (prescription.issued_on, prescription.valid_until, prescription.repeats_allowed) == (
        date(2026, 12, 1),
        date(2026, 12, 29),
        2,
    )
    assert prescription.patient_reference == "Patient/pat-1042"


def test_an_import_round_trips_through_json() -> None:
    prescription = imported(three_line_bundle())

    assert FhirImport.model_validate_json(prescription.model_dump_json()) == prescription


def test_a_request_without_quantity_or_strength_is_flagged_for_the_pharmacist() -> None:
    request = amoxicillin_request()
    request["medicationCodeableConcept"] = {"text": "Emollient cream"}
    del request["dispenseRequest"]

    (line,) = imported(request).lines

    assert (line.quantity, line.strength, line.flags) == (None, None, ["NO_STRENGTH", "NO_QUANTITY"])


def test_a_practitioner_role_requester_names_its_practitioner() -> None:
    bundle = three_line_bundle()
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:role-1",
            "resource": {
                "resourceType": "PractitionerRole",
                "id": "role-1",
                "practitioner": {"reference": "Practitioner/gp-3"},
            },
        }
    )
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"]["requester"] = {"reference": "urn:uuid:role-1"}

    prescriber = imported(bundle).prescriber

    assert prescriber is not None
    assert (prescriber.name, prescriber.licence_number) == ("Dr. Priya Raman", "L-55521")


def test_the_fhir_models_are_imported_only_when_a_document_is_read() -> None:
    # Importing fhir.resources' models takes about 0.1 s: a service that never reads FHIR never pays it.
    probe = "import sys, prescription_service.fhir; print('fhir.resources' in sys.modules)"
    # A fresh interpreter: this one has imported the models already. The probe is our own constant.
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "False"


# --- what is refused, and where --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"{not json", "", b"\xff\xfe", '{"resourceType": "MedicationRequest", "x": NaN}']
)
def test_a_body_that_is_not_json_is_refused(body: str | bytes) -> None:
    (problem,) = refused(body)

    assert problem.location == ""
    assert "not JSON" in problem.message


def test_a_json_array_is_refused() -> None:
    assert locations(refused("[1, 2]")) == [""]


@pytest.mark.parametrize("resource_type", ["Patient", "MedicationStatement", None, 7])
def test_only_a_medication_request_or_a_bundle_is_read(resource_type: object) -> None:
    (problem,) = refused({"resourceType": resource_type, "id": "x"})

    assert problem.location == "/resourceType"


def test_an_entry_of_an_unknown_resource_type_is_refused_at_its_resource_type() -> None:
    bundle = three_line_bundle()
    bundle["entry"][0]["resource"]["resourceType"] = "Patiant"

    assert locations(refused(bundle)) == ["/entry/0/resource/resourceType"]


def test_the_librarys_validation_errors_are_named_at_their_place_in_the_bundle() -> None:
    bundle = three_line_bundle()
    bundle["entry"][1]["resource"]["medicationCodeableConcept"]["coding"][0]["code"] = 5
    bundle["entry"][3]["resource"]["authoredOn"] = "first of December"
    bundle["entry"][5]["resource"]["dosageInstructions"] = [{"text": "a typo in the element's name"}]

    problems = refused(bundle)

    assert sorted(locations(problems)) == [
        "/entry/1/resource/medicationCodeableConcept/coding/0/code",
        "/entry/3/resource/authoredOn",
        "/entry/5/resource/dosageInstructions",
    ]
    assert all(problem.message and not problem.message.startswith("Value error") for problem in problems)


@pytest.mark.parametrize("status", ["draft", "completed", "on-hold", "cancelled", "entered-in-error"])
def test_only_an_active_request_is_imported(status: str) -> None:
    request = amoxicillin_request()
    request["status"] = status

    (problem,) = refused(request)

    assert problem.location == "/status"
    assert status in problem.message


@pytest.mark.parametrize("intent", ["proposal", "plan", "reflex-order", "option"])
def test_a_request_that_is_no_order_is_refused(intent: str) -> None:
    request = amoxicillin_request()
    request["intent"] = intent

    assert locations(refused(request)) == ["/intent"]


@pytest.mark.parametrize("intent", ["order", "original-order", "instance-order"])
def test_every_kind_of_order_is_imported(intent: str) -> None:
    request = amoxicillin_request()
    request["intent"] = intent

    assert len(imported(request).lines) == 1


def test_a_request_that_names_no_medication_is_refused() -> None:
    bundle = three_line_bundle()
    del bundle["entry"][5]["resource"]["medicationCodeableConcept"]

    (problem,) = refused(bundle)

    assert problem.location == "/entry/5/resource/medicationCodeableConcept"
    assert "no medication" in problem.message


def test_a_request_that_names_its_medication_twice_is_refused_at_the_second() -> None:
    request = amoxicillin_request()
    request["medicationReference"] = {"reference": "#prescriber"}

    assert locations(refused(request)) == ["/medicationReference"]


def test_a_bundle_entry_that_is_no_object_is_refused_where_it_is() -> None:
    bundle = three_line_bundle()
    bundle["entry"][0] = 5

    assert locations(refused(bundle)) == ["/entry/0"]


@pytest.mark.parametrize(
    "contained", [{"id": "no-type"}, {"resourceType": "Prescription"}, {"resourceType": "Bundle"}]
)
def test_a_contained_resource_of_no_known_type_is_refused(contained: dict[str, Any]) -> None:
    request = amoxicillin_request()
    request["contained"].append(contained)

    assert locations(refused(request)) == ["/contained/1/resourceType"]


def test_a_validation_error_inside_a_contained_medication_is_named_there() -> None:
    request = ramipril_request()
    request["contained"][0]["ingredient"][0]["strength"]["numerator"]["value"] = "five"

    assert locations(refused(request)) == ["/contained/0/ingredient/0/strength/numerator/value"]


def test_a_requester_reference_to_nothing_contained_is_refused() -> None:
    request = amoxicillin_request()
    request["requester"] = {"reference": "#nobody"}

    assert locations(refused(request)) == ["/requester/reference"]


def test_a_medication_concept_with_neither_text_nor_coding_is_refused() -> None:
    request = amoxicillin_request()
    request["medicationCodeableConcept"] = {"coding": [{"system": RXNORM}]}

    assert locations(refused(request)) == ["/medicationCodeableConcept"]


@pytest.mark.parametrize("value", [2.5, 0, -3, 1001, "12"])
def test_a_quantity_that_is_not_a_positive_whole_number_is_refused(value: object) -> None:
    request = amoxicillin_request()
    request["dispenseRequest"]["quantity"]["value"] = value

    assert locations(refused(request)) == ["/dispenseRequest/quantity/value"]


def test_a_quantity_of_twenty_point_zero_is_twenty() -> None:
    request = amoxicillin_request()
    request["dispenseRequest"]["quantity"]["value"] = 20.0

    assert imported(request).lines[0].quantity == 20


def test_a_validity_that_ends_before_the_prescription_was_written_is_refused() -> None:
    request = amoxicillin_request()
    request["dispenseRequest"]["validityPeriod"]["end"] = "2026-11-19"

    (problem,) = refused(request)

    assert problem.location == "/dispenseRequest/validityPeriod/end"
    assert "2026-11-19" in problem.message


def test_a_date_without_a_day_is_refused() -> None:
    request = amoxicillin_request()
    request["dispenseRequest"]["validityPeriod"]["end"] = "2027-02"

    assert locations(refused(request)) == ["/dispenseRequest/validityPeriod/end"]


def test_an_empty_bundle_is_refused() -> None:
    (problem,) = refused({"resourceType": "Bundle", "type": "collection", "entry": []})

    assert problem.location == "/entry"
    assert "empty" in problem.message
    assert locations(refused({"resourceType": "Bundle", "type": "collection"})) == ["/entry"]


def test_a_bundle_without_a_medication_request_is_refused() -> None:
    bundle = three_line_bundle()
    bundle["entry"] = [
        entry for entry in bundle["entry"] if entry["resource"]["resourceType"] != "MedicationRequest"
    ]

    assert locations(refused(bundle)) == ["/entry"]


def test_a_bundle_of_more_lines_than_a_prescription_holds_is_refused() -> None:
    line = three_line_bundle()["entry"][5]
    entries = [copy.deepcopy(line) for _ in range(MAX_LINES)]
    full = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    assert len(imported(full).lines) == MAX_LINES

    entries.append(copy.deepcopy(line))

    (problem,) = refused(full)
    assert problem.location == "/entry"
    assert f"at most {MAX_LINES}" in problem.message


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (RXNORM, "30819A"),
        (RXNORM, "123456789"),
        (ATC, "C09AA5"),
        (ATC, "c09aa05"),
        (PZN, "01234563"),
        (PZN, "1234562"),
    ],
)
def test_a_code_that_is_not_valid_in_its_system_is_refused_at_its_coding(system: str, code: str) -> None:
    bundle = three_line_bundle()
    bundle["entry"][1]["resource"]["medicationCodeableConcept"]["coding"][0] = {
        "system": system,
        "code": code,
    }

    (problem,) = refused(bundle)

    assert problem.location == "/entry/1/resource/medicationCodeableConcept/coding/0/code"
    assert code in problem.message


def test_a_wrong_code_in_a_contained_medication_is_refused_where_it_is_written() -> None:
    request = ramipril_request()
    request["contained"][0]["code"]["coding"][0]["code"] = "01234567"

    assert locations(refused(request)) == ["/contained/0/code/coding/0/code"]


def test_a_medication_reference_to_nothing_contained_is_refused() -> None:
    request = ramipril_request()
    request["medicationReference"] = {"reference": "#medication-that-is-not-there"}

    assert locations(refused(request)) == ["/medicationReference/reference"]


def test_a_medication_reference_to_a_practitioner_is_refused() -> None:
    bundle = three_line_bundle()
    bundle["entry"][3]["resource"]["medicationReference"] = {"reference": "Practitioner/gp-3"}

    assert locations(refused(bundle)) == ["/entry/3/resource/medicationReference/reference"]


def test_a_medication_outside_the_bundle_without_a_display_is_refused() -> None:
    bundle = three_line_bundle()
    bundle["entry"][3]["resource"]["medicationReference"] = {"reference": "Medication/elsewhere"}

    assert locations(refused(bundle)) == ["/entry/3/resource/medicationReference"]


def test_a_requester_that_is_the_patient_is_refused() -> None:
    bundle = three_line_bundle()
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"]["requester"] = {"reference": "Patient/pat-1042"}

    assert locations(refused(bundle)) == [f"/entry/{i}/resource/requester/reference" for i in (1, 3, 5)]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("requester", {"display": "Dr. Someone Else"}),
        ("subject", {"reference": "Patient/pat-9999"}),
        (
            "dispenseRequest",
            {"validityPeriod": {"end": "2027-01-31"}, "numberOfRepeatsAllowed": 2, "quantity": {"value": 28}},
        ),
        ("dispenseRequest", {"validityPeriod": {"end": "2026-12-29"}, "quantity": {"value": 28}}),
        ("authoredOn", "2026-12-02"),
    ],
)
def test_the_requests_of_a_bundle_must_agree_on_the_prescription(field: str, change: object) -> None:
    bundle = three_line_bundle()
    bundle["entry"][5]["resource"][field] = change

    (problem,) = refused(bundle)

    assert problem.location.startswith(f"/entry/5/resource/{field}")
    assert "/entry/1/resource" in problem.message


def test_every_problem_of_a_request_is_named_at_once() -> None:
    request = amoxicillin_request()
    request["status"] = "completed"
    request["intent"] = "plan"
    request["medicationCodeableConcept"]["coding"][0]["code"] = "not-a-rxcui"
    request["dispenseRequest"]["quantity"]["value"] = 0

    assert sorted(locations(refused(request))) == [
        "/dispenseRequest/quantity/value",
        "/intent",
        "/medicationCodeableConcept/coding/0/code",
        "/status",
    ]


def test_a_refusal_names_each_problem_in_its_message() -> None:
    request = amoxicillin_request()
    request["intent"] = "plan"

    with pytest.raises(FhirRefused, match="/intent: intent 'plan' is no order"):
        imported(request)


# --- code values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [PZN_VALID, PZN_VALID_TOO])
def test_a_pzn_with_its_mod_11_check_digit_is_valid(code: str) -> None:
    assert code_problem(Code(system=PZN, code=code)) is None


@pytest.mark.parametrize(
    "code",
    [
        "01234561",  # check digit off by one
        "12345670",
        "21345678",  # two digits swapped: the weights catch it
        "1234567",  # seven digits: the old PZN-7 is no PZN here
        "123456789",
        "0123456X",
        *(PZN_NEVER_ISSUED_PREFIX + str(digit) for digit in range(10)),
    ],
)
def test_a_pzn_without_its_check_digit_is_invalid(code: str) -> None:
    assert code_problem(Code(system=PZN, code=code)) is not None


def test_the_pzn_check_digit_is_the_weighted_sum_modulo_11() -> None:
    assert pzn_check_digit("0123456") == 2
    assert pzn_check_digit("1234567") == 8
    assert pzn_check_digit(PZN_NEVER_ISSUED_PREFIX) is None


@pytest.mark.parametrize("code", ["C", "C09", "C09A", "C09AA", "C09AA05", "N02BE01", "A10BA02"])
def test_an_atc_code_of_any_level_is_valid(code: str) -> None:
    assert code_problem(Code(system=ATC, code=code)) is None


@pytest.mark.parametrize(
    "code", ["", "C0", "C09AA0", "C09AA055", "c09aa05", "X09AA05", "C9AA05", "C09A105", "C09AA 05"]
)
def test_an_atc_code_off_its_pattern_is_invalid(code: str) -> None:
    assert code_problem(Code(system=ATC, code=code)) is not None


@pytest.mark.parametrize("code", ["1", "308191", "12345678"])
def test_an_rxnorm_code_of_one_to_eight_digits_is_valid(code: str) -> None:
    assert code_problem(Code(system=RXNORM, code=code)) is None


@pytest.mark.parametrize("code", ["", "0", "0308191", "123456789", "30819a", "308 191", "-308191"])
def test_an_rxnorm_code_that_is_not_one_to_eight_digits_is_invalid(code: str) -> None:
    assert code_problem(Code(system=RXNORM, code=code)) is not None


def test_a_code_of_an_unknown_system_is_not_checked() -> None:
    assert code_problem(Code(system=SNOMED, code="anything")) is None


# --- strength read from text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "strength", "form"),
    [
        ("Amoxicillin 500 mg capsule", "Amoxicillin", "500 mg", "capsule"),
        ("Amoxicillin 500 MG Oral Capsule", "Amoxicillin", "500 mg", "oral capsule"),
        ("Paracetamol 120 mg/5 ml oral suspension", "Paracetamol", "120 mg/5 mL", "oral suspension"),
        ("Co-amoxiclav 875 mg/125 mg tablets", "Co-amoxiclav", "875 mg / 125 mg", "tablets"),
        ("Ramipril 2,5 mg Tabletten", "Ramipril", "2.5 mg", "tabletten"),
        ("Salbutamol 100 micrograms/dose inhaler", "Salbutamol", "100 mcg/dose", "inhaler"),
        ("Hydrocortisone cream 1%", "Hydrocortisone cream", "1 %", None),
        ("Emollient cream", "Emollient cream", None, None),
    ],
)
def test_strength_and_form_are_read_from_the_medication_text(
    text: str, name: str, strength: str | None, form: str | None
) -> None:
    written = read_medication_text(text)

    assert (written.name, written.strength, written.form) == (name, strength, form)


# --- matching by code --------------------------------------------------------------------------------


class CatalogueEntry(BaseModel):
    id: str
    codes: tuple[Code, ...] = ()


CATALOGUE = [
    CatalogueEntry(
        id="ramipril-5", codes=(Code(system=PZN, code=PZN_VALID), Code(system=ATC, code="C09AA05"))
    ),
    CatalogueEntry(
        id="ramipril-10", codes=(Code(system=PZN, code=PZN_VALID_TOO), Code(system=ATC, code="C09AA05"))
    ),
    CatalogueEntry(id="amoxicillin-500", codes=(Code(system=RXNORM, code="308191"),)),
    CatalogueEntry(id="uncoded-cream"),
]


def line_with(*codes: Code, other_codes: tuple[Code, ...] = ()) -> ImportedLine:
    return ImportedLine(
        source_id="rx",
        text="x",
        name="x",
        strength=None,
        form=None,
        quantity=1,
        codes=list(codes),
        other_codes=list(other_codes),
        dosage_text=None,
    )


def test_an_exact_code_matches_its_medication() -> None:
    assert match_coded(line_with(Code(system=RXNORM, code="308191")), CATALOGUE) == "amoxicillin-500"


def test_a_code_that_several_medications_carry_matches_none() -> None:
    # ATC names the substance: both strengths of ramipril carry it.
    assert match_coded(line_with(Code(system=ATC, code="C09AA05")), CATALOGUE) is None


def test_a_pzn_settles_which_strength_an_atc_code_means() -> None:
    line = line_with(Code(system=ATC, code="C09AA05"), Code(system=PZN, code=PZN_VALID_TOO))

    assert match_coded(line, CATALOGUE) == "ramipril-10"


def test_codes_naming_different_medications_match_none() -> None:
    line = line_with(Code(system=PZN, code=PZN_VALID), Code(system=RXNORM, code="308191"))

    assert match_coded(line, CATALOGUE) is None


def test_a_code_the_catalogue_lacks_leaves_the_others_to_match() -> None:
    line = line_with(Code(system=RXNORM, code="999"), Code(system=RXNORM, code="308191"))

    assert match_coded(line, CATALOGUE) == "amoxicillin-500"


def test_codes_of_unknown_systems_never_match() -> None:
    catalogue = [CatalogueEntry(id="cream", codes=(Code(system=SNOMED, code="42"),))]
    line = line_with(other_codes=(Code(system=SNOMED, code="42"),))

    assert match_coded(line, catalogue) is None


def test_an_imported_line_matches_by_its_checked_codes() -> None:
    (line,) = imported(ramipril_request()).lines

    assert match_coded(line, CATALOGUE) == "ramipril-5"
