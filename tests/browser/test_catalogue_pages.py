"""Opening a pharmacy and keeping the catalogue in a real browser (Debian's chromium through Playwright),
against the running platform: a pharmacist with nothing but a browser opens a pharmacy, adds a
medication (its errors beside their fields first), changes it, stocks it, and a patient orders it to a
paid order; then it is taken out of the catalogue. axe-core checks every new screen at a phone's width
and a desktop's."""

from __future__ import annotations

import random
import re
import secrets

import pytest
from conftest import PASSWORD, Api, Shop, new_pharmacist
from playwright.sync_api import Page, expect
from screens import DESKTOP, PHONE, accessible, sign_in
from test_patient_pages import add_card, order_from_the_catalogue, register

from contracts.codes import pzn_check_digit

pytestmark = pytest.mark.e2e


def at_both_widths(page: Page, screen: str) -> None:
    """axe-core on this screen at a phone's width, then at a desktop's (where the journey goes on)."""
    page.set_viewport_size(PHONE)
    accessible(page, f"{screen}-phone")
    page.set_viewport_size(DESKTOP)
    accessible(page, f"{screen}-desktop")


def a_pzn() -> str:
    """A valid PZN of its own (a code names one medication): seven digits and their check digit."""
    while True:
        first = f"{random.randrange(10**7):07d}"
        if (check := pzn_check_digit(first)) is not None:
            return f"{first}{check}"


