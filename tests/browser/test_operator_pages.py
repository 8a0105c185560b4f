"""The operator's (admin's) web pages in a real browser, against a platform of their own (so its dead
letters are only this test's): signing in, an order's saga to its door, a dead letter dry-run and then
redriven, a role changed and a pharmacist put on a staff, the services' health and the audit log.
axe-core checks every screen, at a desktop's width and a phone's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Api,
    Backing,
    add_card,
    assigned_to,
    available,
    dispensed,
    held_too_early,
    new_courier,
    open_shop,
    polled,
    staff_of,
    started_platform,
    upload,
)
from playwright.sync_api import Page, ViewportSize, expect
from screens import DESKTOP, PHONE, accessible, sign_in

from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own_platform(backing: Backing) -> Iterator[Platform]:
    with started_platform(backing, "operator") as platform:
        yield platform


@pytest.fixture(scope="module")
def own_api(own_platform: Platform) -> Iterator[Api]:
    api = Api(own_platform.url)
    yield api
    api.http.close()


def delivered_order(api: Api, admin: dict[str, str]) -> str:
    """An order taken through its whole saga, to the patient's door."""
    shop = open_shop(api, admin, quantity=5)
    _, patient = api.new_patient()
    order_id = str(upload(api, patient, shop, add_card(api, patient), quantity=1)["order_id"])
    api.wait_for_status(order_id, patient, {"CONFIRMED"})
    pharmacist = staff_of(api, admin, shop)
    _, courier = new_courier(api, admin)
    available(api, courier, shop, north_km=1)
    dispensed(api, pharmacist, shop, order_id)
    assigned_to(api, courier, order_id)
    assert api.http.post(f"/deliveries/{order_id}/pickup", headers=courier).status_code == 200
    handed = api.http.post(f"/deliveries/{order_id}/deliver", headers=courier, json={"recipient_name": "Ada"})
    assert handed.status_code == 200, handed.text
    api.wait_for_status(order_id, patient, {"DELIVERED"})
    return order_id


def sign_in_as_admin(page: Page, platform: Platform) -> None:
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD, at=platform.url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Operations")
    expect(page).to_have_url(re.compile(r"/admin$"))


