"""The scan engine: a printed prescription (PNG, JPEG or PDF) read into a draft for a pharmacist.

    draft = scan(document_bytes, catalogue)

Intake (intake.py) refuses what it will not read, by magic bytes and sizes, before decoding. Each page is
cleaned (cleanup.py: median, autocontrast, deskew), read by Debian's tesseract (recognition.py), split
into lines parsed into name, strength, form and quantity (parsing.py) and matched to the catalogue with
rapidfuzz (matching.py). A draft line's `flags` (models.Flag) say why a pharmacist must look closely.
Pure library: no broker, no store, no network; the only state is caches. Handwriting is not supported.
"""

from prescription_service.scan.engine import scan
from prescription_service.scan.intake import DocumentRefused, read_document
from prescription_service.scan.models import CatalogueEntry, DraftLine, Flag, ScanDraft
from prescription_service.scan.recognition import RecognitionFailed

__all__ = [
    "CatalogueEntry",
    "DocumentRefused",
    "DraftLine",
    "Flag",
    "RecognitionFailed",
    "ScanDraft",
    "read_document",
    "scan",
]
