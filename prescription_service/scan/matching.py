"""A parsed line matched to the catalogue, with the flags that tell a pharmacist where to look."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Final

from rapidfuzz import fuzz, process

from prescription_service.scan.models import CatalogueEntry, DraftLine, Flag
from prescription_service.scan.parsing import ParsedLine, Strength, canonical_form, parse_strength
from prescription_service.scan.recognition import TextLine, Word

# A name scoring below this (rapidfuzz, 0..100) against every catalogue name matches none.
NAME_MIN_SCORE: Final = 75.0
# A header-less line with no strength, form or quantity is a medication line only when its first
# words score this well against a catalogue name.
NAME_ONLY_MIN_SCORE: Final = 88.0
# Another medication within this many points of the best is a close runner-up.
RUNNER_UP_MARGIN: Final = 10.0
# A word read by tesseract below this confidence (0..100) makes the line LOW_CONFIDENCE.
LOW_CONFIDENCE_THRESHOLD: Final = 80.0


@dataclass(frozen=True)
class Catalogue:
    """The catalogue indexed for matching: entries by normalised name."""

    by_name: dict[str, tuple[CatalogueEntry, ...]]

    @property
    def names(self) -> list[str]:
        return list(self.by_name)


def normalised_name(name: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9\- ]+", " ", name.lower())).strip()


@lru_cache(maxsize=8)
def index_catalogue(entries: tuple[CatalogueEntry, ...]) -> Catalogue:
    """The catalogue grouped by name (cached: a worker scans against the same catalogue many times)."""
    by_name: dict[str, list[CatalogueEntry]] = {}
    for entry in entries:
        by_name.setdefault(normalised_name(entry.name), []).append(entry)
    return Catalogue({name: tuple(group) for name, group in sorted(by_name.items())})


@lru_cache(maxsize=1)
def look_alike_names() -> frozenset[str]:
    """Every name that is one of a look-alike/sound-alike pair in look_alike.csv."""
    text = resources.files("prescription_service.scan").joinpath("look_alike.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return frozenset(normalised_name(name) for row in rows for name in (row["name_a"], row["name_b"]))


def name_score(query: str, name: str, **_: object) -> float:
    """How well a name as read fits a catalogue name: whole-string ratio, or the name within the words
    read ("amlodipine besilate" fits "amlodipine"), a little below an exact fit."""
    return max(fuzz.ratio(query, name), 0.95 * fuzz.token_set_ratio(query, name))


def is_medication_line(parsed: ParsedLine, catalogue: Catalogue) -> bool:
    """Whether a recognised line is one to put in the draft: it has a medication cue, or names one."""
    if parsed.is_header:
        return False
    if parsed.has_medication_cue:
        return True
    if parsed.name is None or not catalogue.by_name:
        return False
    first_words = " ".join(parsed.name.split()[:2])
    best = process.extractOne(first_words, catalogue.names, scorer=name_score)
    return best is not None and best[1] >= NAME_ONLY_MIN_SCORE


def match_line(parsed: ParsedLine, line: TextLine, catalogue: Catalogue) -> DraftLine:
    """The draft line for a medication line: the catalogue entry it names (or none), and its flags."""
    flags: list[Flag] = []
    ocr_confidence = min((word.confidence for word in _relevant_words(line)), default=0.0)
    if ocr_confidence < LOW_CONFIDENCE_THRESHOLD or parsed.corrected:
        flags.append(Flag.LOW_CONFIDENCE)
    if parsed.quantity is None:
        flags.append(Flag.QUANTITY_MISSING)
    strength_text = str(parsed.strength) if parsed.strength else None
    if parsed.name is None:
        return _draft(parsed, [*flags, Flag.UNPARSED], None, None, strength_text, 0.0, ocr_confidence)
    ranked = process.extract(parsed.name, catalogue.names, scorer=name_score, limit=3)
    if not ranked or ranked[0][1] < NAME_MIN_SCORE:
        return _draft(parsed, [*flags, Flag.NO_MATCH], None, None, strength_text, 0.0, ocr_confidence)
    best_name, best_score = ranked[0][0], ranked[0][1]
    close = [name for name, score, _ in ranked[1:] if score >= best_score - RUNNER_UP_MARGIN]
    if close and parsed.strength is not None:
        # Of two close names, the one stocking the strength read is the likelier; both stay flagged.
        stocking = [
            name for name in [best_name, *close] if _with_strength(catalogue.by_name[name], parsed.strength)
        ]
        if stocking and best_name not in stocking:
            best_name = stocking[0]
    if close:
        flags.append(Flag.CLOSE_RUNNER_UP)
    if look_alike_names() & {best_name, *close}:
        flags.append(Flag.LOOK_ALIKE)
    entries = catalogue.by_name[best_name]
    name = entries[0].name
    if parsed.strength is None:
        flags.append(Flag.STRENGTH_MISSING)
        candidates = entries
    else:
        candidates = _with_strength(entries, parsed.strength)
        if not candidates:
            flags.append(Flag.STRENGTH_NOT_STOCKED)
            return _draft(parsed, flags, None, name, strength_text, best_score, ocr_confidence)
    if parsed.form is not None:
        same_form = tuple(entry for entry in candidates if canonical_form(entry.form) == parsed.form)
        if not same_form:
            flags.append(Flag.FORM_MISMATCH)
        candidates = same_form or candidates
    if len(candidates) > 1:
        # Several strengths or forms fit what was read: the pharmacist picks, the draft names none.
        if Flag.CLOSE_RUNNER_UP not in flags:
            flags.append(Flag.CLOSE_RUNNER_UP)
        return _draft(parsed, flags, None, name, strength_text, best_score, ocr_confidence)
    entry = candidates[0]
    return _draft(parsed, flags, entry, name, entry.strength, best_score, ocr_confidence)


def _with_strength(entries: Sequence[CatalogueEntry], strength: Strength) -> tuple[CatalogueEntry, ...]:
    wanted = strength.key()
    return tuple(
        entry for entry in entries if (stocked := parse_strength(entry.strength)) and stocked.key() == wanted
    )


def _relevant_words(line: TextLine) -> list[Word]:
    # Punctuation and stray marks carry no meaning; every word with a letter or digit does.
    return [word for word in line.words if any(ch.isalnum() for ch in word.text)]


def _draft(
    parsed: ParsedLine,
    flags: list[Flag],
    entry: CatalogueEntry | None,
    name: str | None,
    strength: str | None,
    score: float,
    ocr_confidence: float,
) -> DraftLine:
    # A match is as sure as its name's fit and its least certain word; a line with no entry is half that.
    confidence = (score / 100) * (ocr_confidence / 100) * (1.0 if entry else 0.5)
    return DraftLine(
        text=parsed.text,
        medication_id=entry.medication_id if entry else None,
        name=name,
        strength=strength,
        form=entry.form if entry else parsed.form,
        quantity=parsed.quantity,
        confidence=round(max(0.0, min(1.0, confidence)), 3),
        flags=flags,
    )
