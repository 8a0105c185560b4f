"""The pharmacist's web pages driven as the wrong user, over HTTP with a real session and its CSRF
token: a patient on every page and form, a pharmacist at another pharmacy, a pharmacist's own
prescription, and a scanned document asked for by another patient. Each is refused and nothing
changes."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import (
    Api,
    Shop,
    WebSession,
    add_card,
    blank_png,
    new_courier,
    new_pharmacist,
    open_shop,
    prescription_body,
    scan,
    staff_of,
    upload,
)

pytestmark = pytest.mark.e2e


def email_of(api: Api, headers: dict[str, str]) -> str:
    return str(api.http.get("/users/me", headers=headers).json()["email"])


def waiting_rx(api: Api, admin: dict[str, str]) -> tuple[Shop, dict[str, str], dict[str, Any]]:
    """A shop of prescription-only stock and a patient's scanned prescription waiting for a pharmacist."""
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    _, patient = api.new_patient()
    body = {**prescription_body(shop, add_card(api, patient), 2), "document_id": scan(api, patient)}
    answer = api.http.post("/prescriptions", headers=patient, json=body)
    assert answer.status_code == 202, answer.text
    rx = dict(answer.json())
    api.wait_for_status(rx["order_id"], patient, {"AWAITING_VERIFICATION"})
    return shop, patient, rx


def stock_of(api: Api, admin: dict[str, str], shop: Shop) -> int:
    answer = api.http.get(f"/pharmacies/{shop.pharmacy_id}/stock/{shop.medication_id}", headers=admin)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["quantity"])


def status_of(api: Api, admin: dict[str, str], prescription_id: str) -> str:
    return str(api.http.get(f"/prescriptions/{prescription_id}", headers=admin).json()["status"])


