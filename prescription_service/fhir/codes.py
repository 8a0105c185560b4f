"""Medication code systems we check ourselves (fhir.resources does not), and matching by code. No I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from prescription_service.fhir.model import Code, ImportedLine

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
PZN = "http://fhir.de/CodeSystem/ifa/pzn"

# A short name for each system, for a line named only by its code.
SYSTEM_LABELS = {RXNORM: "RxNorm", ATC: "ATC", PZN: "PZN"}

# An RxCUI is a positive integer of at most 8 digits; none starts with a 0.
_RXNORM_CODE = re.compile(r"[1-9][0-9]{0,7}")
# ATC levels: anatomical group (one of 14 letters), therapeutic (2 digits), pharmacological (letter),
# chemical (letter), substance (2 digits): A, A10, A10B, A10BA, A10BA02.
_ATC_CODE = re.compile(r"[ABCDGHJLMNPRSV](?:[0-9]{2}(?:[A-Z](?:[A-Z](?:[0-9]{2})?)?)?)?")
_PZN_CODE = re.compile(r"[0-9]{8}")


def pzn_check_digit(first_seven: str) -> int | None:
    """The PZN's check digit: the digits weighted 1 to 7, summed, modulo 11; None when that is 10.

    A PZN whose sum leaves 10 is never issued, so no eighth digit makes it valid.
    """
    remainder = sum(weight * int(digit) for weight, digit in enumerate(first_seven, start=1)) % 11
    return None if remainder == 10 else remainder


def code_problem(code: Code) -> str | None:
    """Why this code is not a valid code of its system; None when it is, or when we do not know the system."""
    value = code.code
    if code.system == RXNORM:
        if not _RXNORM_CODE.fullmatch(value):
            return f"{value!r} is no RxNorm code (an RxCUI: 1 to 8 digits, no leading 0)"
    elif code.system == ATC:
        if not _ATC_CODE.fullmatch(value):
            return f"{value!r} is no ATC code (like C09AA05, or a shorter level of it: C, C09, C09A, C09AA)"
    elif code.system == PZN:
        if not _PZN_CODE.fullmatch(value):
            return f"{value!r} is no PZN (8 digits)"
        if pzn_check_digit(value[:7]) != int(value[7]):
            return f"{value!r} is no PZN: its check digit is wrong"
    return None


def is_checked_system(system: str) -> bool:
    """Whether we check codes of this system, and so trust them to match a medication exactly."""
    return system in SYSTEM_LABELS


class _SystemCode(Protocol):
    @property
    def system(self) -> str: ...

    @property
    def code(self) -> str: ...


class CodedMedication(Protocol):
    """A catalogue entry as the code matcher sees it: its id and the codes it carries."""

    @property
    def id(self) -> str: ...

    @property
    def codes(self) -> Sequence[_SystemCode]: ...


def match_coded(line: ImportedLine, catalogue: Iterable[CodedMedication]) -> str | None:
    """The one catalogue medication the line's checked codes name exactly; None to match by name and strength.

    Each code of the line names the catalogue entries that carry it. Codes naming none are ignored;
    the rest must agree on exactly one entry. An ATC or ingredient code carried by several strengths
    of a substance names several, so it alone matches nothing; a PZN beside it settles it; two codes
    naming different medications are a conflict, and nothing matches.
    """
    wanted = {(code.system, code.code) for code in line.codes}
    if not wanted:
        return None
    named: dict[tuple[str, str], set[str]] = {}
    for medication in catalogue:
        for code in medication.codes:
            key = (code.system, code.code)
            if key in wanted:
                named.setdefault(key, set()).add(medication.id)
    if not named:
        return None
    agreed = set.intersection(*named.values())
    return next(iter(agreed)) if len(agreed) == 1 else None
