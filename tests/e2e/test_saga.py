"""The whole saga through the gateway, with the five services running as processes."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from conftest import DECLINED_CARD, Api, add_card, open_shop, stock_left, upload

from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e

TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}


def test_prescription_becomes_confirmed_order_and_stock_is_held(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    prescription = upload(api, patient, shop, add_card(api, patient), quantity=3)

    order = api.wait_for_status(prescription["order_id"], patient, TERMINAL)

    assert order["status"] == "CONFIRMED"
    assert order["pharmacy_id"] == shop.pharmacy_id
    assert order["prescription_id"] == prescription["id"]
    assert order["total"] == pytest.approx(3 * shop.price + order["service_fee"] + order["delivery_fee"])
    assert [h["status"] for h in order["history"]] == ["PENDING", "STOCK_RESERVED", "CONFIRMED"]
    assert stock_left(api, patient, shop) == 7
    payments = api.http.get("/payments", headers=patient).json()["items"]
    assert [(p["order_id"], p["status"], p["amount"]) for p in payments] == [
        (order["id"], "AUTHORISED", order["total"])  # taken when a courier picks it up
    ]
    assert api.http.get(f"/prescriptions/{prescription['id']}", headers=patient).json()["status"] == "FILLED"
    # The upload's answer priced it before anything was reserved, as the reservation then did.
    quote = prescription["quote"]
    assert (quote["available"], quote["pharmacy_id"], quote["shortages"]) == (True, shop.pharmacy_id, [])
    assert [(q["medication_id"], q["quantity"], q["unit_price"], q["amount"]) for q in quote["lines"]] == [
        (shop.medication_id, 3, shop.price, pytest.approx(3 * shop.price))
    ]
    assert (quote["service_fee"], quote["delivery_fee"], quote["total"]) == (
        order["service_fee"],
        order["delivery_fee"],
        order["total"],
    )


def test_order_for_more_than_any_pharmacy_has_is_rejected_with_the_reason(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=2)
    _, patient = api.new_patient()
    prescription = upload(api, patient, shop, add_card(api, patient), quantity=5)

    order = api.wait_for_status(prescription["order_id"], patient, TERMINAL)

    assert order["status"] == "REJECTED"
    assert order["shortages"] == [
        {
            "medication_id": shop.medication_id,
            "requested": 5,
            "best_available": 2,
            "reason": "at most 2 available at one pharmacy within 50 km",
        }
    ]
    assert order["history"][-1]["reason"]
    assert stock_left(api, patient, shop) == 2
    # The upload's answer said so at once: priced from the catalogue, no pharmacy, no delivery fee.
    quote = prescription["quote"]
    assert (quote["available"], quote["pharmacy_id"], quote["delivery_fee"], quote["total"]) == (
        False,
        None,
        None,
        None,
    )
    assert quote["lines_total"] == pytest.approx(5 * shop.price)
    assert quote["shortages"] == order["shortages"]
    assert api.http.get("/payments", headers=patient).json()["items"] == []


def test_declined_card_cancels_the_order_and_puts_the_stock_back(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=4)
    _, patient = api.new_patient()
    prescription = upload(api, patient, shop, add_card(api, patient, DECLINED_CARD), quantity=4)

    order = api.wait_for_status(prescription["order_id"], patient, TERMINAL)

    assert order["status"] == "CANCELLED"
    assert "payment declined" in order["history"][-1]["reason"]
    payments = api.http.get("/payments", headers=patient).json()["items"]
    assert [(p["status"], p["last4"]) for p in payments] == [("DECLINED", "0002")]
    # The release travels as an event: wait for it rather than assume it is done.
    api.wait_until(lambda: stock_left(api, patient, shop) == 4, "stock back after the decline")


def test_cancelling_an_unpaid_order_puts_the_stock_back_and_charges_nothing_net(
    api: Api, admin: dict[str, str], platform: Platform
) -> None:
    shop = open_shop(api, admin, quantity=6)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    # With payment_service down, the order waits in STOCK_RESERVED: a deterministic window to cancel in.
    platform.stop_service("payment_service")
    try:
        prescription = upload(api, patient, shop, card, quantity=2)
        reserved = api.wait_for_status(prescription["order_id"], patient, {"STOCK_RESERVED"})
        assert stock_left(api, patient, shop) == 4

        cancelled = api.http.delete(f"/orders/{reserved['id']}", headers=patient)

        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "CANCELLED"
        api.wait_until(lambda: stock_left(api, patient, shop) == 6, "stock back after the cancel")
    finally:
        platform.start_service("payment_service")
        platform.wait_healthy(60)

    # payment_service now sees StockReserved, then OrderCancelled: what it authorised, it voids.
    seen: list[Any] = []

    def voided() -> bool:
        seen[:] = api.http.get("/payments", headers=patient).json()["items"]
        return [p["status"] for p in seen] == ["VOIDED"]

    api.wait_until(voided, "the authorisation voided", lambda: f"payments: {seen}")
    order = api.http.get(f"/orders/{reserved['id']}", headers=patient).json()
    assert order["status"] == "CANCELLED"
    assert (order["captured"], order["refunded"]) == (0, 0)  # never charged, nothing to give back
    assert stock_left(api, patient, shop) == 6


def test_a_paid_order_is_cancelled_before_dispensing_and_nothing_is_taken(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=3)
    _, patient = api.new_patient()
    prescription = upload(api, patient, shop, add_card(api, patient), quantity=1)
    api.wait_for_status(prescription["order_id"], patient, {"CONFIRMED"})
    assert stock_left(api, patient, shop) == 2

    answer = api.http.delete(f"/orders/{prescription['order_id']}", headers=patient)

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "CANCELLED"
    api.wait_until(lambda: stock_left(api, patient, shop) == 3, "the held stock back on sale")
    api.wait_until(
        lambda: (
            [p["status"] for p in api.http.get("/payments", headers=patient).json()["items"]] == ["VOIDED"]
        ),
        "the authorisation voided",
    )


def test_another_patients_records_answer_not_found(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=3)
    _, owner = api.new_patient()
    prescription = upload(api, owner, shop, add_card(api, owner), quantity=1)
    order = api.wait_for_status(prescription["order_id"], owner, TERMINAL)
    payment_id = api.http.get("/payments", headers=owner).json()["items"][0]["id"]
    _, stranger = api.new_patient()

    for path in (
        f"/orders/{order['id']}",
        f"/prescriptions/{prescription['id']}",
        f"/payments/{payment_id}",
    ):
        answer = api.http.get(path, headers=stranger)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"
    assert api.http.delete(f"/orders/{order['id']}", headers=stranger).status_code == 404
    assert api.http.delete(f"/prescriptions/{prescription['id']}", headers=stranger).status_code == 404
    assert api.http.get("/orders", headers=stranger).json()["items"] == []
    assert api.http.get(f"/orders?user_id={order['patient_id']}", headers=stranger).status_code == 403


def test_staff_list_any_patients_records(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=3)
    patient_user, patient = api.new_patient()
    prescription = upload(api, patient, shop, add_card(api, patient), quantity=1)
    api.wait_for_status(prescription["order_id"], patient, TERMINAL)

    for resource in ("orders", "prescriptions", "payments"):
        answer = api.http.get(f"/{resource}?user_id={patient_user['id']}", headers=admin)
        assert answer.status_code == 200, answer.text
        assert [item["patient_id"] for item in answer.json()["items"]] == [patient_user["id"]], resource


def test_registering_an_email_twice_conflicts(api: Api) -> None:
    email = f"twice-{secrets.token_hex(4)}@example.com"
    body = {"email": email, "password": "a long enough password", "full_name": "Twice"}
    assert api.http.post("/auth/register", json=body).status_code == 201

    again = api.http.post("/auth/register", json={**body, "email": email.upper()})

    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["status"] == 409


def test_withdrawing_a_prescription_hides_it(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=3)
    _, patient = api.new_patient()
    prescription = upload(api, patient, shop, add_card(api, patient), quantity=1)
    api.wait_for_status(prescription["order_id"], patient, TERMINAL)

    assert api.http.delete(f"/prescriptions/{prescription['id']}", headers=patient).status_code == 204

    assert api.http.get(f"/prescriptions/{prescription['id']}", headers=patient).status_code == 404
    assert api.http.get("/prescriptions", headers=patient).json()["items"] == []
    # A paid order stands: the medicine was sold against it.
    assert (
        api.http.get(f"/orders/{prescription['order_id']}", headers=patient).json()["status"] == "CONFIRMED"
    )


def test_admin_removes_a_payment_from_view(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=3)
    _, patient = api.new_patient()
    prescription = upload(api, patient, shop, add_card(api, patient), quantity=1)
    api.wait_for_status(prescription["order_id"], patient, TERMINAL)
    payment_id = api.http.get("/payments", headers=patient).json()["items"][0]["id"]

    assert api.http.delete(f"/payments/{payment_id}", headers=patient).status_code == 403
    assert api.http.delete(f"/payments/{payment_id}", headers=admin).status_code == 204

    assert api.http.get(f"/payments/{payment_id}", headers=patient).status_code == 404
    assert api.http.get("/payments", headers=patient).json()["items"] == []
