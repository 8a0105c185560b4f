"""Reading a recognised line in prescription_service/scan/parsing.py: name, strength, form, quantity."""

from __future__ import annotations

import pytest

from prescription_service.scan.parsing import parse_line, parse_strength


@pytest.mark.parametrize(
    ("text", "name", "strength", "form", "quantity"),
    [
        ("1. Amoxicillin 500 mg capsules  Qty: 21", "amoxicillin", "500 mg", "capsule", 21),
        ("Metformin 850mg tablet x 56", "metformin", "850 mg", "tablet", 56),
        ("- Omeprazole 20 mg capsule #28", "omeprazole", "20 mg", "capsule", 28),
        ("Prednisolone 5 mg tablets  30 tablets", "prednisolone", "5 mg", "tablet", 30),
        ("Salbutamol 100 micrograms/dose inhaler  Quantity: 1", "salbutamol", "100 mcg/dose", "inhaler", 1),
        ("Levothyroxine 50 µg tablets  Supply: 28", "levothyroxine", "50 mcg", "tablet", 28),
        ("Lactulose 3,35 g/5 mL oral solution Qty: 2", "lactulose", "3.35 g/5 ml", "oral solution", 2),
        ("Risperidone 0.5 mg/ml oral solution x 1", "risperidone", "0.5 mg/ml", "oral solution", 1),
        ("Amlodipine besilate 10 mg tablets", "amlodipine besilate", "10 mg", "tablet", None),
    ],
)
def test_medication_line_forms_are_read_into_their_parts(
    text: str, name: str, strength: str, form: str, quantity: int | None
) -> None:
    parsed = parse_line(text)
    assert (parsed.name, str(parsed.strength), parsed.form, parsed.quantity) == (
        name,
        strength,
        form,
        quantity,
    )
    assert parsed.has_medication_cue
    assert not parsed.is_header


def test_a_direction_is_no_quantity() -> None:
    assert parse_line("Amlodipine 10 mg tablet, take 1 tablet daily").quantity is None


def test_the_strength_is_never_read_as_the_quantity() -> None:
    assert parse_line("Warfarin 3 mg tablets").quantity is None


@pytest.mark.parametrize(
    "text",
    [
        "Dr Amelia Hart MBChB MRCGP",
        "Date: 02/03/2026",
        "Patient: John Carter  DOB: 14/02/1961",
        "Rx",
        "Take one tablet daily",
    ],
)
def test_header_and_direction_lines_are_not_medication_lines(text: str) -> None:
    parsed = parse_line(text)
    assert parsed.is_header or not parsed.has_medication_cue


@pytest.mark.parametrize(
    ("text", "strength"),
    [
        ("Ramipril Smg capsules", "5 mg"),
        ("Amlodipine 1O mg", "10 mg"),
        ("Hydralazine 50 rng", "50 mg"),
        ("Levothyroxine 25 yg", "25 mcg"),
        ("Amlodipine 10.mg", "10 mg"),
    ],
)
def test_ocr_slips_in_a_strength_are_undone_and_marked(text: str, strength: str) -> None:
    parsed = parse_line(text)
    assert str(parsed.strength) == strength
    assert parsed.corrected


def test_a_clean_strength_is_not_marked_corrected() -> None:
    assert not parse_line("Vitamin B12 10 mcg tablets").corrected


def test_equal_strengths_written_differently_compare_equal() -> None:
    def key(text: str) -> object:
        strength = parse_strength(text)
        assert strength is not None
        return strength.key()

    assert key("0.5 mg/ml") == key("500 mcg/ml")
    assert key("1 g") == key("1000mg")
    assert key("100 µg/dose") == key("100 micrograms/dose")
    assert key("5 mg") != key("5 mcg")
