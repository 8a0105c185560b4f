"""A card removed by its patient through the API: gone from their list, refused for new uploads and
refills, another patient's not found, and an order already paid with it keeps its authorisation."""

from __future__ import annotations

import pytest
from conftest import Api, add_card, new_pharmacist, open_shop, prescription_body, upload

pytestmark = pytest.mark.e2e


def cards_of(api: Api, patient: dict[str, str]) -> list[str]:
    answer = api.http.get("/payment-methods", headers=patient)
    assert answer.status_code == 200, answer.text
    return [m["id"] for m in answer.json()["items"]]


def test_a_removed_card_is_no_longer_listed_nor_taken_for_an_upload_or_a_refill(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    kept, removed = add_card(api, patient), add_card(api, patient)
    earlier = upload(api, patient, shop, kept, quantity=1)

    answer = api.http.delete(f"/payment-methods/{removed}", headers=patient)

    assert answer.status_code == 204, answer.text
    assert cards_of(api, patient) == [kept]
    again = api.http.delete(f"/payment-methods/{removed}", headers=patient)
    assert again.status_code == 204, again.text  # removed already: nothing more happens
    refused = api.http.post("/prescriptions", headers=patient, json=prescription_body(shop, removed))
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["payment_method_id"]
    location = {"latitude": shop.latitude, "longitude": shop.longitude}
    refill = api.http.post(
        f"/prescriptions/{earlier['id']}/refills",
        headers=patient,
        json={"delivery_location": location, "payment_method_id": removed},
    )
    assert refill.status_code == 422, refill.text
    assert [e["field"] for e in refill.json()["errors"]] == ["payment_method_id"]


def test_another_patients_card_is_not_found_and_stays(api: Api, admin: dict[str, str]) -> None:
    _, owner = api.new_patient()
    _, stranger = api.new_patient()
    _, pharmacist = new_pharmacist(api, admin)
    card = add_card(api, owner)

    assert api.http.delete(f"/payment-methods/{card}", headers=stranger).status_code == 404
    assert api.http.delete(f"/payment-methods/{card}", headers=pharmacist).status_code == 403
    assert api.http.delete(f"/payment-methods/{card}", headers=admin).status_code == 403
    assert api.http.delete("/payment-methods/no-such-card", headers=owner).status_code == 404
    assert cards_of(api, owner) == [card]


def test_an_order_paid_with_a_card_keeps_its_authorisation_when_the_card_is_removed(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    order_id = upload(api, patient, shop, card, quantity=1)["order_id"]
    assert api.wait_for_status(order_id, patient, {"CONFIRMED", "CANCELLED"})["status"] == "CONFIRMED"

    assert api.http.delete(f"/payment-methods/{card}", headers=patient).status_code == 204

    assert api.http.get(f"/orders/{order_id}", headers=patient).json()["status"] == "CONFIRMED"
    [payment] = [
        p for p in api.http.get("/payments", headers=patient).json()["items"] if p["order_id"] == order_id
    ]
    assert (payment["status"], payment["brand"], payment["last4"]) == ("AUTHORISED", "visa", "4242")
