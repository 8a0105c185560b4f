"""The gateway's contract with clients: auth, roles, the catalogue, and errors as problem+json."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from argon2 import PasswordHasher
from conftest import Api, Backing
from pymongo import MongoClient
from pymongo.collection import Collection

from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def test_signed_in_user_reads_their_profile(api: Api) -> None:
    user, headers = api.new_patient()

    me = api.http.get("/users/me", headers=headers)

    assert me.status_code == 200
    assert me.json() == user
    assert user["role"] == "patient"
    assert "password_hash" not in me.text


def test_requests_without_a_valid_token_are_refused(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = api.http.get("/orders", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["content-type"] == PROBLEM
        assert answer.headers["www-authenticate"] == "Bearer"


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(api: Api) -> None:
    user, _ = api.new_patient()
    wrong = api.http.post(
        "/auth/token", data={"username": user["email"], "password": "not the password at all"}
    )
    unknown = api.http.post(
        "/auth/token", data={"username": "nobody@example.com", "password": "whatever it is"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_a_hash_made_with_weaker_parameters_is_renewed_at_the_next_sign_in(
    api: Api, platform: Platform, backing: Backing
) -> None:
    user, _ = api.new_patient()
    password = "a long enough password"  # as Api.new_patient registers
    # As an older release stored it: argon2id with an eighth of today's memory and one pass.
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(password)
    client: MongoClient[dict[str, Any]] = MongoClient(backing.mongodb_url)
    with client:
        users: Collection[dict[str, Any]] = client[platform.database("user_service")]["users"]
        users.update_one({"_id": user["id"]}, {"$set": {"password_hash": weak}})

        wrong = api.http.post("/auth/token", data={"username": user["email"], "password": "not it"})
        unchanged = users.find_one({"_id": user["id"]}) or {}
        api.token(user["email"], password)
        renewed = users.find_one({"_id": user["id"]}) or {}
    api.token(user["email"], password)  # the new hash verifies too

    assert wrong.status_code == 401
    assert unchanged["password_hash"] == weak  # a wrong password renews nothing
    assert renewed["password_hash"] != weak
    assert renewed["password_hash"].startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(renewed["password_hash"])


def test_weak_passwords_are_refused_with_the_field(api: Api) -> None:
    email = f"weak-{secrets.token_hex(3)}@example.com"
    for password in ("short", email):
        answer = api.http.post(
            "/auth/register", json={"email": email, "password": password, "full_name": "W"}
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "password"
    assert api.http.post("/auth/token", data={"username": email, "password": "short"}).status_code == 401


def test_invalid_bodies_name_every_field_at_fault(api: Api) -> None:
    answer = api.http.post("/auth/register", json={"email": "not-an-email", "full_name": "", "extra": 1})

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert {e["field"] for e in answer.json()["errors"]} == {"email", "password", "full_name", "extra"}


def test_patients_cannot_manage_the_catalogue(api: Api) -> None:
    _, patient = api.new_patient()
    answers = [
        api.http.post(
            "/pharmacies", headers=patient, json={"name": "P", "address": "A", "latitude": 1, "longitude": 1}
        ),
        api.http.post(
            "/medications",
            headers=patient,
            json={
                "name": "X",
                "strength": "1 mg",
                "form": "tablet",
                "price": "1.00",
                "prescription_only": False,
            },
        ),
        api.http.put("/pharmacies/x/stock/y", headers=patient, json={"quantity": 1}),
        api.http.get("/users", headers=patient),
    ]
    assert [a.status_code for a in answers] == [403, 403, 403, 403]
    assert all(a.headers["content-type"] == PROBLEM for a in answers)


def test_admin_grants_the_pharmacist_role(api: Api, admin: dict[str, str]) -> None:
    user, headers = api.new_patient()
    granted = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": "pharmacist"})
    assert granted.status_code == 200
    assert granted.json()["role"] == "pharmacist"

    created = api.http.post(
        "/pharmacies",
        headers=headers,
        json={"name": "By a pharmacist", "address": "2 Low St", "latitude": 10, "longitude": 10},
    )

    assert created.status_code == 201
    assert api.http.patch("/users/nobody", headers=admin, json={"role": "admin"}).status_code == 404


def test_medication_lifecycle(api: Api, admin: dict[str, str]) -> None:
    name = f"Ibuprofen {secrets.token_hex(3)}"
    body = {"name": name, "strength": "200 mg", "form": "tablet", "price": "2.50", "prescription_only": False}
    created = api.http.post("/medications", headers=admin, json=body)
    assert created.status_code == 201
    medication = created.json()
    assert {k: medication[k] for k in body} == {**body, "price": 2.5}

    assert api.http.post("/medications", headers=admin, json=body).status_code == 409
    patched = api.http.patch(f"/medications/{medication['id']}", headers=admin, json={"price": "3.10"})
    assert patched.status_code == 200
    assert patched.json()["price"] == 3.1
    assert api.http.get(f"/medications/{medication['id']}", headers=admin).json()["price"] == 3.1

    assert api.http.delete(f"/medications/{medication['id']}", headers=admin).status_code == 204
    gone = api.http.get(f"/medications/{medication['id']}", headers=admin)
    assert gone.status_code == 404
    assert gone.headers["content-type"] == PROBLEM
    listed = api.http.get("/medications?limit=200", headers=admin).json()["items"]
    assert medication["id"] not in {m["id"] for m in listed}


def test_renaming_a_medication_to_another_ones_name_strength_and_form_conflicts(
    api: Api, admin: dict[str, str]
) -> None:
    name = f"Cetirizine {secrets.token_hex(3)}"
    first = {"name": name, "strength": "10 mg", "form": "tablet", "price": "1.90", "prescription_only": False}
    second = {**first, "strength": "5 mg"}
    assert api.http.post("/medications", headers=admin, json=first).status_code == 201
    other = api.http.post("/medications", headers=admin, json=second)
    assert other.status_code == 201

    renamed = api.http.patch(
        f"/medications/{other.json()['id']}",
        headers=admin,
        json={"name": name, "strength": "10 mg", "form": "tablet"},
    )

    assert renamed.status_code == 409, renamed.text
    assert renamed.headers["content-type"] == PROBLEM
    assert renamed.json()["status"] == 409
    assert api.http.get(f"/medications/{other.json()['id']}", headers=admin).json()["strength"] == "5 mg"


def test_availability_lists_pharmacies_nearest_first(api: Api, admin: dict[str, str]) -> None:
    medication = api.http.post(
        "/medications",
        headers=admin,
        json={
            "name": f"Cetirizine {secrets.token_hex(3)}",
            "strength": "10 mg",
            "form": "tablet",
            "price": "1.99",
            "prescription_only": False,
        },
    ).json()
    ids = []
    for name, latitude, quantity in (("Far", 48.2, 5), ("Near", 48.0, 7), ("Empty", 48.01, 0)):
        pharmacy = api.http.post(
            "/pharmacies",
            headers=admin,
            json={"name": name, "address": "Main St", "latitude": latitude, "longitude": 11.0},
        ).json()
        api.http.put(
            f"/pharmacies/{pharmacy['id']}/stock/{medication['id']}",
            headers=admin,
            json={"quantity": quantity},
        )
        ids.append(pharmacy["id"])

    answer = api.http.get(
        f"/medications/{medication['id']}/availability?latitude=48.0&longitude=11.0", headers=admin
    )

    assert answer.status_code == 200
    assert [(p["pharmacy_name"], p["quantity"]) for p in answer.json()] == [("Near", 7), ("Far", 5)]
    assert answer.json()[0]["distance_km"] < answer.json()[1]["distance_km"]


def test_prescription_naming_unknown_things_is_refused_with_the_field(
    api: Api, admin: dict[str, str]
) -> None:
    _, patient = api.new_patient()
    card = api.http.post(
        "/payment-methods",
        headers=patient,
        json={"card_number": "4242424242424242", "exp_month": 1, "exp_year": 2035, "cvc": "999"},
    ).json()
    body = {
        "lines": [{"medication_id": "no-such-medication", "quantity": 1}],
        "delivery_location": {"latitude": 1.0, "longitude": 1.0},
        "payment_method_id": card["id"],
    }
    unknown_medication = api.http.post("/prescriptions", headers=patient, json=body)
    unknown_card = api.http.post(
        "/prescriptions", headers=patient, json={**body, "payment_method_id": "nope"}
    )

    assert unknown_medication.status_code == 422
    assert unknown_medication.json()["errors"][0]["field"] == "lines.0.medication_id"
    assert unknown_card.status_code == 422
    assert unknown_card.json()["errors"][0]["field"] == "payment_method_id"
    assert api.http.get("/prescriptions", headers=patient).json()["items"] == []


def test_invalid_cards_are_refused_and_numbers_never_echoed(api: Api) -> None:
    _, patient = api.new_patient()
    cases = {
        "card_number": {"card_number": "4242424242424241", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        "exp_year": {"card_number": "4242424242424242", "exp_month": 1, "exp_year": 2020, "cvc": "123"},
        "cvc": {"card_number": "378282246310005", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    }
    for field, body in cases.items():
        answer = api.http.post("/payment-methods", headers=patient, json=body)
        assert answer.status_code == 422, field
        assert answer.json()["errors"][0]["field"] == field
        assert str(body["card_number"]) not in answer.text
    accepted = api.http.post(
        "/payment-methods",
        headers=patient,
        json={"card_number": "5555 5555 5555 4444", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    )
    assert accepted.status_code == 201
    assert {k: accepted.json()[k] for k in ("brand", "last4")} == {"brand": "mastercard", "last4": "4444"}
    assert "5555" not in accepted.text.replace('"last4":"4444"', "")


def test_openapi_documents_every_resource(api: Api) -> None:
    paths = api.http.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/users/me",
        "/api/v1/pharmacies",
        "/api/v1/medications/{medication_id}",
        "/api/v1/pharmacies/{pharmacy_id}/stock/{medication_id}",
        "/api/v1/medications/{medication_id}/availability",
        "/api/v1/payment-methods",
        "/api/v1/prescriptions/{prescription_id}",
        "/api/v1/orders/{order_id}",
        "/api/v1/payments/{payment_id}",
        "/api/v1/users/search",
        "/api/v1/operations/orders/{order_id}/timeline",
        "/api/v1/operations/dead-letters",
        "/api/v1/operations/dead-letters/{service}/{message_id}",
        "/api/v1/operations/dead-letters/redrive",
    ):
        assert path in paths, path
