"""The patient's prescriptions in a real browser, against the running platform: a printed prescription
photographed and uploaded, its draft checked and confirmed, a pharmacist's question answered, the order
followed live once approved; a refill, until none is left; a withdrawal; a card removed. axe-core checks
every screen at a phone's width and a desktop's."""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import (
    Api,
    Shop,
    approve,
    new_pharmacist,
    open_shop,
    prescription_body,
    printed,
    scan,
)
from conftest import (
    add_card as card_of,
)
from playwright.sync_api import Page, expect
from screens import DESKTOP, PHONE, accessible, sign_in
from test_patient_pages import a_new_patient_ordering, add_card, register

pytestmark = pytest.mark.e2e

STRENGTH = "20 mg"


def at_both_widths(page: Page, screen: str) -> None:
    """axe-core finds nothing at a desktop's width nor at a phone's, where nothing is wider than it."""
    page.set_viewport_size(DESKTOP)
    accessible(page, f"{screen}-desktop")
    page.set_viewport_size(PHONE)
    accessible(page, f"{screen}-phone")
    page.set_viewport_size(DESKTOP)


def prescription_only_medication(api: Api, admin: dict[str, str], shop: Shop) -> tuple[str, str]:
    """A prescription-only medication of this test's own, stocked at the shop: its id and name. The name
    is a word the scan reads well (a letter tripled, as tests/e2e/test_scan.py does)."""
    for _ in range(10):
        name = "Pravoxetin" + secrets.choice(string.ascii_lowercase) * 3
        body = {
            "name": name,
            "strength": STRENGTH,
            "form": "tablet",
            "price": "3.10",
            "prescription_only": True,
        }
        created = api.http.post("/medications", headers=admin, json=body)
        if created.status_code == 201:
            medication_id = str(created.json()["id"])
            stocked = api.http.put(
                f"/pharmacies/{shop.pharmacy_id}/stock/{medication_id}", headers=admin, json={"quantity": 50}
            )
            assert stocked.status_code == 200, stocked.text
            return medication_id, name
        assert created.status_code == 409, created.text
    raise AssertionError("no free name for the test's medication")


