"""Document intake in prescription_service/scan/intake.py: what is let in, decided before decoding."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import png_claiming
from PIL import Image

from prescription_service.scan import DocumentRefused, read_document
from prescription_service.scan.intake import MAX_BYTES, MAX_DOCUMENT_PIXELS, MAX_PAGES


def encoded(image: Image.Image, kind: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def refusal(data: bytes) -> DocumentRefused:
    with pytest.raises(DocumentRefused) as refused:
        read_document(data)
    return refused.value


def test_a_document_over_10_mib_is_refused_413() -> None:
    assert refusal(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_BYTES).status == 413


def test_a_png_header_claiming_100000_by_100000_pixels_is_refused_413_before_decoding() -> None:
    data = png_claiming(100_000, 100_000)
    assert len(data) < 2000
    assert refusal(data).status == 413


def test_an_image_past_the_pixel_limit_but_under_pillows_own_is_refused_413() -> None:
    refused = refusal(png_claiming(7000, 7000))
    assert refused.status == 413
    assert "7000x7000" in refused.detail


def test_a_text_file_named_png_is_refused_415(tmp_path: Path) -> None:
    document = tmp_path / "prescription.png"
    document.write_text("Amoxicillin 500 mg capsules, 21\n")
    assert refusal(document.read_bytes()).status == 415


@pytest.mark.parametrize("data", [b"GIF89a" + b"\0" * 64, b"II*\0" + b"\0" * 64, b"<html></html>"])
def test_other_formats_are_refused_415_by_their_bytes(data: bytes) -> None:
    assert refusal(data).status == 415


def test_an_empty_document_is_refused_422() -> None:
    assert refusal(b"").status == 422


def test_a_truncated_png_is_refused_422() -> None:
    data = encoded(Image.effect_noise((400, 400), 64), "PNG")
    assert refusal(data[: len(data) // 2]).status == 422


def test_a_truncated_jpeg_is_refused_422() -> None:
    data = encoded(Image.effect_noise((400, 400), 64).convert("RGB"), "JPEG")
    assert refusal(data[: len(data) // 3]).status == 422


def test_a_pdf_with_more_pages_than_allowed_is_refused_422() -> None:
    pages = [Image.new("RGB", (100, 100), "white") for _ in range(MAX_PAGES + 1)]
    data = encoded(pages[0], "PDF", save_all=True, append_images=pages[1:])
    refused = refusal(data)
    assert refused.status == 422
    assert f"{MAX_PAGES + 1} pages" in refused.detail


def test_a_pdf_whose_pages_together_are_too_large_to_decode_is_refused_413() -> None:
    # Five pages of 870 x 870 points: each renders to 13 million pixels, under the page limit;
    # together 66 million, over the document's.
    pages = [Image.new("L", (870, 870), 255) for _ in range(MAX_PAGES)]
    data = encoded(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=72)
    refused = refusal(data)
    assert refused.status == 413
    assert f"at most {MAX_DOCUMENT_PIXELS}" in refused.detail


def test_a_corrupt_pdf_is_refused_422() -> None:
    assert refusal(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage").status == 422


def test_a_pdf_page_is_rendered_at_300_dpi() -> None:
    data = encoded(Image.new("RGB", (200, 100), "white"), "PDF", resolution=100)  # 2 x 1 inch
    (page,) = read_document(data)
    assert page.size == (600, 300)


def test_a_png_and_a_jpeg_are_read_as_one_page_each() -> None:
    image = Image.new("RGB", (320, 200), "white")
    assert [page.size for page in read_document(encoded(image, "PNG"))] == [(320, 200)]
    assert [page.size for page in read_document(encoded(image, "JPEG"))] == [(320, 200)]


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise when shown
    data = encoded(Image.new("RGB", (320, 200), "white"), "JPEG", exif=exif.tobytes())
    (page,) = read_document(data)
    assert page.size == (200, 320)
