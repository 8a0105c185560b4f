"""What the scan engine takes (the catalogue) and gives back (a draft for a pharmacist to check)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Flag(StrEnum):
    """Why a pharmacist must look closely at a draft line. Every line the engine could not match has one."""

    # A word of the line (name, strength or quantity digits) was read by tesseract below the confidence
    # threshold: a "5 mg" read at 33 was really "3 mg" in the probe.
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    # Another catalogue entry (another medication, strength or form) scored within a margin of the best.
    CLOSE_RUNNER_UP = "CLOSE_RUNNER_UP"
    # The matched medication is one of a look-alike/sound-alike pair (look_alike.csv).
    LOOK_ALIKE = "LOOK_ALIKE"
    # The name matches a medication, but the catalogue stocks it in no such strength (no medication_id).
    STRENGTH_NOT_STOCKED = "STRENGTH_NOT_STOCKED"
    # The name matches, but the line gives no strength the engine could read.
    STRENGTH_MISSING = "STRENGTH_MISSING"
    # The line names a form (capsule, inhaler...) the matched entry is not.
    FORM_MISMATCH = "FORM_MISMATCH"
    # The line gives no quantity the engine could read.
    QUANTITY_MISSING = "QUANTITY_MISSING"
    # The line looks like a medication line (a strength, a form, a quantity) but did not parse into one.
    UNPARSED = "UNPARSED"
    # The line parsed, but no catalogue medication is near its name.
    NO_MATCH = "NO_MATCH"


class CatalogueEntry(BaseModel):
    """One medication the platform sells, as the scan matches against it."""

    model_config = ConfigDict(frozen=True)

    medication_id: str
    name: str
    strength: str  # "500 mg", "0.5 mg/ml", "100 mcg/dose"
    form: str  # "tablet", "capsule", "inhaler", "oral solution"...
    prescription_only: bool


class DraftLine(BaseModel):
    """One medication line as read, and what the engine made of it."""

    text: str
    medication_id: str | None = None
    name: str | None = None
    strength: str | None = None
    form: str | None = None
    quantity: int | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    flags: list[Flag] = Field(default_factory=list)


class ScanDraft(BaseModel):
    """A document read into medication lines, for the patient to correct and a pharmacist to verify."""

    text: str
    lines: list[DraftLine]
    pages: int
    seconds: float
