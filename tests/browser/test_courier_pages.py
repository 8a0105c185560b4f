"""The courier's web pages in a real browser, against the running platform: signing in lands on their
deliveries, going on duty with a position, a delivery appearing without a reload, picking it up, a
wrong PIN shown beside its field and then the right one; a second delivery's failed attempt, and the
refusal to go off duty while it is collected. axe-core checks every screen at phone and desktop width."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Api, Shop, confirmed_order, dispensed, new_courier, open_shop, polled, staff_of
from playwright.sync_api import Page, ViewportSize, expect
from screens import DESKTOP, PHONE, accessible, sign_in

pytestmark = pytest.mark.e2e


def order_of(api: Api, patient: dict[str, str], order_id: str) -> dict[str, Any]:
    answer = api.http.get(f"/orders/{order_id}", headers=patient)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def delivery_card(page: Page, order_id: str) -> Any:
    return page.locator(f'#deliveries [data-delivery="{order_id}"]')


def open_delivery(page: Page, order_id: str) -> None:
    page.get_by_role("link", name=f"Delivery {order_id[:8]}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Delivery {order_id[:8]}")


def the_pin(api: Api, patient: dict[str, str], order_id: str) -> str:
    """What the patient tells the courier at the door: the PIN their own view of the order shows."""
    delivery = polled(
        lambda: order_of(api, patient, order_id)["delivery"],
        lambda d: d is not None and d["pin"] is not None,
    )
    assert delivery is not None
    assert delivery["pin"] is not None, delivery
    return str(delivery["pin"])


def collected(page: Page, api: Api, shop: Shop, pharmacist: dict[str, str]) -> tuple[dict[str, str], str]:
    """A new order dispensed at the shop, seen arriving on the courier's list and picked up there."""
    patient, order_id = confirmed_order(api, shop)
    dispensed(api, pharmacist, shop, order_id)
    expect(delivery_card(page, order_id)).to_have_attribute("data-status", "ASSIGNED", timeout=20_000)
    open_delivery(page, order_id)
    page.get_by_role("button", name="I have picked it up").click()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "OUT_FOR_DELIVERY")
    return patient, order_id


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_courier_goes_on_duty_sees_a_delivery_arrive_and_hands_it_over_on_the_pin(
    page: Page, api: Api, admin: dict[str, str], viewport: ViewportSize
) -> None:
    width = "phone" if viewport == PHONE else "desktop"
    page.set_viewport_size(viewport)
    # Over 100.00: handed over on the patient's PIN only.
    shop = open_shop(api, admin, quantity=10, price="60.00")
    patient, order_id = confirmed_order(api, shop, quantity=2)
    pharmacist = staff_of(api, admin, shop)
    courier_user, courier = new_courier(api, admin)

    sign_in(page, courier_user["email"])
    expect(page).to_have_url(re.compile(r"/courier$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My deliveries")
    expect(page.locator("[data-available]")).to_have_attribute("data-available", "no")
    expect(page.get_by_text("No delivery yet")).to_be_visible()
    accessible(page, f"courier-off-duty-{width}")

    page.get_by_label("On duty: I take deliveries").check()
    page.get_by_label("Latitude").fill(f"{shop.latitude + 1 / 111:.5f}")
    page.get_by_label("Longitude").fill(f"{shop.longitude:.5f}")
    page.get_by_role("button", name="Save my status").click()
    expect(page.get_by_role("status").filter(has_text="Your status is saved")).to_be_visible()
    expect(page.locator("[data-available]")).to_have_attribute("data-available", "yes")
    me = api.http.get("/couriers/me", headers=courier).json()
    assert (me["available"], round(me["latitude"], 5)) == (True, round(shop.latitude + 1 / 111, 5))
    accessible(page, f"courier-on-duty-{width}")

    # No reload from here on: the list asks again every few seconds.
    dispensed(api, pharmacist, shop, order_id)
    card = delivery_card(page, order_id)
    expect(card).to_have_attribute("data-status", "ASSIGNED", timeout=20_000)
    expect(card).to_contain_text(
        f"Corner Pharmacy, 1 High Street, at {shop.latitude:.5f}, {shop.longitude:.5f}"
    )
    expect(card).to_contain_text(f"{shop.latitude + 0.01:.5f}, {shop.longitude + 0.01:.5f}")  # the door
    expect(card).to_contain_text("UTC")  # the window
    expect(card).to_contain_text("The patient's PIN")
    accessible(page, f"courier-deliveries-{width}")

    open_delivery(page, order_id)
    accessible(page, f"courier-delivery-assigned-{width}")
    page.get_by_role("button", name="I have picked it up").click()
    expect(page.get_by_role("status").filter(has_text="Picked up")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "OUT_FOR_DELIVERY")
    accessible(page, f"courier-delivery-collected-{width}")

    pin = the_pin(api, patient, order_id)
    page.get_by_label("Patient's PIN").fill(f"{(int(pin) + 1) % 10_000:04d}")
    page.get_by_role("button", name="Confirm the hand-over").click()
    field = page.get_by_label("Patient's PIN")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#pin-error")).to_contain_text("That PIN is not right")
    expect(page.locator("#pin-error")).to_contain_text("4 tries left")
    expect(field).to_have_value("")  # a PIN is never sent back
    accessible(page, f"courier-wrong-pin-{width}")
    assert order_of(api, patient, order_id)["status"] == "OUT_FOR_DELIVERY"

    field.fill(pin)
    page.get_by_role("button", name="Confirm the hand-over").click()
    expect(page.get_by_role("status").filter(has_text="Delivered")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "DELIVERED")
    # Ended: the API no longer tells the courier where, when or to whom, and the page shows no more.
    expect(page.locator("main")).to_contain_text("Not shown: this delivery has ended")
    expect(page.locator("main")).not_to_contain_text(f"{shop.latitude + 0.01:.5f}")
    accessible(page, f"courier-delivered-{width}")
    assert api.wait_for_status(order_id, patient, {"DELIVERED"})["status"] == "DELIVERED"


def test_a_second_delivery_fails_at_the_door_and_its_courier_stays_on_duty_with_it(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    page.set_viewport_size(PHONE)
    shop = open_shop(api, admin, quantity=10)
    pharmacist = staff_of(api, admin, shop)
    courier_user, courier = new_courier(api, admin)
    sign_in(page, courier_user["email"])
    page.get_by_label("On duty: I take deliveries").check()
    page.get_by_label("Latitude").fill(f"{shop.latitude + 2 / 111:.5f}")
    page.get_by_label("Longitude").fill(f"{shop.longitude:.5f}")
    page.get_by_role("button", name="Save my status").click()
    expect(page.locator("[data-available]")).to_have_attribute("data-available", "yes")

    collected(page, api, shop, pharmacist)
    # Under 100.00: handed over on the recipient's name; the courier is free again.
    page.get_by_label("Recipient's name").fill("Pat Ient")
    page.get_by_role("button", name="Confirm the hand-over").click()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "DELIVERED")
    page.get_by_role("link", name="All my deliveries").click()
    patient, order_id = collected(page, api, shop, pharmacist)

    # The second: collected, so going off duty is refused, said beside the choice.
    page.get_by_role("link", name="All my deliveries").click()
    page.get_by_label("Off duty").check()
    page.get_by_role("button", name="Save my status").click()
    expect(page.locator("#available-error")).to_contain_text("You cannot go off duty now")
    expect(page.locator("#available-error")).to_contain_text("deliver it or record a failed attempt")
    accessible(page, "courier-off-duty-refused-phone")
    assert api.http.get("/couriers/me", headers=courier).json()["available"] is True

    open_delivery(page, order_id)
    page.get_by_role("button", name="Report a failed attempt").click()
    expect(page.locator("#reason-error")).to_contain_text("Choose why")
    page.get_by_label("Reason").select_option(label="No one at home")
    page.get_by_label("Note (optional)").fill("Rang twice, no answer")
    page.get_by_role("button", name="Report a failed attempt").click()
    expect(page.get_by_role("status").filter(has_text="The failed attempt is recorded")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "ATTEMPT_FAILED")
    expect(page.locator(".history")).to_contain_text("No one at home: Rang twice, no answer")
    accessible(page, "courier-attempt-failed-phone")
    page.set_viewport_size(DESKTOP)
    accessible(page, "courier-attempt-failed-desktop")

    delivery = api.http.get(f"/deliveries/{order_id}", headers=courier).json()
    assert delivery["status"] == "ATTEMPT_FAILED"
    assert [(a["reason"], a["note"]) for a in delivery["attempts"]] == [
        ("NO_ONE_HOME", "Rang twice, no answer")
    ]
    order = order_of(api, patient, order_id)
    assert (order["delivery"]["failed_attempts"], order["delivery"]["last_failure"]) == (1, "NO_ONE_HOME")


def test_use_my_location_fills_the_position_from_the_browser_without_breaking_the_policy(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.context.grant_permissions(["geolocation"])
    page.context.set_geolocation({"latitude": 52.52, "longitude": 13.405})
    courier_user, courier = new_courier(api, admin)
    sign_in(page, courier_user["email"])

    page.get_by_role("button", name="Use my location").click()
    expect(page.get_by_label("Latitude")).to_have_value("52.52000")
    expect(page.get_by_label("Longitude")).to_have_value("13.40500")
    expect(page.get_by_text("Your position is filled in")).to_be_visible()
    page.get_by_label("On duty: I take deliveries").check()
    page.get_by_role("button", name="Save my status").click()
    expect(page.locator("[data-available]")).to_have_attribute("data-available", "yes")

    me = api.http.get("/couriers/me", headers=courier).json()
    assert (me["latitude"], me["longitude"]) == (52.52, 13.405)
    assert violations == []