def queued_prescription(api: Api, pharmacist: dict[str, str], order_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def in_queue() -> bool:
        queue = api.http.get("/verifications", headers=pharmacist, params={"limit": 200}).json()["items"]
        found[:] = [e["prescription"] for e in queue if e["prescription"]["order_id"] == order_id]
        return bool(found)

    api.wait_until(in_queue, f"the prescription of order {order_id} in the pharmacists' queue")
    return found[0]


def signed_in_to_my_orders(page: Page, email: str) -> None:
    sign_in(page, email)
    expect(page.get_by_role("heading", level=1)).to_have_text("My orders")


def test_a_patient_uploads_a_scan_answers_the_pharmacist_and_follows_the_order_live(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=0)
    medication_id, name = prescription_only_medication(api, admin, shop)
    _, pharmacist = new_pharmacist(api, admin)
    photo = printed(("Dr Amelia Hart MBChB", "Rx", f"1. {name} {STRENGTH} tablets  Qty: 14"), (1600, 700))
    page.set_viewport_size(DESKTOP)
    register(page)
    add_card(page)

    page.get_by_role("link", name="Upload a prescription").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Upload a prescription")
    at_both_widths(page, "scan")
    # Not a picture, whatever its name says: refused beside the field, in the API's words.
    page.get_by_label("Prescription photo or PDF").set_input_files(
        {"name": "prescription.png", "mimeType": "image/png", "buffer": b"just some text"}
    )
    page.get_by_role("button", name="Read this prescription").click()
    expect(page.get_by_label("Prescription photo or PDF")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#document-error")).to_contain_text("the document is not a PNG, JPEG or PDF")
    at_both_widths(page, "scan-error")

    page.get_by_label("Prescription photo or PDF").set_input_files(
        {"name": "prescription.png", "mimeType": "image/png", "buffer": photo}
    )
    page.get_by_role("button", name="Read this prescription").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your prescription", timeout=60_000)
    expect(page.locator(".draft-line")).to_contain_text(f"Matched: {name} {STRENGTH} tablet")
    expect(page.locator(".draft-line")).to_contain_text("% confidence")
    quantity = page.get_by_label(f"Quantity of {name} {STRENGTH}")
    expect(quantity).to_have_value("14")
    at_both_widths(page, "scan-draft")
    quantity.fill("10")
    # Sent without where to deliver: the error beside the field, the corrected quantity kept.
    page.get_by_role("button", name="Send this prescription to a pharmacist").click()
    expect(page.get_by_label("Latitude")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label(f"Quantity of {name} {STRENGTH}")).to_have_value("10")
    at_both_widths(page, "scan-draft-errors")
    page.get_by_label("Latitude").fill(f"{shop.latitude + 0.01:.4f}")
    page.get_by_label("Longitude").fill(f"{shop.longitude + 0.01:.4f}")
    page.get_by_role("button", name="Send this prescription to a pharmacist").click()

    expect(page).to_have_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    order_id = page.url.rsplit("/", 1)[1]
    status = page.locator("#order-panel [data-status]")
    expect(status).to_have_attribute("data-status", "AWAITING_VERIFICATION")
    expect(status).to_have_text("Waiting for a pharmacist")

    prescription = queued_prescription(api, pharmacist, order_id)
    assert [(line["medication_id"], line["quantity"]) for line in prescription["lines"]] == [
        (medication_id, 10)
    ]
    question = "Is this for you, and have you taken it before?"
    held = api.http.post(
        f"/verifications/{prescription['id']}/hold", headers=pharmacist, json={"question": question}
    )
    assert held.status_code == 200, held.text

    page.get_by_role("link", name="My prescriptions").click()
    expect(page.get_by_role("table")).to_contain_text("A pharmacist asks you a question")
    expect(page.get_by_role("table")).to_contain_text(f"{name} {STRENGTH} \u00d7 10")
    at_both_widths(page, "prescriptions")
    page.get_by_role("link", name=f"View prescription {prescription['id'][:8]}").click()
    answer = page.get_by_label(question)
    expect(answer).to_be_visible()
    at_both_widths(page, "prescription-on-hold")
    page.get_by_role("button", name="Send my answer").click()  # empty: refused beside it
    expect(page.locator("#answer-error")).to_contain_text("Error:")
    page.get_by_label(question).fill("Yes, for me; I took it last winter.")
    page.get_by_role("button", name="Send my answer").click()
    expect(page.locator("[data-status]")).to_have_text("Waiting for a pharmacist")
    expect(page.locator(".history")).to_contain_text("You answered: Yes, for me; I took it last winter.")
    at_both_widths(page, "prescription-answered")

    page.get_by_role("link", name="Its order").click()
    expect(status).to_have_attribute("data-status", "AWAITING_VERIFICATION")
    approve(api, pharmacist, prescription["id"])
    # No reload: the order page follows the order over server-sent events.
    expect(status).to_have_attribute("data-status", "CONFIRMED", timeout=20_000)


def test_a_patient_refills_a_filled_prescription_until_none_is_left(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    user, patient = api.new_patient()
    card = card_of(api, patient)
    body = {**prescription_body(shop, card), "repeats_allowed": 1}
    uploaded = api.http.post("/prescriptions", headers=patient, json=body).json()
    assert api.wait_for_status(uploaded["order_id"], patient, {"CONFIRMED"})["status"] == "CONFIRMED"
    api.wait_until(
        lambda: (
            api.http.get(f"/prescriptions/{uploaded['id']}", headers=patient).json()["status"] == "FILLED"
        ),
        "the prescription to be filled",
    )
    page.set_viewport_size(DESKTOP)
    signed_in_to_my_orders(page, user["email"])

    page.goto(f"/prescriptions/{uploaded['id']}")
    expect(page.locator("[data-status]")).to_have_text("Filled")
    expect(page.locator(".facts")).to_contain_text("1 (of 1 allowed)")
    at_both_widths(page, "prescription-filled")
    page.get_by_role("button", name="Order a refill").click()  # where and the card, as the first time

    expect(page).to_have_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    refill_order = page.url.rsplit("/", 1)[1]
    assert refill_order != uploaded["order_id"]
    expect(page.locator("#order-panel [data-status]")).to_have_attribute(
        "data-status", "CONFIRMED", timeout=20_000
    )
    api.wait_until(
        lambda: api.http.get(f"/prescriptions/{uploaded['id']}", headers=patient).json()["refills_left"] == 0,
        "the refill to be counted",
    )

    page.goto(f"/prescriptions/{uploaded['id']}")
    expect(page.locator(".facts")).to_contain_text("0 (of 1 allowed)")
    page.get_by_role("button", name="Order a refill").click()
    expect(page.locator("#refill-error")).to_contain_text("no refills left: 1 of 1 used")
    at_both_widths(page, "prescription-no-refill-left")
    orders = api.http.get("/orders", headers=patient).json()["items"]
    assert sorted(o["id"] for o in orders) == sorted([uploaded["order_id"], refill_order])


def test_a_patient_withdraws_a_prescription_waiting_for_a_pharmacist(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    user, patient = api.new_patient()
    card = card_of(api, patient)
    body = {**prescription_body(shop, card), "document_id": scan(api, patient)}
    uploaded = api.http.post("/prescriptions", headers=patient, json=body)
    assert uploaded.status_code == 202, uploaded.text
    prescription_id, order_id = uploaded.json()["id"], uploaded.json()["order_id"]
    api.wait_for_status(order_id, patient, {"AWAITING_VERIFICATION"})
    page.set_viewport_size(DESKTOP)
    signed_in_to_my_orders(page, user["email"])

    page.get_by_role("link", name="My prescriptions").click()
    page.get_by_role("link", name=f"View prescription {prescription_id[:8]}").click()
    expect(page.locator("[data-status]")).to_have_text("Waiting for a pharmacist")
    expect(page.get_by_role("button", name="Order a refill")).to_have_count(0)  # not filled: none offered
    at_both_widths(page, "prescription-waiting")
    page.get_by_role("button", name="Withdraw this prescription").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("My prescriptions")
    expect(page.get_by_text("You have no prescriptions yet.")).to_be_visible()
    assert api.wait_for_status(order_id, patient, {"CANCELLED"})["status"] == "CANCELLED"
    assert page.goto(f"/prescriptions/{prescription_id}").status == 404  # type: ignore[union-attr]


def test_a_patient_removes_a_card_and_is_no_longer_offered_it(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    page.set_viewport_size(DESKTOP)
    register(page)
    add_card(page)
    at_both_widths(page, "cards-with-remove")
    remove = page.get_by_role("button", name="Remove Visa ending in 4242")
    # Said beside the button, before it is pressed: what removing does to orders not paid yet.
    expect(remove).to_have_accessible_description(
        re.compile("not paid yet with this card will be declined and cancelled")
    )

    remove.click()

    expect(page.get_by_text("You have no card yet")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Remove"))).to_have_count(0)
    page.get_by_role("link", name="New order", exact=True).click()
    expect(page.get_by_text("No card yet")).to_be_visible()
    expect(page.locator("#payment_method_id option")).to_have_count(0)


def test_an_order_asks_for_a_delivery_window_and_its_page_shows_it(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    page.set_viewport_size(DESKTOP)
    a_new_patient_ordering(page, api, admin, quantity=1)
    day = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    page.get_by_label("Delivery window from").fill(f"{day}T12:00")
    page.get_by_label("Delivery window until").fill(f"{day}T10:00")
    page.get_by_role("button", name="Place the order").click()

    expect(page.get_by_label("Delivery window until")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#window_end-error")).to_contain_text("a delivery window ends after it starts")
    expect(page.get_by_label("Delivery window from")).to_have_value(f"{day}T12:00")
    at_both_widths(page, "new-order-window-error")
    page.get_by_label("Delivery window until").fill(f"{day}T14:00")
    page.get_by_role("button", name="Place the order").click()

    expect(page).to_have_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    shown = datetime.strptime(day, "%Y-%m-%d").strftime("%d %b")
    expect(page.locator("#order-panel")).to_contain_text(f"Delivery window: {shown}, 12:00 to 14:00 UTC")
