"""The pharmacist's web pages in a real browser (Debian's chromium through Playwright), against the
running platform: the verification queue, a prescription beside its scanned document with its flags,
approving with a corrected quantity, holding with a question, rejecting with a reason, dispensing,
and changing stock. axe-core checks every screen, at a phone's width and a desktop's."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import (
    Api,
    Shop,
    add_card,
    new_pharmacist,
    open_shop,
    prescription_body,
    printed,
    scan,
)
from playwright.sync_api import Page, expect
from screens import DESKTOP, PHONE, accessible, sign_in

pytestmark = pytest.mark.e2e

ENDED = {"CONFIRMED", "REJECTED", "CANCELLED"}


def catalogue_entry(api: Api, admin: dict[str, str], name: str, strength: str, form: str) -> str:
    """The catalogue's medication of this name, strength and form: made now, or found if a test did."""
    body = {"name": name, "strength": strength, "form": form, "price": "2.40", "prescription_only": True}
    created = api.http.post("/medications", headers=admin, json=body)
    if created.status_code == 201:
        return str(created.json()["id"])
    assert created.status_code == 409, created.text
    found = api.http.get("/medications", headers=admin, params={"name": name, "limit": 200}).json()["items"]
    return str(
        next(m["id"] for m in found if (m["name"], m["strength"], m["form"]) == (name, strength, form))
    )


def pharmacist_of(api: Api, admin: dict[str, str], shop: Shop) -> tuple[str, dict[str, str]]:
    """A pharmacist on the shop's staff: their email (to sign in on the page) and their API headers."""
    user, headers = new_pharmacist(api, admin)
    joined = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{user['id']}", headers=admin)
    assert joined.status_code == 200, joined.text
    return str(user["email"]), headers


