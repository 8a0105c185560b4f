"""Medication code systems we check ourselves (fhir.resources does not), and matching by code. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

# The code model and its checks are the platform's (contracts/codes.py): the catalogue checks them too.
from contracts.codes import (
    ATC,
    PZN,
    RXNORM,
    SYSTEM_LABELS,
    Code,
    code_problem,
    is_checked_system,
    pzn_check_digit,
)
from prescription_service.fhir.model import ImportedLine

__all__ = [
    "ATC",
    "PZN",
    "RXNORM",
    "SYSTEM_LABELS",
    "Code",
    "CodedMedication",
    "code_problem",
    "is_checked_system",
    "match_coded",
    "pzn_check_digit",
]


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
