"""A medication's strength, from a FHIR Ratio or from the text a prescriber wrote. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# Units as written (lower-cased) to the spelling the catalogue uses.
_UNITS = {
    "mg": "mg",
    "g": "g",
    "mcg": "mcg",
    "µg": "mcg",
    "ug": "mcg",
    "microgram": "mcg",
    "micrograms": "mcg",
    "ml": "mL",
    "l": "L",
    "iu": "IU",
    "unit": "units",
    "units": "units",
    "mmol": "mmol",
    "%": "%",
}
# Per what a strength is given, after a slash: "250 mg/5 mL", "0.1 mg/dose".
_PER_UNITS = {"ml": "mL", "l": "L", "g": "g", "dose": "dose", "actuation": "actuation", "h": "h"}
# A Ratio's denominator of one of these is one unit of the form: "500 mg" per tablet is "500 mg".
_COUNT_UNITS = {"", "1", "{tbl}", "{tablet}", "{capsule}", "{cap}", "tab", "tablet", "cap", "capsule", "each"}

_NUMBER = r"\d+(?:[.,]\d+)?"
_STRENGTH = re.compile(
    rf"(?<![\w.,])(?P<value>{_NUMBER})\s*(?P<unit>micrograms?|mcg|µg|ug|mmol|mg|ml|iu|units?|g|l|%)(?!\w)"
    rf"(?:\s*/\s*(?P<per_value>{_NUMBER})?\s*(?P<per_unit>ml|l|g|dose|actuation|h)(?!\w))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ReadMedication:
    """A medication's text split into what it names: "Amoxicillin 500 mg capsule"."""

    name: str
    strength: str | None
    form: str | None


def number(value: Decimal) -> str:
    """A decimal as a person writes it: 500, 2.5, 0.125 (no exponent, no trailing zeros)."""
    return format(value.normalize(), "f")


def _written_number(text: str) -> str:
    return number(Decimal(text.replace(",", ".")))


def read_medication_text(text: str) -> ReadMedication:
    """Name, strength and form from a medication's text; strengths of a combination are joined by " / "."""
    found = list(_STRENGTH.finditer(text))
    if not found:
        return ReadMedication(name=" ".join(text.split()), strength=None, form=None)
    strengths = []
    for match in found:
        strength = f"{_written_number(match['value'])} {_UNITS[match['unit'].lower()]}"
        if match["per_unit"]:
            per_value = _written_number(match["per_value"]) if match["per_value"] else None
            per_unit = _PER_UNITS[match["per_unit"].lower()]
            strength += f"/{per_value} {per_unit}" if per_value and per_value != "1" else f"/{per_unit}"
        strengths.append(strength)
    name = " ".join(text[: found[0].start()].split()).rstrip(" ,/-")
    form = " ".join(text[found[-1].end() :].split()).strip(" ,/-").lower()
    return ReadMedication(
        name=name or " ".join(text.split()), strength=" / ".join(strengths), form=form or None
    )


def ratio_strength(
    numerator: tuple[Decimal, str] | None, denominator: tuple[Decimal, str] | None
) -> str | None:
    """A Ratio's strength: "500 mg" (per tablet), "250 mg/5 mL", "1 mg/mL"; None without a numerator."""
    if numerator is None:
        return None
    amount, unit = numerator
    strength = f"{number(amount)} {_UNITS.get(unit.lower(), unit)}".strip()
    if denominator is None:
        return strength
    per_amount, per_unit = denominator
    if per_amount == 1 and per_unit.lower() in _COUNT_UNITS:
        return strength
    per_unit = _PER_UNITS.get(per_unit.lower(), per_unit)
    return f"{strength}/{per_unit}" if per_amount == 1 else f"{strength}/{number(per_amount)} {per_unit}"