def test_a_pharmacist_opens_a_pharmacy_adds_and_stocks_a_medication_and_a_patient_orders_it(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    user, _ = new_pharmacist(api, admin)
    latitude, longitude = round(random.uniform(-60, 60), 4), round(random.uniform(-170, 170), 4)
    name = f"Loratadine {secrets.token_hex(3)}"
    pzn = a_pzn()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.set_viewport_size(DESKTOP)
    sign_in(page, str(user["email"]))

    # No pharmacy yet: the stock page says how to get one.
    page.get_by_role("link", name="Catalogue and stock").click()
    expect(page.get_by_text("You are not on the staff of any pharmacy yet")).to_be_visible()
    page.get_by_role("link", name="Open a pharmacy").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Open a pharmacy")
    at_both_widths(page, "catalogue-pharmacy-new")
    page.get_by_label("Name").fill("Riverside Pharmacy")
    page.get_by_label("Address").fill("2 River Lane")
    page.get_by_label("Latitude").fill("north")
    page.get_by_label("Longitude").fill(f"{longitude}")
    page.get_by_role("button", name="Open this pharmacy").click()
    expect(page.get_by_label("Latitude")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#latitude-error")).to_contain_text("a number from -90 to 90")
    expect(page.get_by_label("Name")).to_have_value("Riverside Pharmacy")
    at_both_widths(page, "catalogue-pharmacy-error")
    page.get_by_label("Latitude").fill(f"{latitude}")
    page.get_by_role("button", name="Open this pharmacy").click()
    expect(page).to_have_url(re.compile(r"/stock\?opened=[0-9a-f-]{36}$"))
    pharmacy_id = page.url.rsplit("=", 1)[1]
    expect(page.get_by_role("status")).to_contain_text("Your pharmacy is open")
    expect(page.get_by_role("heading", name="Riverside Pharmacy, 2 River Lane")).to_be_visible()

    # A medication, with two errors first: each beside its field, what was typed kept.
    page.get_by_role("link", name="Catalogue", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Catalogue")
    at_both_widths(page, "catalogue-list")
    page.get_by_role("link", name="Add a medication").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a medication")
    at_both_widths(page, "catalogue-medication-new")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Strength").fill("500 mg")
    page.get_by_label("Form").fill("tablet")
    page.get_by_label("Price").fill("3,90")
    page.get_by_label("System of code 1").select_option(label="PZN")
    page.get_by_label("Code 1", exact=True).fill(f"{pzn[:7]}{(int(pzn[7]) + 1) % 10}")
    page.get_by_label("Schedule").select_option(label="Schedule IV")
    page.get_by_role("button", name="Add this medication").click()
    expect(page.get_by_label("Price")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#price-error")).to_contain_text("at most 2 decimals (e.g. 4.20)")
    expect(page.locator("#code-0-error")).to_contain_text("check digit is wrong")
    expect(page.get_by_label("Name")).to_have_value(name)
    at_both_widths(page, "catalogue-medication-errors")
    # Those right, inventory's own rule: a controlled medication is prescription-only.
    page.get_by_label("Price").fill("3.90")
    page.get_by_label("Code 1", exact=True).fill(pzn)
    page.get_by_role("button", name="Add this medication").click()
    expect(page.locator("#schedule-error")).to_contain_text("(schedule IV) is prescription-only")
    expect(page.get_by_label("Schedule")).to_have_value("IV")
    page.get_by_label("Schedule").select_option(label="Not controlled")
    page.get_by_role("button", name="Add this medication").click()
    expect(page.get_by_role("status")).to_contain_text(f"{name} 500 mg, tablet, was added to the catalogue.")

    # Found by its name's start, with its code; then its price changed.
    page.get_by_label("Name starts with").fill(name[:14])
    page.get_by_role("button", name="Search the catalogue").click()
    row = page.get_by_role("row", name=re.compile(name))
    expect(row).to_contain_text(f"PZN {pzn}")
    expect(row).to_contain_text("3.90")
    expect(row).to_contain_text("Not controlled")
    at_both_widths(page, "catalogue-search")
    page.get_by_role("link", name=f"Edit {name} 500 mg, tablet").click()
    expect(page).to_have_url(re.compile(r"/catalogue/[0-9a-f-]{36}$"))
    medication_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_label("Code 1", exact=True)).to_have_value(pzn)
    at_both_widths(page, "catalogue-medication-edit")
    page.get_by_label("Price").fill("4.20")
    page.get_by_role("button", name=f"Save the changes to {name} 500 mg").click()
    expect(page.get_by_role("status")).to_contain_text(f"{name} 500 mg, tablet, was changed.")
    entry = api.http.get(f"/medications/{medication_id}", headers=admin).json()
    assert (entry["price"], entry["codes"], entry["schedule"]) == (
        4.2,
        [{"system": "http://fhir.de/CodeSystem/ifa/pzn", "code": pzn}],
        None,
    )

    # Stocked at the new pharmacy, on the stock page.
    page.get_by_role("link", name="Catalogue and stock").click()
    page.get_by_label("Find a medication to stock at Riverside Pharmacy").fill(name)
    page.get_by_label(f"Units for sale of {name} 500 mg").fill("10")
    page.get_by_role("button", name=f"Save the stock of {name} 500 mg").click()
    expect(page.get_by_role("status")).to_contain_text(f"The stock of {name} 500 mg was changed.")
    page.get_by_role("button", name="Sign out").click()

    # A patient finds it and pays for an order of it.
    email = register(page)
    add_card(page)
    shop = Shop(pharmacy_id, medication_id, latitude, longitude, 4.2)
    order_from_the_catalogue(page, name, shop, quantity=2)
    page.get_by_role("button", name="See the price").click()
    expect(page.locator("#quote")).to_contain_text("8.40")
    page.get_by_role("button", name="Place the order").click()
    expect(page).to_have_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    order_id = page.url.rsplit("/", 1)[1]
    patient = api.token(email, PASSWORD)
    confirmed = api.wait_for_status(order_id, patient, {"CONFIRMED"})
    assert [(line["medication_id"], line["quantity"]) for line in confirmed["lines"]] == [(medication_id, 2)]
    assert confirmed["pharmacy_id"] == pharmacy_id
    page.get_by_role("button", name="Sign out").click()

    # Taken out of the catalogue again: gone from it, the paid order keeping its record.
    sign_in(page, str(user["email"]))
    page.goto(f"/catalogue/{medication_id}")
    page.get_by_role("button", name=f"Remove {name} 500 mg from the catalogue").click()
    expect(page.get_by_role("status")).to_contain_text(f"Medication {medication_id[:8]} was removed")
    assert api.http.get(f"/medications/{medication_id}", headers=admin).status_code == 404
    page.get_by_label("Name starts with").fill(name)
    page.get_by_role("button", name="Search the catalogue").click()
    expect(page.get_by_text(f"No medication in the catalogue starts with “{name}”.")).to_be_visible()
    assert api.http.get(f"/orders/{order_id}", headers=patient).json()["status"] == "CONFIRMED"
    assert violations == []
