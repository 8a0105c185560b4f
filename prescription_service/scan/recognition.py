"""Tesseract, through pytesseract: a page's text as lines of words, each with its confidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pytesseract
from PIL import Image

# Chosen on the OCR benchmark (seeds 12 and 7, 30 documents each): 6 (one uniform block) missed no
# medication line on either; 4 missed 4 lines of noisy photos on seed 7, dropping a boxed block as a
# picture; 11 (sparse text) split "Qty: 21" from its line and matched 8-9 lines wrong.
PAGE_SEGMENTATION_MODE: Final = 6
LANGUAGE: Final = "eng"
# A page tesseract has not read in this long is given up (pytesseract kills the process).
PAGE_TIMEOUT_SECONDS: Final = 60


class RecognitionFailed(Exception):
    """Tesseract could not read a page (missing, timed out, or failed)."""


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float  # tesseract's, 0..100


@dataclass(frozen=True)
class TextLine:
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


def recognise(page: Image.Image, *, psm: int = PAGE_SEGMENTATION_MODE) -> list[TextLine]:
    """The page's lines in reading order, each with tesseract's words and confidences."""
    try:
        data = pytesseract.image_to_data(
            page,
            lang=LANGUAGE,
            config=f"--psm {psm}",
            output_type=pytesseract.Output.DICT,
            timeout=PAGE_TIMEOUT_SECONDS,
        )
    except (pytesseract.TesseractError, pytesseract.TesseractNotFoundError, RuntimeError) as error:
        # pytesseract raises a bare RuntimeError on its timeout.
        raise RecognitionFailed(str(error)) from error
    lines: dict[tuple[int, int, int, int], list[Word]] = {}
    for index, text in enumerate(data["text"]):
        text = text.strip()
        confidence = float(data["conf"][index])
        if not text or confidence < 0:
            continue
        key = (
            data["page_num"][index],
            data["block_num"][index],
            data["par_num"][index],
            data["line_num"][index],
        )
        lines.setdefault(key, []).append(Word(text, confidence))
    # Tesseract numbers blocks, paragraphs and lines in its reading order.
    return [TextLine(tuple(words)) for _, words in sorted(lines.items())]
