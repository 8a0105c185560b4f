"""The patient's prescription and card pages driven as the wrong user, with a real session and its CSRF
token: another patient's prescription and card are not found (and stay as they were), staff are
forbidden the patient's pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Api, add_card, new_pharmacist, open_shop, prescription_body, scan, upload

from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A signed-in session on the web pages, as a browser keeps it: its cookies and CSRF token. The
    cookies are kept here: outside development they are `Secure`, which httpx sends over HTTPS only,
    and a browser also to 127.0.0.1."""

    def __init__(self, base_url: str, email: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.cookies: dict[str, str] = {}
        form = self.get("/sign-in")
        signed_in = self.post("/sign-in", email=email, password=PASSWORD, csrf_token=self.token_in(form.text))
        assert signed_in.status_code == 303, signed_in.text
        # Any page of theirs carries it (the sign-out form): their home, wherever it leads.
        home = self.get("/")
        while home.status_code == 303:
            home = self.get(home.headers["location"])
        self.csrf = self.token_in(home.text)

    @staticmethod
    def token_in(html: str) -> str:
        found = CSRF.search(html)
        assert found is not None, html[:500]
        return found.group(1)

    def kept(self, answer: httpx.Response) -> httpx.Response:
        for header in answer.headers.get_list("set-cookie"):
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            if "max-age=0" in attributes.lower().replace(" ", ""):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value.strip('"')
        return answer

    def headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def get(self, path: str) -> httpx.Response:
        return self.kept(self.http.get(path, headers=self.headers()))

    def post(self, path: str, **data: Any) -> httpx.Response:
        """The form as sent from one of their pages (with the session's CSRF token, unless given)."""
        form = {"csrf_token": getattr(self, "csrf", ""), **data}
        return self.kept(self.http.post(path, data=form, headers=self.headers()))

    def forged(self, path: str) -> httpx.Response:
        """The form as another site would send it: the cookie goes with it, no token."""
        return self.kept(self.http.post(path, data={}, headers=self.headers()))


@pytest.fixture
def browsers(platform: Platform) -> Iterator[list[Browser]]:
    opened: list[Browser] = []
    yield opened
    for browser in opened:
        browser.http.close()


def signed_in(platform: Platform, browsers: list[Browser], email: str) -> Browser:
    browser = Browser(platform.url, email)
    browsers.append(browser)
    return browser


def test_another_patients_prescription_is_not_found_on_every_page_and_form_and_stays(
    api: Api, admin: dict[str, str], platform: Platform, browsers: list[Browser]
) -> None:
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    _, owner = api.new_patient()
    card = add_card(api, owner)
    body = {**prescription_body(shop, card), "document_id": scan(api, owner)}
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
    stranger_user, stranger_headers = api.new_patient()
    stranger = signed_in(platform, browsers, stranger_user["email"])
    their_card = add_card(api, stranger_headers)

    assert stranger.get(f"/prescriptions/{prescription_id}").status_code == 404
    answered = stranger.post(f"/prescriptions/{prescription_id}/answer", answer="For me")
    refilled = stranger.post(
        f"/prescriptions/{prescription_id}/refill",
        latitude=str(shop.latitude),
        longitude=str(shop.longitude),
        payment_method_id=their_card,
    )
    withdrawn = stranger.post(f"/prescriptions/{prescription_id}/withdraw")

    assert (answered.status_code, refilled.status_code, withdrawn.status_code) == (404, 404, 404)
    assert "Not Found" in withdrawn.text
    assert prescription_id not in stranger.get("/prescriptions").text
    still = api.http.get(f"/prescriptions/{prescription_id}", headers=owner).json()
    assert (still["status"], still["question"]) == ("ON_HOLD", "Who is it for?")


def test_another_patients_card_is_not_found_and_is_still_theirs(
    api: Api, platform: Platform, browsers: list[Browser]
) -> None:
    _, owner = api.new_patient()
    card = add_card(api, owner)
    stranger_user, _ = api.new_patient()
    stranger = signed_in(platform, browsers, stranger_user["email"])

    removed = stranger.post(f"/cards/{card}/remove")

    assert removed.status_code == 404
    assert [m["id"] for m in api.http.get("/payment-methods", headers=owner).json()["items"]] == [card]


def test_a_removal_without_its_csrf_token_is_refused_and_the_card_stays(
    api: Api, platform: Platform, browsers: list[Browser]
) -> None:
    user, headers = api.new_patient()
    card = add_card(api, headers)
    owner = signed_in(platform, browsers, user["email"])

    forged = owner.forged(f"/cards/{card}/remove")

    assert forged.status_code == 403
    assert [m["id"] for m in api.http.get("/payment-methods", headers=headers).json()["items"]] == [card]


@pytest.mark.parametrize("role", ["pharmacist", "courier"])
def test_staff_are_forbidden_the_patients_prescription_pages(
    api: Api, admin: dict[str, str], platform: Platform, browsers: list[Browser], role: str
) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    prescription_id = upload(api, patient, shop, card, quantity=1)["id"]
    user, _ = api.new_patient()
    made = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": role})
    assert made.status_code == 200, made.text
    staff = signed_in(platform, browsers, user["email"])

    pages = ["/prescriptions", f"/prescriptions/{prescription_id}", "/prescriptions/scan", "/cards"]
    forms = [
        (f"/prescriptions/{prescription_id}/answer", {"answer": "x"}),
        (f"/prescriptions/{prescription_id}/withdraw", {}),
        (f"/prescriptions/{prescription_id}/refill", {"payment_method_id": card}),
        ("/prescriptions/scan/confirm", {"document_id": "doc"}),
        (f"/cards/{card}/remove", {}),
    ]

    assert {path: staff.get(path).status_code for path in pages} == dict.fromkeys(pages, 403)
    assert {path: staff.post(path, **data).status_code for path, data in forms} == {
        path: 403 for path, _ in forms
    }
    assert api.http.get(f"/prescriptions/{prescription_id}", headers=patient).status_code == 200
    assert [m["id"] for m in api.http.get("/payment-methods", headers=patient).json()["items"]] == [card]


def test_an_order_form_sent_again_with_other_lines_says_it_placed_an_order_and_links_to_my_orders(
    api: Api, admin: dict[str, str], platform: Platform, browsers: list[Browser]
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
    browser = signed_in(platform, browsers, user["email"])
    placed = browser.post("/prescriptions/new", **form)
    assert placed.status_code == 303, placed.text

    # Back in the browser, a quantity changed, the same form sent again.
    again = browser.post("/prescriptions/new", **{**form, "quantity": "2"})

    assert again.status_code == 422, again.text
    error = re.search(r'<p class="error" id="lines-error">(.*?)</p>', again.text, re.S)
    assert error is not None, again.text
    assert "This form already placed an order" in error.group(1)
    assert '<a href="/orders">Open My orders</a>' in error.group(1)
    assert "idempotency" not in again.text


def test_a_refused_answer_to_the_pharmacist_is_put_back_in_the_box(
    api: Api, admin: dict[str, str], platform: Platform, browsers: list[Browser]
) -> None:
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
    browser = signed_in(platform, browsers, user["email"])
    too_long = "For my mother, who " + "x" * 2000  # over the 2000 characters an answer may have

    refused = browser.post(f"/prescriptions/{prescription_id}/answer", answer=too_long)

    assert refused.status_code == 422, refused.text
    assert 'id="answer-error"' in refused.text
    assert f">{too_long}</textarea>" in refused.text
    still = api.http.get(f"/prescriptions/{prescription_id}", headers=owner).json()
    assert still["status"] == "ON_HOLD"
