"""Matching a parsed line to the catalogue in prescription_service/scan/matching.py, flag by flag.

Lines are given as tesseract would (words and confidences), so each flag is tested on its own.
"""

from __future__ import annotations

from prescription_service.scan import CatalogueEntry, DraftLine, Flag
from prescription_service.scan.matching import (
    index_catalogue,
    is_medication_line,
    look_alike_names,
    match_line,
)
from prescription_service.scan.parsing import parse_line
from prescription_service.scan.recognition import TextLine, Word


def entry(medication_id: str, name: str, strength: str, form: str = "tablet") -> CatalogueEntry:
    return CatalogueEntry(
        medication_id=medication_id, name=name, strength=strength, form=form, prescription_only=True
    )


CATALOGUE = index_catalogue(
    (
        entry("omep-20", "Omeprazole", "20 mg", "capsule"),
        entry("omep-40", "Omeprazole", "40 mg", "capsule"),
        entry("hydroxyzine-25", "Hydroxyzine", "25 mg"),
        entry("hydralazine-25", "Hydralazine", "25 mg"),
        entry("warfarin-3", "Warfarin", "3 mg"),
        entry("warfarin-5", "Warfarin", "5 mg"),
        entry("levo-50", "Levothyroxine", "50 mcg"),
        entry("risperidone-sol", "Risperidone", "1 mg/ml", "oral solution"),
        entry("cefalexin-250", "Cefalexin", "250 mg", "capsule"),
        entry("cefadroxil-250", "Cefadroxil", "250 mg", "capsule"),
    )
)


def read(text: str, confidences: dict[str, float] | None = None) -> DraftLine:
    """The draft line for a line read with confidence 96 for every word but those named."""
    words = tuple(Word(word, (confidences or {}).get(word, 96.0)) for word in text.split())
    parsed = parse_line(text)
    assert is_medication_line(parsed, CATALOGUE)
    return match_line(parsed, TextLine(words), CATALOGUE)


def test_a_clean_line_of_a_stocked_medication_is_matched_with_no_flags() -> None:
    line = read("Omeprazole 20 mg capsules Qty: 28")
    assert (line.medication_id, line.name, line.strength, line.quantity) == (
        "omep-20",
        "Omeprazole",
        "20 mg",
        28,
    )
    assert line.flags == []
    assert line.confidence > 0.9


def test_the_strength_picks_the_entry_among_several() -> None:
    assert read("Omeprazole 40mg capsule x 14").medication_id == "omep-40"


def test_a_look_alike_line_is_flagged() -> None:
    line = read("Hydroxyzine 25 mg tablets #30")
    assert line.medication_id == "hydroxyzine-25"
    assert Flag.LOOK_ALIKE in line.flags
    assert {"hydralazine", "hydroxyzine", "prednisolone", "prednisone"} <= look_alike_names()


def test_a_strength_not_stocked_is_flagged_and_names_no_medication() -> None:
    line = read("Omeprazole 10 mg capsules Qty: 28")
    assert line.medication_id is None
    assert line.name == "Omeprazole"
    assert line.strength == "10 mg"
    assert Flag.STRENGTH_NOT_STOCKED in line.flags


def test_a_strength_read_at_low_confidence_is_flagged() -> None:
    # The probe: a "5 mg" read at confidence 33 was really "3 mg".
    line = read("Warfarin 5 mg tablets Qty: 28", {"5": 33.0})
    assert line.medication_id == "warfarin-5"
    assert Flag.LOW_CONFIDENCE in line.flags
    assert line.confidence < 0.4


def test_a_strength_read_through_an_ocr_slip_is_flagged_low_confidence() -> None:
    line = read("Warfarin Smg tablets Qty: 28")
    assert line.medication_id == "warfarin-5"
    assert Flag.LOW_CONFIDENCE in line.flags


def test_a_close_runner_up_is_flagged() -> None:
    line = read("Cefaxil 250 mg capsules x 21")
    assert Flag.CLOSE_RUNNER_UP in line.flags


def test_a_name_near_no_medication_is_flagged_no_match() -> None:
    line = read("Zopiclone 7.5 mg tablets x 28")
    assert line.medication_id is None
    assert Flag.NO_MATCH in line.flags


def test_a_medication_line_without_a_name_is_flagged_unparsed() -> None:
    line = read("500 mg capsules Qty: 21")
    assert line.medication_id is None
    assert Flag.UNPARSED in line.flags


def test_a_line_without_a_strength_names_no_medication_of_several_strengths() -> None:
    line = read("Warfarin tablets Qty: 28")
    assert line.medication_id is None
    assert Flag.STRENGTH_MISSING in line.flags


def test_a_form_the_entry_is_not_is_flagged() -> None:
    line = read("Levothyroxine 50 micrograms oral solution x 1")
    assert line.medication_id == "levo-50"
    assert Flag.FORM_MISMATCH in line.flags


def test_mcg_written_as_micrograms_matches_the_catalogue_strength() -> None:
    assert read("Levothyroxine 50 µg tablets Supply: 28").medication_id == "levo-50"


def test_a_header_line_is_not_a_medication_line() -> None:
    assert not is_medication_line(parse_line("Patient: John Carter"), CATALOGUE)
    assert not is_medication_line(parse_line("Elm Road Medical Centre"), CATALOGUE)
