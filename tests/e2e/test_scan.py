"""A prescription scanned through the gateway: the draft, the refusals, and the original shown only to its
patient and to pharmacists."""

from __future__ import annotations

import io
import secrets

import pytest
from conftest import Api
from PIL import Image, ImageDraw, ImageFont

from benchmarks.ocr_set import font_path

pytestmark = pytest.mark.e2e


def printed_png(medication: str) -> bytes:
    page = Image.new("L", (1600, 700), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(font_path("dejavu/DejaVuSans.ttf")), 42)
    for row, text in enumerate(("Dr Amelia Hart MBChB", "Rx", f"1. {medication} 40 mg tablets  Qty: 14")):
        draw.text((100, 100 + row * 130), text, font=font, fill=0)
    buffer = io.BytesIO()
    page.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_scanned_prescription_answers_a_draft_matched_to_the_catalogue(
    api: Api, admin: dict[str, str]
) -> None:
    # A name of this test's own, so the catalogue's other entries cannot be the match.
    name = "Zorvastatin" + secrets.choice("abcdefghij") * 3
    created = api.http.post(
        "/medications",
        headers=admin,
        json={
            "name": name,
            "strength": "40 mg",
            "form": "tablet",
            "price": "3.10",
            "prescription_only": True,
        },
    )
    assert created.status_code == 201, created.text
    _, patient = api.new_patient()
    content = printed_png(name)

    answer = api.http.post(
        "/prescriptions/scan", headers=patient, files={"document": ("photo.png", content, "image/png")}
    )

    assert answer.status_code == 200, answer.text
    draft = answer.json()
    assert [(line["medication_id"], line["strength"], line["quantity"]) for line in draft["lines"]] == [
        (created.json()["id"], "40 mg", 14)
    ]
    assert draft["content_type"] == "image/png"
    shown = api.http.get(f"/documents/{draft['document_id']}", headers=patient)
    assert shown.status_code == 200
    assert shown.content == content
    assert shown.headers["content-type"] == "image/png"
    assert "sandbox" in shown.headers["content-security-policy"]
    _, stranger = api.new_patient()
    assert api.http.get(f"/documents/{draft['document_id']}", headers=stranger).status_code == 404
    assert api.http.get(f"/documents/{draft['document_id']}", headers=admin).content == content


def test_a_document_is_refused_by_its_bytes_and_its_size(api: Api) -> None:
    _, patient = api.new_patient()

    text_named_png = api.http.post(
        "/prescriptions/scan", headers=patient, files={"document": ("scan.png", b"just text", "image/png")}
    )
    too_large = api.http.post(
        "/prescriptions/scan",
        headers=patient,
        files={"document": ("big.png", b"\x89PNG\r\n\x1a\n" + bytes(10 * 1024 * 1024), "image/png")},
    )
    no_file = api.http.post("/prescriptions/scan", headers=patient, data={"other": "x"})

    assert text_named_png.status_code == 415, text_named_png.text
    assert text_named_png.headers["content-type"] == "application/problem+json"
    assert too_large.status_code == 413, too_large.text
    assert no_file.status_code == 422
    assert any(error["field"].endswith("document") for error in no_file.json()["errors"]), no_file.text
