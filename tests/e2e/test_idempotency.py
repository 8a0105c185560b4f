"""Retrying an upload with an Idempotency-Key: one prescription and one order, however often it is sent."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from conftest import Api, add_card, open_shop, prescription_body, upload

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}


def keyed(patient: dict[str, str], key: str) -> dict[str, str]:
    return {**patient, "Idempotency-Key": key}


def listed(api: Api, patient: dict[str, str], resource: str) -> list[dict[str, Any]]:
    answer = api.http.get(f"/{resource}", headers=patient)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def as_first_made(prescription: dict[str, Any]) -> dict[str, Any]:
    # The answer to a retry shows the prescription now: its status may have moved on since.
    return {k: v for k, v in prescription.items() if k != "status"}


def test_an_upload_retried_with_its_key_makes_one_prescription_and_one_order(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    key = secrets.token_urlsafe(16)

    first = upload(api, keyed(patient, key), shop, card, quantity=2)
    again = upload(api, keyed(patient, key), shop, card, quantity=2)

    assert as_first_made(again) == as_first_made(first)
    api.wait_for_status(first["order_id"], patient, TERMINAL)
    assert [p["id"] for p in listed(api, patient, "prescriptions")] == [first["id"]]
    assert [o["id"] for o in listed(api, patient, "orders")] == [first["order_id"]]


def test_a_key_used_again_for_another_upload_is_refused_and_makes_nothing(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    first = upload(api, keyed(patient, "my-upload-1"), shop, card, quantity=2)

    other = api.http.post(
        "/prescriptions", headers=keyed(patient, "my-upload-1"), json=prescription_body(shop, card, 3)
    )

    assert other.status_code == 422, other.text
    assert other.headers["content-type"] == PROBLEM
    assert "idempotency key was already used" in other.json()["detail"]
    api.wait_for_status(first["order_id"], patient, TERMINAL)
    assert [p["id"] for p in listed(api, patient, "prescriptions")] == [first["id"]]
    assert [o["id"] for o in listed(api, patient, "orders")] == [first["order_id"]]


def test_two_patients_choosing_the_same_key_each_get_their_own_prescription(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    made = []
    for _ in range(2):
        _, patient = api.new_patient()
        made.append((patient, upload(api, keyed(patient, "upload-1"), shop, add_card(api, patient), 1)))

    (alice, hers), (bob, his) = made
    assert hers["id"] != his["id"]
    assert hers["order_id"] != his["order_id"]
    assert [p["id"] for p in listed(api, alice, "prescriptions")] == [hers["id"]]
    assert [p["id"] for p in listed(api, bob, "prescriptions")] == [his["id"]]


def test_without_a_key_the_same_upload_twice_makes_two(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    card = add_card(api, patient)

    first, second = (upload(api, patient, shop, card, quantity=1) for _ in range(2))

    assert first["order_id"] != second["order_id"]
    for prescription in (first, second):
        api.wait_for_status(prescription["order_id"], patient, TERMINAL)
    assert {o["id"] for o in listed(api, patient, "orders")} == {first["order_id"], second["order_id"]}


@pytest.mark.parametrize("key", ["", "k" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_refused_before_anything_is_made(
    api: Api, admin: dict[str, str], key: str
) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    body = prescription_body(shop, add_card(api, patient))

    # As bytes: httpx sends only ASCII text as a header value.
    headers = {k.encode(): v.encode() for k, v in patient.items()} | {
        b"Idempotency-Key": key.encode("latin-1")
    }

    answer = api.http.post("/prescriptions", headers=headers, json=body)

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"
    assert listed(api, patient, "prescriptions") == []


def test_openapi_documents_the_idempotency_key_of_an_upload(api: Api) -> None:
    upload_operation = api.http.get("/openapi.json").json()["paths"]["/api/v1/prescriptions"]["post"]

    [header] = [p for p in upload_operation["parameters"] if p["in"] == "header"]

    assert (header["name"], header["required"]) == ("Idempotency-Key", False)
    assert header["schema"]["anyOf"][0]["maxLength"] == 255
