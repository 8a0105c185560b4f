"""The scan: a document's bytes in, a draft of its medication lines out. Synchronous and CPU-bound:
the caller runs it in a worker, never on an event loop."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prescription_service.scan.cleanup import clean_page
from prescription_service.scan.intake import read_document
from prescription_service.scan.matching import index_catalogue, is_medication_line, match_line
from prescription_service.scan.models import CatalogueEntry, DraftLine, ScanDraft
from prescription_service.scan.parsing import parse_line
from prescription_service.scan.recognition import PAGE_SEGMENTATION_MODE, recognise


def scan(data: bytes, catalogue: Sequence[CatalogueEntry], *, psm: int = PAGE_SEGMENTATION_MODE) -> ScanDraft:
    """Read a PNG, JPEG or PDF prescription into a draft matched to the catalogue.

    `psm` is tesseract's page segmentation mode (the benchmark compares them). Raises DocumentRefused
    (intake: 413, 415, 422) and RecognitionFailed (tesseract failed or timed out).
    """
    started = time.perf_counter()
    pages = read_document(data)
    indexed = index_catalogue(tuple(catalogue))
    texts: list[str] = []
    lines: list[DraftLine] = []
    for page in pages:
        for line in recognise(clean_page(page), psm=psm):
            texts.append(line.text)
            parsed = parse_line(line.text)
            if is_medication_line(parsed, indexed):
                lines.append(match_line(parsed, line, indexed))
    return ScanDraft(
        text="\n".join(texts), lines=lines, pages=len(pages), seconds=round(time.perf_counter() - started, 3)
    )
