"""The patient's web pages in a real browser (Debian's chromium through Playwright), against the running
platform: registering, a card, an order priced before it is placed and followed live to the door,
errors beside their fields, sign-out, and the wrong user. axe-core checks every screen."""

from __future__ import annotations

import re

import pytest
from conftest import (
    PASSWORD,
    Api,
    Shop,
    assigned_to,
    available,
    dispensed,
    new_courier,
    open_shop,
    staff_of,
    unique,
)
from playwright.sync_api import Page, ViewportSize, expect
from screens import DESKTOP, PHONE, accessible

from user_service.web.order_pages import SIGNED_OUT

pytestmark = pytest.mark.e2e


def register(page: Page, name: str = "Ada Lovelace") -> str:
    email = f"{unique('web')}@example.com"
    page.goto("/register")
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My orders")
    return email


def add_card(page: Page) -> None:
    page.get_by_role("link", name="My cards").click()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry date (MM/YY)").fill("12/31")
    page.get_by_label("Security code (CVC)").fill("123")
    page.get_by_role("button", name="Add this card").click()
    expect(page.get_by_text("Visa ending in 4242, expires")).to_be_visible()


def medication_name(api: Api, admin: dict[str, str], shop: Shop) -> str:
    return str(api.http.get(f"/medications/{shop.medication_id}", headers=admin).json()["name"])


def order_from_the_catalogue(page: Page, name: str, shop: Shop, quantity: int) -> None:
    page.get_by_role("link", name="New order", exact=True).click()
    page.get_by_label("Find a medication").fill(name[:12])
    page.get_by_role("button", name=f"Add {name} 500 mg").click()
    page.get_by_label(f"Quantity of {name} 500 mg").fill(str(quantity))
    page.get_by_label("Latitude").fill(f"{shop.latitude + 0.01:.4f}")
    page.get_by_label("Longitude").fill(f"{shop.longitude + 0.01:.4f}")


def a_new_patient_ordering(page: Page, api: Api, admin: dict[str, str], quantity: int) -> tuple[Shop, str]:
    """A shop of its own; a patient registered with a card, on the new-order form with one line."""
    shop = open_shop(api, admin, quantity=10)
    name = medication_name(api, admin, shop)
    register(page)
    add_card(page)
    order_from_the_catalogue(page, name, shop, quantity=quantity)
    return shop, name


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_patient_orders_sees_the_price_first_and_follows_the_order_live_to_the_door(
    page: Page, api: Api, admin: dict[str, str], viewport: ViewportSize
) -> None:
    width = "phone" if viewport == PHONE else "desktop"
    page.set_viewport_size(viewport)
    shop = open_shop(api, admin, quantity=10)
    name = medication_name(api, admin, shop)
    page.goto("/register")
    accessible(page, f"register-{width}")
    register(page)
    accessible(page, f"orders-empty-{width}")
    add_card(page)
    accessible(page, f"cards-{width}")

    order_from_the_catalogue(page, name, shop, quantity=2)
    page.get_by_role("button", name="See the price").click()
    quote = page.locator("#quote")
    expect(quote).to_contain_text("The price now")
    expect(quote).to_contain_text(f"{name} 500 mg")
    expect(quote).to_contain_text("8.40")  # two at 4.20, before both fees
    total = re.search(r"Total: (\d+\.\d\d)", quote.inner_text())
    assert total is not None, quote.inner_text()
    accessible(page, f"new-order-{width}")
    page.get_by_role("button", name="Place the order").click()

    expect(page).to_have_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    order_id = page.url.rsplit("/", 1)[1]
    status = page.locator("#order-panel [data-status]")
    # No reload from here on: the page follows the order over server-sent events.
    expect(status).to_have_attribute("data-status", "CONFIRMED", timeout=20_000)
    expect(page.locator("#order-panel")).to_contain_text(f"total {total.group(1)}")
    accessible(page, f"order-paid-{width}")

    pharmacist = staff_of(api, admin, shop)
    _, courier = new_courier(api, admin)
    available(api, courier, shop, north_km=1)
    dispensed(api, pharmacist, shop, order_id)
    expect(status).to_have_attribute("data-status", "READY_FOR_PICKUP", timeout=20_000)
    assigned_to(api, courier, order_id)
    assert api.http.post(f"/deliveries/{order_id}/pickup", headers=courier).status_code == 200
    expect(status).to_have_attribute("data-status", "OUT_FOR_DELIVERY", timeout=20_000)
    handed = api.http.post(
        f"/deliveries/{order_id}/deliver", headers=courier, json={"recipient_name": "Ada Lovelace"}
    )
    assert handed.status_code == 200, handed.text
    expect(status).to_have_attribute("data-status", "DELIVERED", timeout=20_000)
    expect(page.locator("#order-panel .history")).to_contain_text("Delivered")
    expect(page.locator("#order-panel")).to_contain_text("to Ada Lovelace")
    accessible(page, f"order-delivered-{width}")

    page.get_by_role("link", name="All my orders").click()
    expect(page.get_by_role("table")).to_contain_text("Delivered")
    accessible(page, f"orders-{width}")


