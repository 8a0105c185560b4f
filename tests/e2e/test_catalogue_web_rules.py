"""The catalogue's web pages (opening a pharmacy, adding, changing and removing a medication) driven as
the wrong user, over HTTP with a real session and its CSRF token: a patient and a courier are refused
every page and form, and nothing is made or changed; an admin may, and a form without the session's
token is refused even to a pharmacist."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Api,
    Shop,
    WebSession,
    new_courier,
    new_pharmacist,
    open_shop,
)

from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e

PHARMACY_FORM = {
    "name": "Intruder Pharmacy",
    "address": "9 Back Alley",
    "latitude": "1.5",
    "longitude": "2.5",
}


def email_of(api: Api, headers: dict[str, str]) -> str:
    return str(api.http.get("/users/me", headers=headers).json()["email"])


def medication_form(name: str, price: str = "9.99") -> dict[str, str | list[str]]:
    return {
        "name": name,
        "strength": "10 mg",
        "form": "tablet",
        "price": price,
        "schedule": "",
        "code_system": [""],
        "code": [""],
    }


def named(api: Api, admin: dict[str, str], prefix: str) -> list[str]:
    found = api.http.get("/medications", headers=admin, params={"name": prefix, "limit": 200})
    assert found.status_code == 200, found.text
    return [m["name"] for m in found.json()["items"]]


def pharmacies_called(api: Api, admin: dict[str, str], name: str) -> int:
    listed = api.http.get("/pharmacies", headers=admin, params={"limit": 200}).json()["items"]
    return sum(p["name"] == name for p in listed)


def refused_everything(session: WebSession, shop: Shop, name: str) -> list[int]:
    pages = [
        session.get("/pharmacies/new"),
        session.get("/catalogue"),
        session.get("/catalogue", q="Ibu"),
        session.get("/catalogue/new"),
        session.get(f"/catalogue/{shop.medication_id}"),
    ]
    forms = [
        session.post("/pharmacies/new", PHARMACY_FORM),
        session.post("/catalogue/new", medication_form(name)),
        session.post(f"/catalogue/{shop.medication_id}", medication_form(name, "0.01")),
        session.post(f"/catalogue/{shop.medication_id}/remove", {}),
    ]
    for answer in pages + forms:
        assert "this needs the role admin or pharmacist</p>" in answer.text, answer.text[:500]
    return [answer.status_code for answer in pages + forms]


@pytest.mark.parametrize("role", ["patient", "courier"])
def test_a_patient_and_a_courier_are_refused_every_catalogue_page_and_form(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession], role: str
) -> None:
    shop = open_shop(api, admin, quantity=10)
    before = api.http.get(f"/medications/{shop.medication_id}", headers=admin).json()
    pharmacies = pharmacies_called(api, admin, PHARMACY_FORM["name"])
    headers = api.new_patient()[1] if role == "patient" else new_courier(api, admin)[1]
    session = web(email_of(api, headers))
    name = f"Forbidden {role} {shop.medication_id[:6]}"

    assert refused_everything(session, shop, name) == [403] * 9
    assert api.http.get(f"/medications/{shop.medication_id}", headers=admin).json() == before
    assert named(api, admin, name) == []
    assert pharmacies_called(api, admin, PHARMACY_FORM["name"]) == pharmacies


def test_a_form_without_the_sessions_token_is_refused_and_an_admin_opens_a_pharmacy(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession], platform: Platform
) -> None:
    shop = open_shop(api, admin, quantity=10)
    before = api.http.get(f"/medications/{shop.medication_id}", headers=admin).json()
    _, pharmacist_headers = new_pharmacist(api, admin)
    pharmacist = web(email_of(api, pharmacist_headers))
    name = f"Forged {shop.medication_id[:6]}"

    forged = [
        pharmacist.post("/catalogue/new", medication_form(name), with_token=False),
        pharmacist.post(
            f"/catalogue/{shop.medication_id}",
            {**medication_form(name), "csrf_token": "x" * 43},
            with_token=False,
        ),
        pharmacist.post(f"/catalogue/{shop.medication_id}/remove", {}, with_token=False),
        pharmacist.post("/pharmacies/new", PHARMACY_FORM, with_token=False),
    ]
    assert [f.status_code for f in forged] == [403] * 4
    assert all("this form has expired" in f.text for f in forged)
    assert api.http.get(f"/medications/{shop.medication_id}", headers=admin).json() == before
    assert named(api, admin, name) == []
    # Nothing opened: the pharmacist is still on no pharmacy's staff.
    assert "You are not on the staff of any pharmacy yet" in pharmacist.get("/stock").text

    # An admin opens one: not its staff, so the confirmation is on the form's page, with its id.
    as_admin = WebSession(platform.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        opened = as_admin.post("/pharmacies/new", {**PHARMACY_FORM, "name": name})
        assert opened.status_code == 303, opened.text
        location = opened.headers["location"]
        assert location.startswith("/pharmacies/new?opened=")
        pharmacy_id = location.rsplit("=", 1)[1]
        confirmed = as_admin.get(location)
        assert f"Pharmacy {pharmacy_id} is open." in confirmed.text
        assert pharmacies_called(api, admin, name) == 1
        # The catalogue is theirs too; a second entry of the same name, strength and form is refused
        # beside its name, as the API refuses it (409).
        assert "Add a medication" in as_admin.get("/catalogue").text
        twin = {**medication_form(before["name"]), "strength": "500 mg", "form": "capsule"}
        again = as_admin.post("/catalogue/new", twin)
        assert again.status_code == 409, again.text
        assert 'id="name-error"' in again.text
        assert "already exists" in again.text
        assert named(api, admin, before["name"]) == [before["name"]]
    finally:
        as_admin.close()
