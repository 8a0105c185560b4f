"""The OCR benchmark behind `make bench-ocr`: how well the scan engine reads a generated set.

    python -m benchmarks.ocr [--seed 12] [--count 30] [--quick] [--verbose]

Generates printed prescriptions with their ground truth (benchmarks/ocr_set.py), scans each with
prescription_service.scan, and prints: document CER of tesseract on the raw page and on the cleaned
page; medication lines matched right (medication, strength and quantity), matched wrong, left
unmatched (no medication named, always flagged), missed (not in the draft at all), and the number
that matters most, wrong lines NOT flagged for the pharmacist (goal 0); flags on right lines (the
price of that); seconds per page. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from benchmarks.ocr_set import CATALOGUE, Prescription, TruthLine, prescriptions
from prescription_service.scan import DraftLine, ScanDraft, read_document, scan
from prescription_service.scan.parsing import parse_strength
from prescription_service.scan.recognition import PAGE_SEGMENTATION_MODE, recognise

QUICK_COUNT = 8
DEFAULT_COUNT = 30  # the issue asks for at least 30 printed prescriptions
DEFAULT_SEED = 12
# A draft line is the truth line's reading when their texts are at least this alike.
ALIGN_MIN_SCORE = 60.0


@dataclass
class Tally:
    right: int = 0
    wrong: int = 0
    wrong_unflagged: int = 0
    unmatched: int = 0
    missed: int = 0
    spurious: int = 0
    right_flagged: int = 0
    flags: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def flatten(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def cer(read: str, truth: str) -> float:
    """Character error rate: edits to turn what was read into the truth, per character of the truth."""
    return Levenshtein.distance(flatten(read), flatten(truth)) / max(1, len(flatten(truth)))


def same_strength(read: str | None, truth: str) -> bool:
    parsed, expected = parse_strength(read or ""), parse_strength(truth)
    return parsed is not None and expected is not None and parsed.key() == expected.key()


def is_right(line: DraftLine, truth: TruthLine) -> bool:
    if truth.medication_id is None:  # not stocked: right when the draft names none and says why
        return (
            line.medication_id is None
            and "STRENGTH_NOT_STOCKED" in line.flags
            and line.quantity == truth.quantity
        )
    return (
        line.medication_id == truth.medication_id
        and same_strength(line.strength, truth.strength)
        and line.quantity == truth.quantity
    )


def grade(document: Prescription, draft: ScanDraft, tally: Tally) -> None:
    unused = list(draft.lines)
    for truth in document.lines:
        scored = [
            (fuzz.ratio(line.text.lower(), truth.text.lower()), index) for index, line in enumerate(unused)
        ]
        best = max(scored, default=(0.0, -1))
        if best[0] < ALIGN_MIN_SCORE:
            tally.missed += 1
            tally.notes.append(f"{document.name}: MISSED {truth.text!r}")
            continue
        line = unused.pop(best[1])
        tally.flags.update(line.flags)
        if is_right(line, truth):
            tally.right += 1
            tally.right_flagged += bool(line.flags)
            continue
        if line.medication_id is None and truth.medication_id is not None:
            tally.unmatched += 1
        else:
            tally.wrong += 1
        if not line.flags:
            tally.wrong_unflagged += 1
        verdict = ("WRONG" if line.medication_id else "unmatched") + ("" if line.flags else " UNFLAGGED")
        tally.notes.append(
            f"{document.name}: {verdict} read {line.text!r} as {line.medication_id} {line.strength}"
            f" x{line.quantity} {[str(flag) for flag in line.flags]};"
            f" truth {truth.medication_id} x{truth.quantity}"
        )
    for line in unused:
        if line.medication_id is not None:  # a header or direction matched as a medication
            tally.spurious += 1
            tally.wrong_unflagged += not line.flags
            tally.notes.append(
                f"{document.name}: SPURIOUS {line.text!r} as {line.medication_id} {line.flags}"
            )


def raw_text(document: Prescription) -> tuple[str, float]:
    """Tesseract on the page as it came, grey but otherwise untouched."""
    started = time.perf_counter()
    text = "\n".join(
        line.text for page in read_document(document.data) for line in recognise(page.convert("L"))
    )
    return text, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COUNT} documents, as CI runs it")
    parser.add_argument("--no-raw", action="store_true", help="skip tesseract on the raw pages (CER raw)")
    parser.add_argument(
        "--psm", type=int, default=PAGE_SEGMENTATION_MODE, help="tesseract page segmentation mode"
    )
    parser.add_argument("--verbose", action="store_true", help="print every line not read right")
    args = parser.parse_args()
    count = QUICK_COUNT if args.quick else args.count

    started = time.perf_counter()
    documents = prescriptions(args.seed, count)
    seconds = time.perf_counter() - started
    print(f"generated {len(documents)} prescriptions (seed {args.seed}, psm {args.psm}) in {seconds:.1f} s")
    kinds = Counter(document.degradations[0] for document in documents)
    print("  " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))

    tally = Tally()
    raw_cer: list[float] = []
    clean_cer: list[float] = []
    seconds_per_page: list[float] = []
    raw_seconds: list[float] = []
    by_kind: dict[str, list[float]] = {}
    for document in documents:
        draft = scan(document.data, CATALOGUE, psm=args.psm)
        clean_cer.append(cer(draft.text, document.text))
        by_kind.setdefault(document.degradations[0], []).append(clean_cer[-1])
        seconds_per_page.append(draft.seconds / draft.pages)
        if not args.no_raw:
            text, seconds = raw_text(document)
            raw_cer.append(cer(text, document.text))
            raw_seconds.append(seconds)
        grade(document, draft, tally)

    lines = sum(len(document.lines) for document in documents)
    print()
    if raw_cer:
        print(f"CER raw      {statistics.mean(raw_cer):.3f}  (median {statistics.median(raw_cer):.3f})")
    print(f"CER cleaned  {statistics.mean(clean_cer):.3f}  (median {statistics.median(clean_cer):.3f})")
    print(
        "  cleaned, by degradation: "
        + ", ".join(f"{k} {statistics.mean(v):.3f}" for k, v in sorted(by_kind.items()))
    )
    print()
    print(f"medication lines            {lines}")
    print(f"  matched right             {tally.right}")
    print(f"  matched wrong             {tally.wrong}")
    print(f"  unmatched (flagged)       {tally.unmatched}")
    print(f"  missed (not in the draft) {tally.missed}")
    print(f"  spurious (not on the page){tally.spurious:>3}")
    print(f"  WRONG AND NOT FLAGGED     {tally.wrong_unflagged}   (goal 0)")
    print(f"  right but flagged         {tally.right_flagged}")
    print("  flags raised: " + ", ".join(f"{flag} {n}" for flag, n in sorted(tally.flags.items())))
    print()
    print(
        f"seconds per page  mean {statistics.mean(seconds_per_page):.2f}, max {max(seconds_per_page):.2f}"
        + (
            f"  (tesseract alone on raw pages: mean {statistics.mean(raw_seconds):.2f})"
            if raw_seconds
            else ""
        )
    )
    if args.verbose:
        print()
        for note in tally.notes:
            print(note)


if __name__ == "__main__":
    main()
