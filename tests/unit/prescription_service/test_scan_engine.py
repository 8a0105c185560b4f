"""The whole scan (prescription_service/scan/engine.py) on images made here, read by the real tesseract."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image, ImageDraw, ImageFont

from benchmarks.ocr_set import CATALOGUE, font_path
from prescription_service.scan import Flag, ScanDraft, scan

LINES = (
    "Dr Amelia Hart MBChB MRCGP",
    "Patient: John Carter   DOB: 14/02/1961",
    "Date: 03/11/2026",
    "Rx",
    "1. Amoxicillin 500 mg capsules  Qty: 21",
    "2. Hydroxyzine 25 mg tablets  x 28",
    "3. Sertraline 75 mg tablets  #30",
    "Signature",
)


@pytest.fixture(scope="module", autouse=True)
def tesseract_is_installed() -> None:
    if shutil.which("tesseract") is None:
        pytest.fail("tesseract is not installed: run scripts/system-packages.sh (scripts/test.sh does)")


def printed(angle: float = 0.0) -> Image.Image:
    page = Image.new("L", (1700, 1400), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(font_path("dejavu/DejaVuSans.ttf")), 42)
    for row, text in enumerate(LINES):
        draw.text((110, 120 + row * 130), text, font=font, fill=0)
    return (
        page.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255) if angle else page
    )


def scanned(image: Image.Image, kind: str) -> ScanDraft:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, kind, **({"resolution": 300} if kind == "PDF" else {}))
    return scan(buffer.getvalue(), CATALOGUE)


def assert_read_right(draft: ScanDraft) -> None:
    assert [(line.medication_id, line.quantity) for line in draft.lines] == [
        ("med-amox-500", 21),
        ("med-hydrox-25", 28),
        (None, 30),
    ]
    amoxicillin, hydroxyzine, sertraline = draft.lines
    assert amoxicillin.flags == []
    assert Flag.LOOK_ALIKE in hydroxyzine.flags
    assert (sertraline.name, sertraline.strength) == ("Sertraline", "75 mg")
    assert Flag.STRENGTH_NOT_STOCKED in sertraline.flags
    assert "Patient: John Carter" in draft.text


def test_a_printed_prescription_is_read_into_the_right_draft() -> None:
    draft = scanned(printed(), "PNG")
    assert_read_right(draft)
    assert draft.pages == 1
    assert ScanDraft.model_validate_json(draft.model_dump_json()) == draft


def test_a_page_photographed_five_degrees_askew_is_read_the_same() -> None:
    assert_read_right(scanned(printed(angle=5.0), "JPEG"))


def test_a_pdf_of_the_page_is_read_the_same() -> None:
    draft = scanned(printed(angle=-3.0), "PDF")
    assert_read_right(draft)
    assert draft.pages == 1
