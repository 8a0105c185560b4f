"""The patient's prescription and card pages driven as the wrong user, with a real session and its CSRF
token: another patient's prescription and card are not found (and stay as they were), staff are
forbidden the patient's pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from conftest import (
    Api,
    Shop,
    WebSession,
    add_card,
    new_pharmacist,
    open_shop,
    prescription_body,
    scan,
    upload,
)

pytestmark = pytest.mark.e2e


def held_prescription(api: Api, admin: dict[str, str]) -> tuple[dict[str, Any], dict[str, str], Shop, str]:
    """A new patient's scanned prescription a pharmacist has put on hold with a question: the patient,
    their headers, the shop it was sent to and the prescription's id."""
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    user, owner = api.new_patient()
    body = {**prescription_body(shop, add_card(api, owner)), "document_id": scan(api, owner)}
    uploaded = api.http.post("/prescriptions", headers=owner, json=body)
    assert uploaded.status_code == 202, uploaded.text
    prescription_id = uploaded.json()["id"]
    _, pharmacist = new_pharmacist(api, admin)
    api.wait_until(
        lambda: (
            api.http.get(f"/prescriptions/{prescription_id}", headers=owner).json()["status"]
            == "PENDING_VERIFICATION"
        ),
        "the prescription to wait for a pharmacist",
    )
    held = api.http.post(
        f"/verifications/{prescription_id}/hold", headers=pharmacist, json={"question": "Who is it for?"}
    )
    assert held.status_code == 200, held.text
    return user, owner, shop, str(prescription_id)


def test_another_patients_prescription_is_not_found_on_every_page_and_form_and_stays(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    _, owner, shop, prescription_id = held_prescription(api, admin)
    stranger_user, stranger_headers = api.new_patient()
    stranger = web(stranger_user["email"])
    their_card = add_card(api, stranger_headers)

    assert stranger.get(f"/prescriptions/{prescription_id}").status_code == 404
    answered = stranger.post(f"/prescriptions/{prescription_id}/answer", {"answer": "For me"})
    refilled = stranger.post(
        f"/prescriptions/{prescription_id}/refill",
        {"latitude": str(shop.latitude), "longitude": str(shop.longitude), "payment_method_id": their_card},
    )
    withdrawn = stranger.post(f"/prescriptions/{prescription_id}/withdraw")

    assert (answered.status_code, refilled.status_code, withdrawn.status_code) == (404, 404, 404)
    assert "Not Found" in withdrawn.text
    assert prescription_id not in stranger.get("/prescriptions").text
    still = api.http.get(f"/prescriptions/{prescription_id}", headers=owner).json()
    assert (still["status"], still["question"]) == ("ON_HOLD", "Who is it for?")


def test_another_patients_card_is_not_found_and_is_still_theirs(
    api: Api, web: Callable[[str], WebSession]
) -> None:
    _, owner = api.new_patient()
    card = add_card(api, owner)
    stranger_user, _ = api.new_patient()
    stranger = web(stranger_user["email"])

    removed = stranger.post(f"/cards/{card}/remove")

    assert removed.status_code == 404
    assert [m["id"] for m in api.http.get("/payment-methods", headers=owner).json()["items"]] == [card]


def test_a_removal_without_its_csrf_token_is_refused_and_the_card_stays(
    api: Api, web: Callable[[str], WebSession]
) -> None:
    user, headers = api.new_patient()
    card = add_card(api, headers)
    owner = web(user["email"])

    forged = owner.post(f"/cards/{card}/remove", with_token=False)

    assert forged.status_code == 403
    assert [m["id"] for m in api.http.get("/payment-methods", headers=headers).json()["items"]] == [card]


@pytest.mark.parametrize("role", ["pharmacist", "courier"])
def test_staff_are_forbidden_the_patients_prescription_pages(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession], role: str
) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    prescription_id = upload(api, patient, shop, card, quantity=1)["id"]
    user, _ = api.new_patient()
    made = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": role})
    assert made.status_code == 200, made.text
    staff = web(user["email"])

    pages = ["/prescriptions", f"/prescriptions/{prescription_id}", "/prescriptions/scan", "/cards"]
    forms = [
        (f"/prescriptions/{prescription_id}/answer", {"answer": "x"}),
        (f"/prescriptions/{prescription_id}/withdraw", {}),
        (f"/prescriptions/{prescription_id}/refill", {"payment_method_id": card}),
        ("/prescriptions/scan/confirm", {"document_id": "doc"}),
        (f"/cards/{card}/remove", {}),
    ]

    assert {path: staff.get(path).status_code for path in pages} == dict.fromkeys(pages, 403)
    assert {path: staff.post(path, data).status_code for path, data in forms} == {
        path: 403 for path, _ in forms
    }
    assert api.http.get(f"/prescriptions/{prescription_id}", headers=patient).status_code == 200
    assert [m["id"] for m in api.http.get("/payment-methods", headers=patient).json()["items"]] == [card]


def test_an_order_form_sent_again_with_other_lines_says_it_placed_an_order_and_links_to_my_orders(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    user, patient = api.new_patient()
    form = {
        "form_id": "one-form-shown",
        "medication_id": shop.medication_id,
        "quantity": "1",
        "latitude": f"{shop.latitude + 0.01}",
        "longitude": f"{shop.longitude + 0.01}",
        "payment_method_id": add_card(api, patient),
    }
    browser = web(user["email"])
    placed = browser.post("/prescriptions/new", form)
    assert placed.status_code == 303, placed.text

    # Back in the browser, a quantity changed, the same form sent again.
    again = browser.post("/prescriptions/new", {**form, "quantity": "2"})

    assert again.status_code == 422, again.text
    error = re.search(r'<p class="error" id="lines-error">(.*?)</p>', again.text, re.S)
    assert error is not None, again.text
    assert "This form already placed an order" in error.group(1)
    assert '<a href="/orders">Open My orders</a>' in error.group(1)
    assert "idempotency" not in again.text


def test_a_refused_answer_to_the_pharmacist_is_put_back_in_the_box(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    user, owner, _, prescription_id = held_prescription(api, admin)
    browser = web(user["email"])
    too_long = "For my mother, who " + "x" * 2000  # over the 2000 characters an answer may have

    refused = browser.post(f"/prescriptions/{prescription_id}/answer", {"answer": too_long})

    assert refused.status_code == 422, refused.text
    assert 'id="answer-error"' in refused.text
    assert f">{too_long}</textarea>" in refused.text
    still = api.http.get(f"/prescriptions/{prescription_id}", headers=owner).json()
    assert still["status"] == "ON_HOLD"
