"""A prescription scanned through the gateway: the draft, the refusals, and the original shown only to its
patient and to pharmacists."""

from __future__ import annotations

import io
import secrets

import pytest
from conftest import (
    Api,
    add_card,
    approve,
    new_pharmacist,
    open_shop,
    png_claiming,
    prescription_body,
    printed,
    scan,
)
from PIL import Image

pytestmark = pytest.mark.e2e


def printed_png(medication: str) -> bytes:
    return printed(("Dr Amelia Hart MBChB", "Rx", f"1. {medication} 40 mg tablets  Qty: 14"), (1600, 700))


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


def test_a_decompression_bomb_and_a_pdf_of_too_many_pages_are_refused_through_the_gateway(api: Api) -> None:
    _, patient = api.new_patient()
    pages = [Image.new("RGB", (100, 100), "white") for _ in range(6)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "PDF", save_all=True, append_images=pages[1:])

    bomb = api.http.post(
        "/prescriptions/scan",
        headers=patient,
        files={"document": ("scan.png", png_claiming(100_000, 100_000), "image/png")},
    )
    many_pages = api.http.post(
        "/prescriptions/scan",
        headers=patient,
        files={"document": ("scan.pdf", buffer.getvalue(), "application/pdf")},
    )

    assert bomb.status_code == 413, bomb.text
    assert bomb.headers["content-type"] == "application/problem+json"
    assert "too large" in bomb.json()["detail"], bomb.text
    assert many_pages.status_code == 422, many_pages.text
    assert many_pages.headers["content-type"] == "application/problem+json"
    assert "6 pages" in many_pages.json()["detail"], many_pages.text


def catalogue_entry(api: Api, admin: dict[str, str], name: str, strength: str, form: str) -> str:
    """The catalogue's medication of this name, strength and form: made now, or found if a test did."""
    body = {"name": name, "strength": strength, "form": form, "price": "2.40", "prescription_only": True}
    created = api.http.post("/medications", headers=admin, json=body)
    if created.status_code == 201:
        return str(created.json()["id"])
    assert created.status_code == 409, created.text
    found = api.http.get("/medications", headers=admin, params={"limit": 200}).json()["items"]
    return str(
        next(m["id"] for m in found if (m["name"], m["strength"], m["form"]) == (name, strength, form))
    )


def test_a_scanned_prescription_corrected_by_its_patient_is_flagged_verified_and_confirmed(
    api: Api, admin: dict[str, str]
) -> None:
    hydroxyzine = catalogue_entry(api, admin, "Hydroxyzine", "25 mg", "tablet")
    catalogue_entry(api, admin, "Hydralazine", "25 mg", "tablet")  # its look-alike
    shop = open_shop(api, admin, quantity=0)
    stocked = api.http.put(
        f"/pharmacies/{shop.pharmacy_id}/stock/{hydroxyzine}", headers=admin, json={"quantity": 50}
    )
    assert stocked.status_code == 200, stocked.text
    _, patient = api.new_patient()
    _, pharmacist = new_pharmacist(api, admin)
    photo = printed(
        ("Dr Amelia Hart MBChB", "Rx", "1. Hydroxyzine 25 mg tablets  x 28"),
        (1600, 600),
        angle=4,
        format="JPEG",
        quality=80,
    )

    # 1. The patient scans the paper and reads the draft back.
    document_id = scan(api, patient, photo)
    draft = api.http.get(f"/documents/{document_id}", headers=patient)
    assert draft.status_code == 200
    # 2. They confirm the line, asking for 20 where the paper says 28.
    body = {
        **prescription_body(shop, add_card(api, patient)),
        "lines": [{"medication_id": hydroxyzine, "quantity": 20}],
        "document_id": document_id,
    }
    answer = api.http.post("/prescriptions", headers=patient, json=body)
    assert answer.status_code == 202, answer.text
    uploaded = answer.json()
    assert uploaded["status"] == "PENDING_VERIFICATION"
    # 3. The pharmacist sees the draft beside the lines, and why to look closely.
    queue = api.http.get("/verifications", headers=pharmacist, params={"limit": 200}).json()["items"]
    entry = next(e for e in queue if e["prescription"]["id"] == uploaded["id"])
    assert [(line["medication_id"], line["quantity"]) for line in entry["draft"]["lines"]] == [
        (hydroxyzine, 28)
    ]
    assert "LOOK_ALIKE" in entry["draft"]["lines"][0]["flags"]
    [flagged] = entry["prescription"]["flags"]
    assert flagged["line"] == 0
    assert {"LOOK_ALIKE", "QUANTITY_CHANGED"} <= set(flagged["flags"])
    # 4. They approve it as the paper says; the saga goes on.
    approve(api, pharmacist, uploaded["id"], lines=[{"medication_id": hydroxyzine, "quantity": 28}])
    order = api.wait_for_status(uploaded["order_id"], patient, {"CONFIRMED", "REJECTED", "CANCELLED"})
    assert order["status"] == "CONFIRMED", order
    assert [(line["medication_id"], line["quantity"]) for line in order["lines"]] == [(hydroxyzine, 28)]
    shown = api.http.get(f"/prescriptions/{uploaded['id']}/document", headers=pharmacist)
    assert (shown.status_code, shown.headers["content-type"]) == (200, "image/jpeg")
    assert shown.content == photo


def test_a_scanned_document_backs_one_prescription_of_its_own_patient(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    _, patient = api.new_patient()
    _, stranger = api.new_patient()
    document_id = scan(api, patient)
    body = {**prescription_body(shop, add_card(api, patient)), "document_id": document_id}

    first = api.http.post("/prescriptions", headers=patient, json=body)
    again = api.http.post("/prescriptions", headers=patient, json=body)
    by_stranger = api.http.post(
        "/prescriptions",
        headers=stranger,
        json={**prescription_body(shop, add_card(api, stranger)), "document_id": document_id},
    )

    assert first.status_code == 202, first.text
    assert again.status_code == 409, again.text
    assert first.json()["id"] in again.json()["detail"]
    assert by_stranger.status_code == 422, by_stranger.text
    assert by_stranger.json()["errors"][0]["field"] == "document_id"
