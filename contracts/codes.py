"""Medication codes (RxNorm, ATC, PZN, ...) and controlled schedules, as every service names them.

The one rule beside the models, `code_problem`, is the validity of a code's value in its system: part
of the message's schema, as a validator would be, and here because contracts are the only code two
services share (the gateway checks a catalogue entry's codes, prescription_service an imported one's).
"""

from __future__ import annotations

import re
from typing import Literal

from contracts.base import Frozen

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
PZN = "http://fhir.de/CodeSystem/ifa/pzn"

# A short name for each system, for a line named only by its code.
SYSTEM_LABELS = {RXNORM: "RxNorm", ATC: "ATC", PZN: "PZN"}

# Systems that classify rather than identify: an ATC code names a substance, which the catalogue holds
# in several strengths and forms, so several entries carry it. A code of any other system names one.
CLASSIFYING_SYSTEMS = frozenset({ATC})

# A controlled substance's schedule (US CSA): II has no refills, III and IV at most 5 within 6 months.
# None (no schedule) is the medication's default.
Schedule = Literal["II", "III", "IV", "V"]


class Code(Frozen):
    """A medication code: the code system's URI and the code in it (RxNorm, ATC, PZN, ...)."""

    system: str
    code: str


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
