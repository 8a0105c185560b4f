"""A line of recognised text read as a medication line: name, strength, form, quantity.

Pure string work, no catalogue: matching.py decides what the parts name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

NUMBER: Final = r"\d+(?:\.\d+)?"
MASS_UNITS: Final = {"g": 1000.0, "mg": 1.0, "mcg": 0.001}
UNIT: Final = r"(?:mcg|mg|g|ml|iu|units?|%)"
PER_UNIT: Final = r"(?:ml|dose|g|actuation|hours?|h)"
STRENGTH_PATTERN: Final = re.compile(
    rf"(?P<amount>{NUMBER})\s*(?P<unit>{UNIT})(?![a-z])"
    rf"(?:\s*/\s*(?P<per_amount>{NUMBER})?\s*(?P<per_unit>{PER_UNIT})(?![a-z]))?",
    re.IGNORECASE,
)
# Canonical forms, and the words a prescriber writes for them (longest first wins).
FORMS: Final = {
    "oral solution": "oral solution",
    "oral suspension": "oral suspension",
    "eye drops": "eye drops",
    "nasal spray": "nasal spray",
    "tablets": "tablet",
    "tablet": "tablet",
    "tabs": "tablet",
    "tab": "tablet",
    "capsules": "capsule",
    "capsule": "capsule",
    "caps": "capsule",
    "cap": "capsule",
    "inhaler": "inhaler",
    "inhalers": "inhaler",
    "solution": "oral solution",
    "suspension": "oral suspension",
    "syrup": "oral solution",
    "cream": "cream",
    "ointment": "ointment",
    "gel": "gel",
    "drops": "eye drops",
    "injection": "injection",
    "patch": "patch",
    "patches": "patch",
    "spray": "nasal spray",
}
FORM_PATTERN: Final = re.compile(
    r"\b(?P<form>" + "|".join(sorted(map(re.escape, FORMS), key=len, reverse=True)) + r")\b", re.IGNORECASE
)
# Explicit quantity markers: "Qty: 30", "Quantity 30", "Supply: 28", "x 30", "#30". OCR often reads Q as O.
QUANTITY_PATTERNS: Final = (
    re.compile(r"\b(?:[qo0][td]?y|quantity|supply|dispense|disp)\b[\s.:;=,]*(?P<count>\d+)\b", re.IGNORECASE),
    re.compile(r"(?:^|\s)[x\u00d7]\s*(?P<count>\d+)\b", re.IGNORECASE),
    re.compile(r"#\s*(?P<count>\d+)\b"),
)
# "30 tablets": a count before a form, unless it is a direction ("take 1 tablet").
COUNTED_FORM_PATTERN: Final = re.compile(
    r"(?<!take )(?<!use )(?<!apply )(?<!inhale )\b(?P<count>\d+)\s+"
    r"(?:tablets?|tabs?|capsules?|caps?|inhalers?|packs?|bottles?|tubes?|patches)\b",
    re.IGNORECASE,
)
DIRECTION_WORDS: Final = (
    "take",
    "apply",
    "use",
    "inhale",
    "instil",
    "insert",
    "sig",
    "directions",
    "one ",
    "two ",
)
# Lines that start so are the prescription's header and footer, unless they also carry a strength.
HEADER_WORDS: Final = re.compile(
    r"^\W*(?:dr\b|doctor|prescriber|patient|name|address|dob|d\.o\.b|date|born|age|tel|phone|fax|email|nhs"
    r"|gmc|licen[cs]e|reg\b|registration|signature|signed|practice|clinic|surgery|hospital|medical|pharmacy"
    r"|page|rx\W*$|prescription|valid|repeats?|refills?|issued|mrn|id\b)",
    re.IGNORECASE,
)
LEADING_MARK: Final = re.compile(r"^\W*(?:rx\b\W*)?(?:\d{1,2}\s*[.)]\s*|[-*•·]\s*)?", re.IGNORECASE)
# OCR reads 0 as O and 1 as l or I inside numbers; only where a unit follows, so names keep their letters.
DIGIT_LOOKALIKES: Final = str.maketrans({"O": "0", "o": "0", "l": "1", "I": "1", "|": "1"})
NUMBER_BEFORE_UNIT: Final = re.compile(
    rf"(?<![A-Za-z])(?P<number>(?=[0-9.]*[OolI|])[0-9OolI|]*[0-9][0-9OolI|]*(?:\.[0-9OolI|]+)?)(?=\s*{UNIT}(?![a-z]))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Strength:
    amount: float
    unit: str
    per_amount: float | None = None
    per_unit: str | None = None

    def key(self) -> tuple[str, float, str | None, float]:
        """Equal for equal strengths however written: 0.5 mg/ml and 500 mcg/ml, 1 g and 1000 mg."""
        if self.unit in MASS_UNITS:
            family, value = "mass", self.amount * MASS_UNITS[self.unit]
        else:
            family, value = self.unit, self.amount
        return family, round(value, 6), self.per_unit, self.per_amount or 1.0

    def __str__(self) -> str:
        text = f"{self.amount:g} {self.unit}"
        if self.per_unit is not None:
            text += f"/{self.per_amount:g} {self.per_unit}" if self.per_amount else f"/{self.per_unit}"
        return text


@dataclass(frozen=True)
class ParsedLine:
    text: str  # the line as read
    name: str | None  # the words before the strength, lowercased; None when none are left
    strength: Strength | None
    form: str | None
    quantity: int | None
    is_header: bool  # a header or footer line (prescriber, patient, date...) with no strength
    has_medication_cue: bool  # a strength, a form or a quantity marker: looks like a medication line
    corrected: bool = False  # a strength was read through one of OCR_CORRECTIONS


def normalise(text: str) -> str:
    """Units and decimals written one way: "µg" and "micrograms" as "mcg", "0,5" as "0.5", "mL" as "ml"."""
    text = re.sub(r"(?<=\d)\s*(?:µg|μg)\b", " mcg", text)
    text = re.sub(r"\bmicrograms?\b", "mcg", text, flags=re.IGNORECASE)
    text = re.sub(r"\bmilligrams?\b", "mg", text, flags=re.IGNORECASE)
    text = re.sub(r"\bmillilit(?:er|re)s?\b", "ml", text, flags=re.IGNORECASE)
    text = re.sub(r"\bunits?\b", "units", text, flags=re.IGNORECASE)
    text = re.sub(r"(?<=\d),(?=\d)", ".", text)
    return re.sub(r"\s+", " ", text).strip()


# What tesseract makes of strengths, and what was printed. Each is a guess, so a line corrected by one
# is LOW_CONFIDENCE whatever tesseract said.
OCR_CORRECTIONS: Final = (
    # µ read as u, y or p (nothing is prescribed in picograms).
    (re.compile(r"(?<=\d)\s*(?:ug|yg|pg)\b"), lambda m: " mcg"),
    # mg read as mq, rng, mig, ng; mcg as mcq, rncg.
    (re.compile(r"(?<=\d)\s*(?:mq|rng|rnq|mig|nig|ng)\b"), lambda m: " mg"),
    (re.compile(r"(?<=\d)\s*(?:mcq|meg|rncg|rncq|rneg)\b"), lambda m: " mcg"),
    # A stray point before a unit: "10.mg".
    (re.compile(r"(?<=\d)\.(?=\s*(?:mg|mcg|ml|g)\b)"), lambda m: " "),
    # 0 read as O, 1 as l or I, inside a number before a unit (names keep their letters).
    (NUMBER_BEFORE_UNIT, lambda m: m["number"].translate(DIGIT_LOOKALIKES)),
    # A lone S or Z glued to a unit is a 5 or a 2 ("Smg"): no word is one letter before a unit.
    (re.compile(r"(?<![A-Za-z0-9.])([SZ])(?=\s*(?:mg|mcg|ml)\b)"), lambda m: "5" if m[1] == "S" else "2"),
)


def corrected(text: str) -> tuple[str, bool]:
    """The text with tesseract's usual slips in strengths undone, and whether any was."""
    changed = False
    for pattern, replacement in OCR_CORRECTIONS:
        fixed = pattern.sub(replacement, text)
        changed = changed or fixed != text
        text = fixed
    return re.sub(r"\s+", " ", text).strip(), changed