def test_a_patient_is_refused_every_pharmacist_page_and_form(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    shop, patient, rx = waiting_rx(api, admin)
    as_patient = web(email_of(api, patient))

    pages = [
        as_patient.get("/verifications"),
        as_patient.get(f"/verifications/{rx['id']}"),
        as_patient.get("/dispensing"),
        as_patient.get("/stock"),
        as_patient.get("/stock/search", pharmacy_id=shop.pharmacy_id, q="Amoxicillin"),
    ]
    forms = [
        as_patient.post(
            f"/verifications/{rx['id']}/approve", {"medication_id": shop.medication_id, "quantity": "9"}
        ),
        as_patient.post(f"/verifications/{rx['id']}/reject", {"reason": "OTHER", "note": "no"}),
        as_patient.post(f"/verifications/{rx['id']}/hold", {"question": "Why?"}),
        as_patient.post(f"/dispensing/{rx['order_id']}/dispense", {}),
        as_patient.post(f"/stock/{shop.pharmacy_id}/{shop.medication_id}", {"quantity": "99"}),
    ]

    assert [p.status_code for p in pages] == [403] * len(pages)
    assert [f.status_code for f in forms] == [403] * len(forms)
    assert all("this needs the role admin or pharmacist</p>" in answer.text for answer in pages + forms)
    assert status_of(api, admin, rx["id"]) == "PENDING_VERIFICATION"
    assert stock_of(api, admin, shop) == 10
    # Their own document, though, they may see.
    assert as_patient.get(f"/prescriptions/{rx['id']}/document").status_code == 200


def test_a_pharmacist_of_one_pharmacy_neither_restocks_nor_dispenses_anothers(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    mine, theirs = open_shop(api, admin, quantity=10), open_shop(api, admin, quantity=10)
    pharmacist = web(email_of(api, staff_of(api, admin, mine)))
    _, patient = api.new_patient()
    order_id = upload(api, patient, theirs, add_card(api, patient), 2)["order_id"]
    assert api.wait_for_status(order_id, patient, {"CONFIRMED"})["status"] == "CONFIRMED"

    restock = pharmacist.post(f"/stock/{theirs.pharmacy_id}/{theirs.medication_id}", {"quantity": "99"})
    dispense = pharmacist.post(f"/dispensing/{order_id}/dispense", {})
    dispensing_page = pharmacist.get("/dispensing")
    stock_page = pharmacist.get("/stock")
    own_restock = pharmacist.post(f"/stock/{mine.pharmacy_id}/{mine.medication_id}", {"quantity": "12"})

    assert restock.status_code == 403, restock.text
    assert dispense.status_code == 403, dispense.text
    assert "only the staff of pharmacy" in restock.text
    assert stock_of(api, admin, theirs) == 8  # two reserved for the order, nothing changed by the page
    assert api.wait_for_status(order_id, patient, {"CONFIRMED"})["status"] == "CONFIRMED"
    assert dispensing_page.status_code == 200
    assert order_id[:8] not in dispensing_page.text
    assert theirs.pharmacy_id not in stock_page.text
    assert mine.pharmacy_id in stock_page.text
    assert (own_restock.status_code, own_restock.headers["location"]) == (
        303,
        f"/stock?changed={mine.medication_id}",
    )
    assert stock_of(api, admin, mine) == 12


def test_a_pharmacist_may_not_approve_their_own_prescription_nor_decide_without_the_forms_token(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    shop, patient, rx = waiting_rx(api, admin)
    me = api.http.get("/users/me", headers=patient).json()
    promoted = api.http.patch(f"/users/{me['id']}", headers=admin, json={"role": "pharmacist"})
    assert promoted.status_code == 200, promoted.text
    own = web(me["email"])
    _, colleague_headers = new_pharmacist(api, admin)
    colleague = web(email_of(api, colleague_headers))

    refused = own.post(
        f"/verifications/{rx['id']}/approve", {"medication_id": shop.medication_id, "quantity": "2"}
    )
    forged = colleague.post(f"/verifications/{rx['id']}/reject", {"reason": "OTHER"}, with_token=False)
    forged_with_another_token = colleague.post(
        f"/verifications/{rx['id']}/reject", {"reason": "OTHER", "csrf_token": own.csrf}, with_token=False
    )

    assert refused.status_code == 403, refused.text
    assert "own prescription" in refused.text
    assert forged.status_code == 403
    assert "expired" in forged.text
    assert forged_with_another_token.status_code == 403
    assert status_of(api, admin, rx["id"]) == "PENDING_VERIFICATION"
    approved = colleague.post(
        f"/verifications/{rx['id']}/approve", {"medication_id": shop.medication_id, "quantity": "2"}
    )
    assert (approved.status_code, approved.headers["location"]) == (
        303,
        f"/verifications?decided={rx['id']}&decision=approved",
    )
    assert status_of(api, admin, rx["id"]) == "PROCESSING"


def test_a_scanned_document_is_shown_to_its_patient_and_pharmacists_only(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    _, patient, rx = waiting_rx(api, admin)
    _, stranger = api.new_patient()
    _, pharmacist = new_pharmacist(api, admin)
    _, courier = new_courier(api, admin)
    path = f"/prescriptions/{rx['id']}/document"

    by_patient = web(email_of(api, patient)).get(path)
    by_pharmacist = web(email_of(api, pharmacist)).get(path)
    by_stranger = web(email_of(api, stranger)).get(path)
    by_courier = web(email_of(api, courier)).get(path)
    signed_out = httpx.get(f"{api.http.base_url.scheme}://{api.http.base_url.netloc.decode()}{path}")

    assert by_patient.status_code == 200
    assert by_patient.content == blank_png()
    assert by_patient.headers["content-type"] == "image/png"
    assert by_patient.headers["cache-control"] == "private, no-store"
    assert by_patient.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in by_patient.headers["content-security-policy"]
    assert by_pharmacist.content == blank_png()
    assert by_stranger.status_code == 404
    assert by_stranger.headers["content-type"].startswith("text/html")
    assert by_courier.status_code == 403
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/sign-in")


def blank_pdf() -> bytes:
    """A blank one-page PDF: read into a draft of no lines."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (400, 200), 255).save(buffer, "PDF")
    return buffer.getvalue()


def test_a_scanned_pdf_is_offered_for_download_and_a_decided_prescription_says_so_beside_the_form(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    _, patient = api.new_patient()
    pdf = blank_pdf()
    body = {**prescription_body(shop, add_card(api, patient), 2), "document_id": scan(api, patient, pdf)}
    rx = api.http.post("/prescriptions", headers=patient, json=body).json()
    api.wait_for_status(rx["order_id"], patient, {"AWAITING_VERIFICATION"})
    pharmacist = web(email_of(api, new_pharmacist(api, admin)[1]))

    page = pharmacist.get(f"/verifications/{rx['id']}")
    document = pharmacist.get(f"/prescriptions/{rx['id']}/document")
    rejected = pharmacist.post(f"/verifications/{rx['id']}/reject", {"reason": "ILLEGIBLE"})
    again = pharmacist.post(f"/verifications/{rx['id']}/hold", {"question": "Could you send it again?"})

    assert page.status_code == 200
    assert "Download the scanned PDF" in page.text
    assert (document.headers["content-type"], document.content) == ("application/pdf", pdf)
    assert document.headers["content-disposition"].startswith("attachment;")
    assert rejected.status_code == 303
    # Decided meanwhile: the API's 409, said beside the form that was sent, with what was typed kept.
    assert again.status_code == 409, again.text
    assert 'id="hold-error"' in again.text
    assert "Could you send it again?" in again.text
    assert status_of(api, admin, rx["id"]) == "REJECTED"


def test_a_correction_the_rules_refuse_is_said_beside_its_line_with_what_was_typed_kept(
    api: Api, admin: dict[str, str], web: Any
) -> None:
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    _, patient = api.new_patient()
    body = {
        **prescription_body(shop, add_card(api, patient), 2),
        "document_id": scan(api, patient),
        "repeats_allowed": 2,
    }
    sent = api.http.post("/prescriptions", headers=patient, json=body)
    assert sent.status_code == 202, sent.text
    rx = dict(sent.json())
    api.wait_for_status(rx["order_id"], patient, {"AWAITING_VERIFICATION"})
    controlled = api.http.post(
        "/medications",
        headers=admin,
        json={
            "name": f"Oxycodone {rx['id'][:6]}",
            "strength": "5 mg",
            "form": "tablet",
            "price": "9.00",
            "prescription_only": True,
            "schedule": "II",
        },
    )
    assert controlled.status_code == 201, controlled.text
    corrected_to = controlled.json()["id"]
    _, pharmacist = new_pharmacist(api, admin)
    pharmacist_web = web(email_of(api, pharmacist))

    # A schedule II medication has no refills: the domain refuses the correction (repeats_allowed).
    refused = pharmacist_web.post(
        f"/verifications/{rx['id']}/approve",
        {"medication_id": corrected_to, "quantity": "3", "note": "as the scan says"},
    )

    assert refused.status_code == 422, refused.text
    assert "cannot be refilled" in refused.text
    assert f'<option value="{corrected_to}" selected>' in refused.text
    assert re.search(r'id="quantity-0"[^>]*value="3"', refused.text), refused.text
    assert "as the scan says</textarea>" in refused.text
    assert status_of(api, admin, rx["id"]) == "PENDING_VERIFICATION"


def test_a_searched_medication_the_pharmacy_stocks_is_filled_in_with_its_units_for_sale(
    api: Api, admin: dict[str, str], web: Any
) -> None:
    shop = open_shop(api, admin, quantity=10)
    name = api.http.get(f"/medications/{shop.medication_id}", headers=admin).json()["name"]
    pharmacist = web(email_of(api, staff_of(api, admin, shop)))

    found = pharmacist.get("/stock/search", pharmacy_id=shop.pharmacy_id, q=name)

    assert found.status_code == 200, found.text
    field = f'id="found-quantity-{shop.pharmacy_id}-{shop.medication_id}"'
    assert re.search(field + r'[^>]*value="10"', found.text), found.text
