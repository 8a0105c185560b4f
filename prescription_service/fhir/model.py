"""What a FHIR prescription import gives the rest of the platform, and how it says no. No I/O."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.codes import Code

__all__ = ["Code", "FhirImport", "FhirRefused", "ImportedLine", "LineFlag", "Prescriber", "Problem"]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Why a pharmacist should look closely at a line (kept beside it, as the scan draft does).
LineFlag = Literal[
    # A coding of a system we do not check: kept in `other_codes`, never used to match.
    "UNKNOWN_CODE_SYSTEM",
    # A coding with a code but no system: meaningless on its own, dropped.
    "CODE_WITHOUT_SYSTEM",
    # No structured strength (Medication.ingredient.strength): read from the medication's text.
    "STRENGTH_FROM_TEXT",
    # Neither structured nor in the text.
    "NO_STRENGTH",
    # No dispenseRequest.quantity: the pharmacist decides how much.
    "NO_QUANTITY",
]


class ImportedLine(_Value):
    """One prescribed medication, from one MedicationRequest."""

    source_id: str | None  # the MedicationRequest's id (or its Bundle entry's fullUrl)
    text: str  # the medication as the prescriber named it
    name: str
    strength: str | None
    form: str | None
    quantity: int | None
    codes: list[Code]  # checked codes of systems we know: these may match exactly
    other_codes: list[Code] = []  # codes of systems we do not check: kept, not trusted for matching
    dosage_text: str | None
    flags: list[LineFlag] = []


class Prescriber(_Value):
    name: str | None
    licence_number: str | None
    licence_system: str | None = None  # the identifier's system: which register the number is in


class FhirImport(_Value):
    """A FHIR MedicationRequest, or a Bundle of them, read as one prescription."""

    lines: list[ImportedLine]
    issued_on: date | None
    valid_until: date | None
    repeats_allowed: int
    prescriber: Prescriber | None
    patient_reference: str | None


class Problem(_Value):
    """One reason a FHIR document was refused, at a JSON pointer into the document ("" is the whole)."""

    location: str
    message: str


class FhirRefused(Exception):
    """The FHIR document cannot be imported; `problems` names each reason and where it is."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.location or '/'}: {p.message}" for p in problems))
        self.problems = problems