def uploaded(api: Api, patient: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    answer = api.http.post("/prescriptions", headers=patient, json=body)
    assert answer.status_code == 202, answer.text
    created = dict(answer.json())
    api.wait_for_status(created["order_id"], patient, {"AWAITING_VERIFICATION"})
    return created


def stock_of(api: Api, headers: dict[str, str], shop: Shop, medication_id: str) -> int:
    answer = api.http.get(f"/pharmacies/{shop.pharmacy_id}/stock/{medication_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["quantity"])


def in_the_queue(page: Page, prescription_id: str) -> None:
    """The queue's page showing this prescription: later pages are followed (the oldest come first,
    and a session of tests may leave others waiting)."""
    link = page.get_by_role("link", name=f"Verify prescription {prescription_id[:8]}")
    later = page.get_by_role("link", name="Later in the queue (more recent)")
    while link.count() == 0 and later.count() == 1:
        page.goto(str(later.get_attribute("href")))  # goto: returns once the next page has loaded
    expect(link).to_be_visible()


def open_verification(page: Page, prescription_id: str) -> None:
    in_the_queue(page, prescription_id)
    page.get_by_role("link", name=f"Verify prescription {prescription_id[:8]}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Verify prescription {prescription_id[:8]}")


def test_a_pharmacist_verifies_a_scan_with_a_corrected_quantity_dispenses_it_and_restocks(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    hydroxyzine = catalogue_entry(api, admin, "Hydroxyzine", "25 mg", "tablet")
    catalogue_entry(api, admin, "Hydralazine", "25 mg", "tablet")  # its look-alike
    shop = open_shop(api, admin, quantity=0)
    stocked = api.http.put(
        f"/pharmacies/{shop.pharmacy_id}/stock/{hydroxyzine}", headers=admin, json={"quantity": 50}
    )
    assert stocked.status_code == 200, stocked.text
    email, pharmacist = pharmacist_of(api, admin, shop)
    _, patient = api.new_patient()
    photo = printed(("Dr Amelia Hart MBChB", "Rx", "1. Hydroxyzine 25 mg tablets  x 28"), (1600, 600))
    # The patient asks for 20 where the paper says 28: the pharmacist corrects it.
    rx = uploaded(
        api,
        patient,
        {
            **prescription_body(shop, add_card(api, patient)),
            "lines": [{"medication_id": hydroxyzine, "quantity": 20}],
            "document_id": scan(api, patient, photo),
            "prescriber": {"name": "Dr Amelia Hart", "licence_number": "GMC-7012345"},
            "repeats_allowed": 1,
        },
    )

    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.set_viewport_size(DESKTOP)
    sign_in(page, email)
    # A pharmacist lands on the queue.
    expect(page.get_by_role("heading", level=1)).to_have_text("Verification queue")
    in_the_queue(page, rx["id"])
    entry = page.locator(".queue-entry", has=page.get_by_role("heading", name=f"Prescription {rx['id'][:8]}"))
    expect(entry).to_contain_text("Hydroxyzine 25 mg")
    expect(entry).to_contain_text("Look-alike or sound-alike name")
    expect(entry).to_contain_text("Quantity differs from the scan")
    expect(entry.locator(".flag-mark").first).to_have_text("⚠")  # a marker, not colour alone
    accessible(page, "pharmacist-queue-desktop")

    open_verification(page, rx["id"])
    image = page.get_by_role("img", name="The prescription as the patient scanned it")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.querySelector('img.rx-image').complete")
    assert image.evaluate("img => img.naturalWidth") > 0
    draft = page.locator("section.draft")
    expect(draft).to_contain_text("Dr Amelia Hart, licence GMC-7012345")
    expect(draft).to_contain_text("1 refill after the first fill")
    expect(draft.locator("li.flagged")).to_contain_text("Look-alike or sound-alike name")
    expect(page.locator("section.document")).to_contain_text("matched Hydroxyzine 25 mg")
    # Desktop: the document beside the draft.
    document_box, draft_box = page.locator("section.document").bounding_box(), draft.bounding_box()
    assert document_box is not None
    assert draft_box is not None
    assert document_box["x"] + document_box["width"] <= draft_box["x"]
    accessible(page, "pharmacist-verification-desktop")
    page.set_viewport_size(PHONE)
    # Phone: one above the other (and nothing wider than the screen: accessible's check).
    document_box, draft_box = page.locator("section.document").bounding_box(), draft.bounding_box()
    assert document_box is not None
    assert draft_box is not None
    assert document_box["y"] + document_box["height"] <= draft_box["y"]
    accessible(page, "pharmacist-verification-phone")
    page.set_viewport_size(DESKTOP)

    page.get_by_label("Quantity of line 1").fill("0")
    page.get_by_role("button", name="Approve prescription").click()
    expect(page.get_by_label("Quantity of line 1")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#quantity-0-error")).to_contain_text("greater than 0")
    expect(page.get_by_label("Quantity of line 1")).to_have_value("0")  # as typed
    assert (
        api.http.get(f"/prescriptions/{rx['id']}", headers=admin).json()["status"] == "PENDING_VERIFICATION"
    )
    page.get_by_label("Quantity of line 1").fill("28")
    page.get_by_role("button", name="Approve prescription").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Verification queue")
    expect(page.get_by_role("status")).to_contain_text(f"Prescription {rx['id'][:8]} approved")
    expect(page.get_by_role("link", name=f"Verify prescription {rx['id'][:8]}")).to_have_count(0)
    order = api.wait_for_status(rx["order_id"], patient, ENDED)
    assert order["status"] == "CONFIRMED", order
    assert [(line["medication_id"], line["quantity"]) for line in order["lines"]] == [(hydroxyzine, 28)]
    # Audited as the API's own approval is: by whom, corrected; the attempt refused at 0 too.
    audit = api.http.get(
        "/audit", headers=admin, params={"action": "prescription.approve", "subject_id": rx["id"]}
    ).json()["items"]
    me = api.http.get("/users/me", headers=pharmacist).json()
    assert sorted((a["actor_id"], a["outcome"], a["details"].get("corrected")) for a in audit) == [
        (me["id"], "ok", "true"),
        (me["id"], "refused", None),
    ]

    page.get_by_role("link", name="Dispensing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dispensing")
    expect(page.locator("main")).to_contain_text("Hydroxyzine 25 mg, tablet \N{MULTIPLICATION SIGN} 28")
    accessible(page, "pharmacist-dispensing-desktop")
    page.set_viewport_size(PHONE)
    accessible(page, "pharmacist-dispensing-phone")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("button", name=f"Dispense order {rx['order_id'][:8]}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Order {rx['order_id'][:8]} dispensed")
    expect(page.get_by_role("button", name=f"Dispense order {rx['order_id'][:8]}")).to_have_count(0)
    assert api.wait_for_status(rx["order_id"], patient, {"READY_FOR_PICKUP"})["status"] == "READY_FOR_PICKUP"

    page.get_by_role("link", name="Catalogue and stock").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Catalogue and stock")
    row = page.get_by_role("row", name=re.compile("Hydroxyzine 25 mg"))
    expect(row).to_contain_text("2.40")
    expect(page.get_by_label("Units for sale of Hydroxyzine 25 mg")).to_have_value("22")  # 50, less 28 sold
    accessible(page, "pharmacist-stock-desktop")
    page.get_by_label("Units for sale of Hydroxyzine 25 mg").fill("-3")
    page.get_by_role("button", name="Save the stock of Hydroxyzine 25 mg").click()
    expect(page.get_by_label("Units for sale of Hydroxyzine 25 mg")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#quantity-{shop.pharmacy_id}-{hydroxyzine}-error")).to_contain_text("whole number")
    accessible(page, "pharmacist-stock-error")
    assert stock_of(api, pharmacist, shop, hydroxyzine) == 22
    page.get_by_label("Units for sale of Hydroxyzine 25 mg").fill("40")
    page.get_by_role("button", name="Save the stock of Hydroxyzine 25 mg").click()
    expect(page.get_by_role("status")).to_contain_text("The stock of Hydroxyzine 25 mg was changed")
    assert stock_of(api, pharmacist, shop, hydroxyzine) == 40

    # A medication not stocked here yet, found by its name as one types.
    page.get_by_label("Find a medication to stock at Corner Pharmacy").fill("Hydral")
    page.get_by_label("Units for sale of Hydralazine 25 mg").fill("5")
    accessible(page, "pharmacist-stock-search")
    page.get_by_role("button", name="Save the stock of Hydralazine 25 mg").click()
    expect(page.get_by_role("row", name=re.compile("Hydralazine 25 mg"))).to_be_visible()
    hydralazine = catalogue_entry(api, admin, "Hydralazine", "25 mg", "tablet")
    assert stock_of(api, pharmacist, shop, hydralazine) == 5
    page.set_viewport_size(PHONE)
    accessible(page, "pharmacist-stock-phone")
    assert violations == []


def test_a_pharmacist_holds_one_prescription_with_a_question_and_rejects_another_with_a_reason(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    email, _ = pharmacist_of(api, admin, shop)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    first = uploaded(api, patient, {**prescription_body(shop, card, 2), "document_id": scan(api, patient)})
    second = uploaded(api, patient, {**prescription_body(shop, card, 2), "document_id": scan(api, patient)})

    page.set_viewport_size(PHONE)
    sign_in(page, email)
    open_verification(page, first["id"])
    # The second sees the first as an earlier prescription of the same medication; a blank scan
    # names no line, so each line is flagged as not in it.
    expect(page.locator("section.draft li.flagged")).to_contain_text("Not in the scan")
    page.get_by_role("button", name="Hold and send the question").click()
    expect(page.get_by_label("Question for the patient")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#question-error")).to_contain_text("write the question")
    accessible(page, "pharmacist-verification-errors-phone")
    page.get_by_label("Question for the patient").fill("Any penicillin allergy?")
    page.get_by_role("button", name="Hold and send the question").click()
    expect(page.get_by_role("status")).to_contain_text(f"Prescription {first['id'][:8]} put on hold")
    held = api.http.get(f"/prescriptions/{first['id']}", headers=patient).json()
    assert (held["status"], held["question"]) == ("ON_HOLD", "Any penicillin allergy?")

    open_verification(page, second["id"])
    expect(page.locator("section.draft .earlier")).to_contain_text("On hold")
    page.get_by_role("button", name="Reject prescription").click()
    expect(page.locator("#reason-error")).to_contain_text("choose the reason")
    expect(page.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Reason").select_option(label="Prescriber could not be verified")
    page.get_by_label("Note to the patient (optional)").fill("licence number not on the register")
    page.get_by_role("button", name="Reject prescription").click()
    expect(page.get_by_role("status")).to_contain_text(f"Prescription {second['id'][:8]} rejected")
    order = api.wait_for_status(second["order_id"], patient, ENDED)
    assert order["status"] == "REJECTED"
    rejected = api.http.get(f"/prescriptions/{second['id']}", headers=patient).json()
    assert (rejected["status"], rejected["rejection_reason"]) == ("REJECTED", "PRESCRIBER_UNVERIFIED")
    assert rejected["verification"][-1]["note"] == "licence number not on the register"
    accessible(page, "pharmacist-queue-phone")


def test_a_pharmacist_approving_their_own_prescription_sees_a_refusal_page(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    user, as_patient = api.new_patient()
    rx = uploaded(
        api,
        as_patient,
        {**prescription_body(shop, add_card(api, as_patient)), "document_id": scan(api, as_patient)},
    )
    promoted = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": "pharmacist"})
    assert promoted.status_code == 200, promoted.text

    sign_in(page, user["email"])
    page.goto(f"/verifications/{rx['id']}")
    page.get_by_role("button", name="Approve prescription").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden")
    expect(page.get_by_role("alert")).to_contain_text("own prescription")
    accessible(page, "pharmacist-own-prescription")
    assert (
        api.http.get(f"/prescriptions/{rx['id']}", headers=admin).json()["status"] == "PENDING_VERIFICATION"
    )