@lru_cache(maxsize=4096)
def parse_strength(text: str) -> Strength | None:
    """The first strength in the text ("500 mg", "0.5 mg/ml", "125 mg/5 ml", "100 mcg/dose")."""
    found = STRENGTH_PATTERN.search(normalise(text))
    return _strength(found) if found else None


def _strength(found: re.Match[str]) -> Strength:
    unit = found["unit"].lower()
    per_unit = found["per_unit"].lower() if found["per_unit"] else None
    if per_unit in {"hour", "hours"}:
        per_unit = "h"
    return Strength(
        amount=float(found["amount"]),
        unit="units" if unit.startswith("unit") else unit,
        per_amount=float(found["per_amount"]) if found["per_amount"] else None,
        per_unit=per_unit,
    )


def canonical_form(text: str) -> str | None:
    """The form a text names ("caps" -> "capsule"), or None."""
    found = FORM_PATTERN.search(text)
    return FORMS[found["form"].lower()] if found else None


def parse_quantity(text: str) -> int | None:
    """The number of units (or packs) to supply: "Qty: 30", "x 30", "#30", "30 tablets"."""
    for pattern in QUANTITY_PATTERNS:
        found = pattern.search(text)
        if found:
            return int(found["count"])
    found = COUNTED_FORM_PATTERN.search(text)
    return int(found["count"]) if found else None


def parse_line(raw: str) -> ParsedLine:
    """A recognised line split into the parts of a medication line (each None when absent)."""
    text, was_corrected = corrected(normalise(raw))
    strength_match = STRENGTH_PATTERN.search(text)
    strength = _strength(strength_match) if strength_match else None
    form_match = FORM_PATTERN.search(text)
    form = FORMS[form_match["form"].lower()] if form_match else None
    # The quantity is read after the strength, so "500 mg" is never a count.
    rest = text[strength_match.end() :] if strength_match else text
    quantity = parse_quantity(rest)
    quantity_marker = any(pattern.search(text) for pattern in QUANTITY_PATTERNS)
    lowered = text.lower().lstrip(" -*•·0123456789.)")
    is_direction = lowered.startswith(DIRECTION_WORDS)
    is_header = strength is None and (bool(HEADER_WORDS.match(text)) or is_direction)
    name_end = len(text)
    for cue in (strength_match, form_match):
        if cue is not None:
            name_end = min(name_end, cue.start())
    quantity_cut = re.search(
        r"\b(?:[qo0][td]?y|quantity|supply|dispense)\b|(?:^|\s)[x\u00d7#]\s*\d", text, re.IGNORECASE
    )
    if quantity_cut:
        name_end = min(name_end, quantity_cut.start())
    name = LEADING_MARK.sub("", text[:name_end])
    name = re.sub(r"[^a-z0-9\- ]+", " ", name.lower())
    name = re.sub(r"\s+", " ", name).strip(" -")
    return ParsedLine(
        text=raw,
        name=name if sum(ch.isalpha() for ch in name) >= 3 else None,
        strength=strength,
        form=form,
        quantity=quantity,
        is_header=is_header,
        has_medication_cue=strength is not None or (form is not None and not is_direction) or quantity_marker,
        corrected=was_corrected,
    )