def test_an_operator_follows_a_saga_redrives_a_dead_letter_and_changes_a_role(
    page: Page, own_platform: Platform, own_api: Api, backing: Backing
) -> None:
    api = own_api
    admin = api.token(ADMIN_EMAIL, ADMIN_PASSWORD)
    page.set_viewport_size(DESKTOP)
    order_id = delivered_order(api, admin)
    # The journal archives as events pass: wait until it holds the saga's last step.
    polled(
        lambda: api.http.get(f"/operations/orders/{order_id}/timeline", headers=admin).json(),
        lambda saga: saga.get("ended") == "DELIVERED",
    )

    sign_in_as_admin(page, own_platform)
    accessible(page, "operator-home")
    page.get_by_label("Order id").fill(order_id)
    page.get_by_role("button", name="Show the order's timeline").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Timeline of order {order_id[:8]}")
    expect(page.locator(".ending")).to_have_attribute("data-ended", "DELIVERED")
    expect(page.locator(".ending")).to_contain_text("Ended DELIVERED")
    steps = page.locator("table.timeline tbody tr")
    expect(steps.first).to_contain_text("PrescriptionUploaded")
    expect(steps.first).to_contain_text("prescription_service")
    # The capture of the payment, on pickup, may land after the hand-over: the saga ended all the same.
    for step in ("OrderConfirmed", "OrderDispensed", "DeliveryPickedUp", "DeliveryCompleted"):
        expect(page.locator("table.timeline")).to_contain_text(step)
    accessible(page, "operator-timeline")

    # A question that reached order_service before its order: dead-lettered; then the order arrives.
    letter = held_too_early(own_platform, backing)
    letter.make_the_order()
    polled(lambda: api.http.get(f"/orders/{letter.order_id}", headers=admin), lambda a: a.status_code == 200)
    page.get_by_role("link", name="Dead letters", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dead letters")
    row = page.locator("tbody tr", has_text=letter.message_id)
    expect(row).to_contain_text("PrescriptionHeld")
    expect(row).to_contain_text("RetryLater")
    accessible(page, "operator-dead-letters")
    page.get_by_role("link", name=f"Message {letter.message_id}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Dead letter {letter.message_id}")
    expect(page.locator("pre")).to_contain_text("Since when?")
    accessible(page, "operator-dead-letter")

    page.get_by_role("button", name="Dry run: what a redrive of this message would send").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Redrive: dry run")
    expect(page.get_by_text("Nothing has been sent yet")).to_be_visible()
    expect(page.locator("tbody")).to_contain_text(f"{own_platform.namespace}.order_service.events")
    accessible(page, "operator-redrive-dry-run")
    assert letter.message_id in letter.dead_lettered()  # the dry run sent nothing
    page.get_by_role("button", name="Redrive 1 message now").click()

    expect(page.get_by_role("status")).to_contain_text("1 dead letter sent back")
    expect(page.get_by_text("No dead letters.")).to_be_visible()
    accessible(page, "operator-dead-letters-empty")
    order = polled(
        lambda: api.http.get(f"/orders/{letter.order_id}", headers=admin).json(),
        lambda o: len(o["history"]) > 1,
    )
    assert "question" in str(order["history"][-1])  # the redriven message was applied
    assert letter.message_id not in letter.dead_lettered()

    # Users: a patient becomes a pharmacist, then joins the pharmacy's staff.
    user, _ = api.new_patient()
    shop = open_shop(api, admin, quantity=1)
    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Users and roles")
    page.get_by_label("Find a user by email").fill("nobody-at-all@example.com")
    page.get_by_role("button", name="Find this user").click()
    expect(page.locator("#email-error")).to_contain_text("No user has this email")
    page.get_by_label("Find a user by email").fill(user["email"].upper())
    page.get_by_role("button", name="Find this user").click()
    person = page.locator(f'li[data-user-id="{user["id"]}"]')
    expect(person.locator(".role-now")).to_have_text("patient")
    expect(page.locator("li.person")).to_have_count(1)
    assert user["email"].lower() not in page.url.lower()  # the search was a POST: no email in a URL
    accessible(page, "operator-users")
    person.get_by_label(f"Role of {user['full_name']}").select_option("pharmacist")
    person.get_by_role("button", name="Change the role").click()
    expect(page.get_by_role("status")).to_contain_text("The role was changed")
    person = page.locator(f'li[data-user-id="{user["id"]}"]')
    expect(person.locator(".role-now")).to_have_text("pharmacist")
    granted = api.http.get("/users", params={"role": "pharmacist", "limit": 200}, headers=admin).json()
    assert user["id"] in [u["id"] for u in granted["items"]]

    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("Role", exact=True).select_option("pharmacist")
    page.get_by_role("button", name="Show these users").click()
    person = page.locator(f'li[data-user-id="{user["id"]}"]')
    person.get_by_role("button", name="Add to the pharmacy's staff").click()  # no pharmacy chosen yet
    person = page.locator(f'li[data-user-id="{user["id"]}"]')
    expect(person.locator(f"#pharmacy-{user['id']}-error")).to_contain_text("Choose a pharmacy")
    accessible(page, "operator-users-error")
    person.get_by_label(f"Pharmacy to add {user['full_name']} to").select_option(shop.pharmacy_id)
    person.get_by_role("button", name="Add to the pharmacy's staff").click()
    expect(page.get_by_role("status")).to_contain_text("added to the pharmacy's staff")
    members = api.http.get(f"/pharmacies/{shop.pharmacy_id}/staff", headers=admin).json()["items"]
    assert user["id"] in [m["user_id"] for m in members]

    page.get_by_role("link", name="Health", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Services' health")
    expect(page.locator(".overall")).to_contain_text("All up")
    journal = page.locator("tbody tr", has_text="journal")
    expect(journal).to_contain_text("Up")
    expect(journal).to_contain_text("store: up")
    accessible(page, "operator-health")

    page.get_by_role("link", name="Audit log", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    page.get_by_label("Action", exact=True).fill("user.role_change")
    page.get_by_role("button", name="Show these entries").click()
    entries = page.locator("table.audit tbody tr")
    expect(entries.first).to_contain_text("user.role_change")
    expect(entries.first).to_contain_text(user["id"])
    expect(entries.first).to_contain_text("new_role: pharmacist")
    accessible(page, "operator-audit")
    page.get_by_label("From (UTC)").fill("yesterday")
    page.get_by_role("button", name="Show these entries").click()
    expect(page.locator("#since-error")).to_contain_text("Error:")
    expect(page.get_by_label("Action", exact=True)).to_have_value("user.role_change")  # kept
    accessible(page, "operator-audit-error")


SCREENS = {
    "/admin": "home",
    "/admin/users": "users",
    "/admin/dead-letters": "dead-letters",
    "/admin/health": "health",
    "/admin/audit": "audit",
}


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_operator_screen_fits_the_width_and_finds_nothing_for_axe(
    page: Page, own_platform: Platform, own_api: Api, viewport: ViewportSize
) -> None:
    width = "phone" if viewport == PHONE else "desktop"
    admin = own_api.token(ADMIN_EMAIL, ADMIN_PASSWORD)
    order_id = delivered_order(own_api, admin)
    page.set_viewport_size(viewport)
    sign_in_as_admin(page, own_platform)
    polled(
        lambda: own_api.http.get(f"/operations/orders/{order_id}/timeline", headers=admin).json(),
        lambda saga: saga.get("ended") == "DELIVERED",
    )
    for path, screen in {**SCREENS, f"/admin/orders/{order_id}/timeline": "timeline"}.items():
        answer: Any = page.goto(f"{own_platform.url}{path}")
        assert answer.status == 200, path
        # Nothing wider than the screen (accessible's check): wide tables scroll inside their own region.
        accessible(page, f"operator-{screen}-{width}")
