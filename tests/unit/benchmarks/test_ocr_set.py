"""The OCR benchmark's set at its default size is what it claims: varied, decodable, with ground truth."""

from __future__ import annotations

from collections import Counter

from benchmarks.ocr import DEFAULT_COUNT, DEFAULT_SEED, QUICK_COUNT
from benchmarks.ocr_set import CATALOGUE, DEGRADATIONS, LAYOUTS, prescriptions
from prescription_service.scan import read_document


def test_the_default_set_has_30_printed_prescriptions_of_every_kind_with_one_pdf_at_least() -> None:
    documents = prescriptions(DEFAULT_SEED, DEFAULT_COUNT)

    assert len(documents) >= 30
    assert len({d.name for d in documents}) == len(documents)
    kinds = Counter(d.degradations[0] for d in documents)
    assert set(kinds) == set(DEGRADATIONS), kinds
    assert {"clean", "rotated", "noisy", "jpeg", "pdf"} <= set(kinds)
    assert Counter(d.kind for d in documents)["pdf"] >= 1
    assert len({d.font for d in documents}) >= 4
    assert {d.layout for d in documents} == set(LAYOUTS)


def test_the_quick_sets_documents_decode_and_their_ground_truth_names_the_benchmark_catalogue() -> None:
    stocked = {entry.medication_id for entry in CATALOGUE}
    for document in prescriptions(DEFAULT_SEED, QUICK_COUNT):
        pages = read_document(document.data)
        assert len(pages) == 1, document.name
        assert document.lines, document.name
        for line in document.lines:
            assert line.text in document.text, (document.name, line.text)
            assert line.medication_id is None or line.medication_id in stocked, (document.name, line)
            assert line.quantity > 0