def test_each_error_is_shown_beside_its_field(page: Page) -> None:
    page.goto("/register")
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create my account").click()

    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#email-error")).to_contain_text("Error:")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-error")).to_contain_text("at least 12 characters")
    expect(page.get_by_label("Full name")).to_have_value("Ada Lovelace")  # kept; the password is not
    accessible(page, "register-errors")

    register(page)
    page.get_by_role("link", name="My cards").click()
    page.get_by_label("Card number").fill("4242 4242 4242 4241")  # fails the Luhn check
    page.get_by_label("Expiry date (MM/YY)").fill("13/31")
    page.get_by_label("Security code (CVC)").fill("12")
    page.get_by_role("button", name="Add this card").click()
    expect(page.locator("#expiry-error")).to_contain_text("MM/YY")
    expect(page.locator("#cvc-error")).to_be_visible()
    expect(page.get_by_label("Card number")).to_have_value("")  # never sent back
    accessible(page, "cards-errors")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill(f"{unique('nobody')}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#email-error")).to_contain_text("Wrong email or password")
    accessible(page, "sign-in-error")


def test_a_bad_quantity_and_a_missing_place_are_each_shown_beside_their_field(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    shop, name = a_new_patient_ordering(page, api, admin, quantity=5000)
    page.get_by_label("Latitude").fill("")
    page.get_by_role("button", name="Place the order").click()

    quantity = page.get_by_label(f"Quantity of {name} 500 mg")
    expect(quantity).to_have_attribute("aria-invalid", "true")
    expect(quantity).to_have_value("5000")  # the line is kept, with what was typed
    expect(page.locator(f"#quantity-{shop.medication_id}-error")).to_contain_text(
        "less than or equal to 1000"
    )
    expect(page.get_by_label("Latitude")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#latitude-error")).to_contain_text("Error:")
    expect(page.get_by_label("Longitude")).not_to_have_attribute("aria-invalid", "true")
    accessible(page, "new-order-errors")

    page.get_by_label(f"Quantity of {name} 500 mg").fill("1")
    page.get_by_label("Latitude").fill(f"{shop.latitude + 0.01:.4f}")
    page.get_by_role("button", name="Place the order").click()
    expect(page).to_have_url(re.compile(r"/orders/[0-9a-f-]{36}$"))


def test_a_signed_out_session_is_over_and_another_patients_order_is_not_found(
    page: Page, api: Api, admin: dict[str, str]
) -> None:
    a_new_patient_ordering(page, api, admin, quantity=1)
    page.get_by_role("button", name="Place the order").click()
    expect(page).to_have_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    order_url = page.url
    session = [c for c in page.context.cookies() if c["name"].endswith("pharmacy_session")]
    assert len(session) == 1
    assert (session[0]["httpOnly"], session[0]["sameSite"]) == (True, "Strict")

    # Signed out in another tab: the order's page stops following the order, and says so.
    other = page.context.new_page()
    other.goto("/orders")
    other.get_by_role("button", name="Sign out").click()
    expect(other.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.locator("#live-note")).to_have_text(SIGNED_OUT)
    other.close()
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    # The old cookie, put back, opens nothing: the session ended in the store, not just in the browser.
    page.context.add_cookies([session[0]])  # type: ignore[list-item]
    page.goto(order_url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    register(page, name="Bob Other")
    answer = page.goto(order_url)
    assert answer is not None
    assert answer.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
    accessible(page, "not-found")
    # Its live stream too: refused before it starts, not an empty stream.
    assert page.request.get(f"{order_url}/live").status == 404


def test_a_form_sent_without_its_csrf_token_is_refused(page: Page) -> None:
    register(page)
    # The session cookie goes with it (the browser's own context), as with a page of another site.
    forged = page.request.post(
        "/cards", form={"card_number": "4242424242424242", "expiry": "12/31", "cvc": "123"}
    )
    assert forged.status == 403
    assert "expired" in forged.text()
    page.goto("/cards")
    expect(page.get_by_text("You have no card yet")).to_be_visible()


def test_the_pages_forbid_inline_script_and_every_other_origin(page: Page) -> None:
    answer = page.goto("/sign-in")
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    register(page)
    page.get_by_role("link", name="New order", exact=True).click()
    page.get_by_label("Find a medication").fill("Ibuprofen")
    expect(page.locator("#results")).not_to_be_empty()
    assert [v for v in violations if "Content Security Policy" in v] == []


def test_the_pages_own_files_are_kept_but_asked_again_each_time(page: Page) -> None:
    # A stylesheet or htmx kept as `no-store` is downloaded again on every page; kept for good, a
    # deployment's new file would wait for the browser's copy to expire.
    for path in ("/static/app.css", "/static/vendor/htmx.min.js"):
        first = page.request.get(path)
        again = page.request.get(path, headers={"If-None-Match": first.headers["etag"]})

        assert (first.status, first.headers["cache-control"]) == (200, "no-cache"), path
        assert again.status == 304, path
