"""Clean-up of a page before recognition: grey, median filter, autocontrast, deskew.

Measured on the OCR benchmark (`make bench-ocr`): see README, Scanning.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter, ImageOps

# Skew is searched within this many degrees; a photo held more crookedly than that is a retake.
MAX_SKEW_DEGREES: Final = 10.0
# The angle search runs on a copy about this wide: skew is a property of the lines, not the pixels.
SKEW_SEARCH_WIDTH: Final = 800
# Tesseract reads best with capitals 20-40 px high; a page narrower than this is scaled up to it.
MIN_PAGE_WIDTH: Final = 1600
UPSCALED_MEDIAN_FROM: Final = 1.25
# A dark run longer than the page's width (or height) over this is a rule or a box, not a letter.
RULE_MIN_FRACTION: Final = 8
RULE_MARGIN: Final = 3


def clean_page(page: Image.Image) -> Image.Image:
    """The page grey, denoised, stretched to full contrast and turned upright, ready for tesseract."""
    grey = page.convert("L")
    factor = 1.0
    if grey.width < MIN_PAGE_WIDTH:
        factor = MIN_PAGE_WIDTH / grey.width
        grey = grey.resize((MIN_PAGE_WIDTH, round(grey.height * factor)), Image.Resampling.LANCZOS)
    # A median removes salt-and-pepper noise and JPEG speckle without eating strokes: 3x3 on a page
    # as scanned, 5x5 on one scaled up, whose speckles grew with it (benchmark: photo CER 0.04 -> 0.02).
    grey = grey.filter(ImageFilter.MedianFilter(3 if factor < UPSCALED_MEDIAN_FROM else 5))
    grey = flatten_background(grey)
    grey = ImageOps.autocontrast(grey, cutoff=1)
    angle = skew_angle(grey)
    if abs(angle) >= 0.1:
        grey = grey.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    return remove_rules(grey)


def remove_rules(grey: Image.Image) -> Image.Image:
    """The page with its ruled lines and boxes whitened: tesseract takes a boxed block of a form for a
    picture and reads none of it (benchmark: the boxed layout lost whole medication lists on photos)."""
    pixels = np.asarray(grey, dtype=np.uint8)
    ink = pixels < _otsu_threshold(pixels)
    rules = _long_runs(ink, max(40, grey.width // RULE_MIN_FRACTION))
    rules |= _long_runs(ink.T, max(40, grey.height // RULE_MIN_FRACTION)).T
    if not rules.any():
        return grey
    # Whiten a few pixels either side too: a blurred rule's grey edge would stay as a faint box.
    grown = rules.copy()
    for _ in range(RULE_MARGIN):
        edge = grown.copy()
        edge[1:, :] |= grown[:-1, :]
        edge[:-1, :] |= grown[1:, :]
        edge[:, 1:] |= grown[:, :-1]
        edge[:, :-1] |= grown[:, 1:]
        grown = edge
    cleaned = pixels.copy()
    cleaned[grown] = 255
    return Image.fromarray(cleaned)


def _long_runs(ink: NDArray[np.bool_], length: int) -> NDArray[np.bool_]:
    """Pixels that lie in a horizontal run of at least `length` inked pixels."""
    height, width = ink.shape
    if width < length:
        return np.zeros_like(ink)
    counts = np.zeros((height, width + 1), dtype=np.int32)
    np.cumsum(ink, axis=1, out=counts[:, 1:])
    full = (counts[:, length:] - counts[:, :-length]) == length  # the run of `length` from x is all ink
    starts = np.zeros((height, full.shape[1] + 1), dtype=np.int32)
    np.cumsum(full, axis=1, out=starts[:, 1:])
    # A pixel x is covered when a full run starts anywhere in [x - length + 1, x].
    x = np.arange(width)
    last = np.minimum(x, full.shape[1] - 1) + 1
    first = np.maximum(0, x - length + 1)
    return (starts[:, last] - starts[:, first]) > 0


def flatten_background(grey: Image.Image) -> Image.Image:
    """The page divided by its own paper: a lamp's gradient or a grey cast becomes white paper.

    The paper is estimated by a max filter wider than any stroke (ink is dark, so it vanishes), on a
    copy an eighth the size, blurred and scaled back.
    """
    small = grey.resize((max(1, grey.width // 8), max(1, grey.height // 8)), Image.Resampling.BOX)
    paper = small.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.GaussianBlur(4))
    paper = paper.resize(grey.size, Image.Resampling.BILINEAR)
    ink = np.asarray(grey, dtype=np.float64)
    light = np.maximum(np.asarray(paper, dtype=np.float64), 1.0)
    return Image.fromarray((ink / light * 255).clip(0, 255).astype(np.uint8))


def skew_angle(grey: Image.Image) -> float:
    """Degrees to rotate the page (counter-clockwise) so its text lines run level.

    Projection profile: rotated by the right angle, the page's ink falls into sharp rows, so the
    variance of the row sums peaks. A coarse search, then a fine one around the best coarse angle.
    """
    factor = min(1.0, SKEW_SEARCH_WIDTH / grey.width)
    small = grey.resize((max(1, round(grey.width * factor)), max(1, round(grey.height * factor))))
    pixels = np.asarray(small, dtype=np.uint8)
    threshold = _otsu_threshold(pixels)
    ink = Image.fromarray(((pixels < threshold) * 255).astype(np.uint8))

    def sharpness(angle: float) -> float:
        turned = np.asarray(
            ink.rotate(angle, resample=Image.Resampling.NEAREST, expand=True), dtype=np.float64
        )
        rows = turned.sum(axis=1)
        return float(np.square(np.diff(rows)).sum())

    coarse = np.arange(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 0.01, 1.0)
    best = max(coarse, key=sharpness)
    fine = np.arange(best - 1.0, best + 1.01, 0.1)
    return round(float(max(fine, key=sharpness)), 2)


def _otsu_threshold(pixels: NDArray[np.uint8]) -> int:
    """The grey level that best splits ink from paper (Otsu's between-class variance)."""
    histogram = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
    total = histogram.sum()
    levels = np.arange(256, dtype=np.float64)
    weight_dark = np.cumsum(histogram)
    weight_light = total - weight_dark
    mean_dark = np.cumsum(histogram * levels) / np.maximum(weight_dark, 1)
    mean_light = ((histogram * levels).sum() - np.cumsum(histogram * levels)) / np.maximum(weight_light, 1)
    between = weight_dark * weight_light * np.square(mean_dark - mean_light)
    return int(np.argmax(between)) + 1
