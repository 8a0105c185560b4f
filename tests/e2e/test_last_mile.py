"""From a paid order to the patient's door, through the gateway with every service running: the
pharmacy dispenses, the nearest free courier is assigned, picks up (the card is charged then), and
hands over with the proof the order needs; failed attempts bring it back, a cancel before pickup
charges nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import (
    Api,
    Shop,
    add_card,
    assigned_to,
    available,
    dispensed,
    new_courier,
    open_shop,
    polled,
    prescription_body,
    staff_of,
)

pytestmark = pytest.mark.e2e


def order_of(api: Api, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    answer = api.http.get(f"/orders/{order_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def payment_of(api: Api, patient: dict[str, str], order_id: str) -> dict[str, Any]:
    (payment,) = [
        p for p in api.http.get("/payments", headers=patient).json()["items"] if p["order_id"] == order_id
    ]
    return dict(payment)


def paid_order(
    api: Api, admin: dict[str, str], *, price: str = "4.20", quantity: int = 3
) -> tuple[Shop, dict[str, str], dict[str, Any]]:
    """A shop, a patient and their order, CONFIRMED: stock held, the card authorised."""
    shop = open_shop(api, admin, quantity=10, price=price)
    _, patient = api.new_patient()
    body = prescription_body(shop, add_card(api, patient), quantity)
    start = datetime.now(UTC) + timedelta(hours=1)
    body["delivery_window"] = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    uploaded = api.http.post("/prescriptions", headers=patient, json=body)
    assert uploaded.status_code == 202, uploaded.text
    order = api.wait_for_status(uploaded.json()["order_id"], patient, {"CONFIRMED", "REJECTED", "CANCELLED"})
    assert order["status"] == "CONFIRMED", order
    return shop, patient, order


def test_an_order_walks_from_paid_to_delivered_with_the_nearest_courier(
    api: Api, admin: dict[str, str]
) -> None:
    shop, patient, order = paid_order(api, admin)
    pharmacist = staff_of(api, admin, shop)
    _, far = new_courier(api, admin)
    near_user, near = new_courier(api, admin)
    available(api, far, shop, north_km=5)
    available(api, near, shop, north_km=1)

    # Paid is not charged: the card is authorised for the lines and both fees.
    assert order["total"] == pytest.approx(3 * shop.price + order["service_fee"] + order["delivery_fee"])
    assert order["service_fee"] > 0
    assert order["delivery_fee"] > 0
    assert order["delivery_window"] is not None
    assert payment_of(api, patient, order["id"])["status"] == "AUTHORISED"

    dispensed(api, pharmacist, shop, order["id"])
    delivery = assigned_to(api, near, order["id"])

    assert delivery["courier_id"] == near_user["id"]
    assert delivery["proof"] == "NAME"
    assert delivery["eta"] is not None
    assert api.http.get(f"/deliveries/{order['id']}", headers=far).status_code == 404
    waiting = order_of(api, patient, order["id"])
    assert waiting["status"] == "READY_FOR_PICKUP"
    assert waiting["dispensed_by"] is not None
    assert waiting["delivery"]["pin"] is None  # a NAME delivery has none

    picked = api.http.post(f"/deliveries/{order['id']}/pickup", headers=near)
    assert picked.status_code == 200, picked.text
    assert shop.medication_id not in picked.text  # a courier sees nothing of what is inside
    api.wait_for_status(order["id"], patient, {"OUT_FOR_DELIVERY"})
    too_late = api.http.delete(f"/orders/{order['id']}", headers=patient)
    assert too_late.status_code == 409, too_late.text
    assert "OUT_FOR_DELIVERY" in too_late.json()["detail"]
    captured = polled(lambda: payment_of(api, patient, order["id"]), lambda p: p["status"] == "CAPTURED")
    assert captured["status"] == "CAPTURED"

    handed = api.http.post(
        f"/deliveries/{order['id']}/deliver", headers=near, json={"recipient_name": "Pat Ient"}
    )
    assert handed.status_code == 200, handed.text
    final = api.wait_for_status(order["id"], patient, {"DELIVERED", "RETURNED", "CANCELLED"})

    assert final["status"] == "DELIVERED"
    assert final["captured"] == pytest.approx(final["total"])
    assert final["delivery"]["recipient_name"] == "Pat Ient"
    assert [h["status"] for h in final["history"]] == [
        "PENDING",
        "STOCK_RESERVED",
        "CONFIRMED",
        "READY_FOR_PICKUP",
        "READY_FOR_PICKUP",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
    ]
    fhir = api.http.get(f"/orders/{order['id']}/fhir", headers=patient)
    assert fhir.status_code == 200, fhir.text
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    assert {e["resource"]["status"] for e in fhir.json()["entry"]} == {"completed"}
    # Free again once delivered.
    me = available(api, near, shop, north_km=1)
    assert me["delivery_id"] is None


def test_once_delivered_its_courier_no_longer_sees_where_or_to_whom_an_admin_still_does(
    api: Api, admin: dict[str, str]
) -> None:
    shop, patient, order = paid_order(api, admin)
    courier_user, courier = new_courier(api, admin)
    available(api, courier, shop, north_km=1)
    dispensed(api, staff_of(api, admin, shop), shop, order["id"])
    carried = assigned_to(api, courier, order["id"])
    assert carried["delivery_location"] is not None  # the job needs it
    assert carried["delivery_window"] is not None
    assert api.http.post(f"/deliveries/{order['id']}/pickup", headers=courier).status_code == 200
    handed = api.http.post(
        f"/deliveries/{order['id']}/deliver", headers=courier, json={"recipient_name": "Pat Ient"}
    )
    assert handed.status_code == 200, handed.text
    api.wait_for_status(order["id"], patient, {"DELIVERED"})

    read = api.http.get(f"/deliveries/{order['id']}", headers=courier)
    listed = api.http.get("/deliveries", headers=courier)
    whole = api.http.get(f"/deliveries/{order['id']}", headers=admin)

    assert read.status_code == listed.status_code == whole.status_code == 200
    [in_list] = [d for d in listed.json()["items"] if d["id"] == order["id"]]
    for seen in (handed.json(), read.json(), in_list):
        assert (seen["status"], seen["proof"], seen["courier_id"]) == (
            "DELIVERED",
            "NAME",
            courier_user["id"],
        )
        assert (seen["delivery_location"], seen["delivery_window"], seen["recipient_name"]) == (
            None,
            None,
            None,
        )
        assert seen["delivered_at"] is not None
        assert seen["pharmacy_id"] == shop.pharmacy_id
    assert "Pat Ient" not in read.text + listed.text
    assert whole.json()["recipient_name"] == "Pat Ient"
    assert whole.json()["delivery_location"] == carried["delivery_location"]
    assert whole.json()["delivery_window"] == carried["delivery_window"]


def test_an_order_over_the_pin_value_needs_the_pin_only_its_patient_sees(
    api: Api, admin: dict[str, str]
) -> None:
    shop, patient, order = paid_order(api, admin, price="60.00", quantity=2)
    pharmacist = staff_of(api, admin, shop)
    _, courier = new_courier(api, admin)
    available(api, courier, shop, north_km=1)
    dispensed(api, pharmacist, shop, order["id"])
    assert assigned_to(api, courier, order["id"])["proof"] == "PIN"
    assert api.http.post(f"/deliveries/{order['id']}/pickup", headers=courier).status_code == 200

    pin = polled(
        lambda: order_of(api, patient, order["id"])["delivery"],
        lambda d: d is not None and d["pin"] is not None,
    )["pin"]
    assert len(pin) == 4
    assert pin.isdigit()
    assert order_of(api, pharmacist, order["id"])["delivery"]["pin"] is None  # never to anyone else
    assert pin not in api.http.get(f"/deliveries/{order['id']}", headers=courier).text

    wrong = f"{(int(pin) + 1) % 10000:04d}"
    keyed = {**courier, "Idempotency-Key": "at-the-door"}
    refused = api.http.post(f"/deliveries/{order['id']}/deliver", headers=keyed, json={"pin": wrong})
    name_only = api.http.post(
        f"/deliveries/{order['id']}/deliver", headers=courier, json={"recipient_name": "Someone Else"}
    )
    # The wrong PIN's key is spent: another PIN under it is another request, refused, not carried out.
    same_key = api.http.post(f"/deliveries/{order['id']}/deliver", headers=keyed, json={"pin": pin})
    right = api.http.post(f"/deliveries/{order['id']}/deliver", headers=courier, json={"pin": pin})

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "pin" in refused.text
    assert name_only.status_code == 422, name_only.text  # never left with a name when a PIN is asked
    assert same_key.status_code == 422, same_key.text
    assert same_key.json()["errors"] == [
        {
            "field": "Idempotency-Key",
            "message": "this Idempotency-Key was already used for another request: send a new key",
        }
    ]
    assert right.status_code == 200, right.text
    assert right.json()["wrong_pins"] == 1
    final = api.wait_for_status(order["id"], patient, {"DELIVERED", "RETURNED", "CANCELLED"})
    assert final["status"] == "DELIVERED"
    assert final["delivery"]["proof"] == "PIN"


def test_two_failed_attempts_return_the_order_and_refund_it(api: Api, admin: dict[str, str]) -> None:
    shop, patient, order = paid_order(api, admin, quantity=2)
    pharmacist = staff_of(api, admin, shop)
    _, courier = new_courier(api, admin)
    available(api, courier, shop, north_km=1)
    dispensed(api, pharmacist, shop, order["id"])
    assigned_to(api, courier, order["id"])
    assert api.http.post(f"/deliveries/{order['id']}/pickup", headers=courier).status_code == 200

    # Sent twice with one Idempotency-Key (an answer lost, the request retried): one attempt, not two.
    keyed = {**courier, "Idempotency-Key": "first-visit"}
    first = api.http.post(f"/deliveries/{order['id']}/fail", headers=keyed, json={"reason": "NO_ONE_HOME"})
    retried = api.http.post(f"/deliveries/{order['id']}/fail", headers=keyed, json={"reason": "NO_ONE_HOME"})
    assert retried.status_code == 200, retried.text
    assert len(retried.json()["attempts"]) == 1
    other = api.http.post(f"/deliveries/{order['id']}/fail", headers=keyed, json={"reason": "REFUSED"})
    assert other.status_code == 422, other.text  # the key was used for another reason
    second = api.http.post(
        f"/deliveries/{order['id']}/fail", headers=courier, json={"reason": "NO_ONE_HOME", "note": "again"}
    )
    coded = api.http.post(f"/deliveries/{order['id']}/fail", headers=courier, json={"reason": "LOST_IT"})

    assert first.status_code == 200, first.text
    assert first.json()["status"] == "ATTEMPT_FAILED"
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "RETURNED"
    assert coded.status_code == 422  # a reason is one of the codes
    final = api.wait_for_status(order["id"], patient, {"DELIVERED", "RETURNED", "CANCELLED"})
    assert final["status"] == "RETURNED"
    assert "DELIVERY_FAILED" in [h["status"] for h in final["history"]]
    refunded = polled(lambda: payment_of(api, patient, order["id"]), lambda p: p["status"] == "REFUNDED")
    assert refunded["status"] == "REFUNDED"
    assert order_of(api, patient, order["id"])["refunded"] == pytest.approx(final["total"])
    # The returned medicine is not put back on sale: 10 stocked, 2 dispensed and brought back.
    stock = polled(
        lambda: api.http.get(
            f"/pharmacies/{shop.pharmacy_id}/stock/{shop.medication_id}", headers=pharmacist
        ).json(),
        lambda s: s.get("returned") == 2,
    )
    assert (stock["quantity"], stock["sold"], stock["returned"]) == (8, 0, 2)
    # Never brought, so never filled: the prescription says so, and a refill would not count as one.
    prescription = polled(
        lambda: api.http.get(f"/prescriptions/{order['prescription_id']}", headers=patient).json(),
        lambda p: p.get("status") == "RETURNED",
    )
    assert prescription["status"] == "RETURNED"


def test_a_cancel_before_dispensing_voids_the_authorisation_and_never_charges(
    api: Api, admin: dict[str, str]
) -> None:
    shop, patient, order = paid_order(api, admin)
    pharmacist = staff_of(api, admin, shop)

    cancelled = api.http.delete(f"/orders/{order['id']}", headers=patient)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    voided = polled(lambda: payment_of(api, patient, order["id"]), lambda p: p["status"] == "VOIDED")
    assert voided["status"] == "VOIDED"
    stock = polled(
        lambda: api.http.get(
            f"/pharmacies/{shop.pharmacy_id}/stock/{shop.medication_id}", headers=pharmacist
        ).json(),
        lambda s: s["reserved"] == 0,
    )
    assert (stock["quantity"], stock["reserved"], stock["sold"]) == (10, 0, 0)  # back on sale, never sold
    late = api.http.post(f"/orders/{order['id']}/dispense", headers=pharmacist)
    assert late.status_code == 409, late.text
    final = order_of(api, patient, order["id"])
    assert (final["captured"], final["status"]) == (0, "CANCELLED")


def test_a_dispensed_order_is_not_cancelled_any_more(api: Api, admin: dict[str, str]) -> None:
    # From READY_FOR_PICKUP the courier's side moves the order: refused at the door, it is RETURNED.
    shop, patient, order = paid_order(api, admin)
    dispensed(api, staff_of(api, admin, shop), shop, order["id"])
    api.wait_for_status(order["id"], patient, {"READY_FOR_PICKUP"})

    refused = api.http.delete(f"/orders/{order['id']}", headers=patient)

    assert refused.status_code == 409, refused.text
    assert "READY_FOR_PICKUP" in refused.json()["detail"]
    assert payment_of(api, patient, order["id"])["status"] == "AUTHORISED"


def test_a_pharmacist_of_another_pharmacy_neither_sees_the_queue_nor_dispenses(
    api: Api, admin: dict[str, str]
) -> None:
    shop, _, order = paid_order(api, admin)
    other_shop = open_shop(api, admin, quantity=1)
    outsider = staff_of(api, admin, other_shop)

    queue = api.http.get(f"/pharmacies/{shop.pharmacy_id}/dispensing", headers=outsider)
    dispense = api.http.post(f"/orders/{order['id']}/dispense", headers=outsider)

    assert queue.status_code == 403, queue.text
    assert dispense.status_code == 403, dispense.text
    assert order_of(api, admin, order["id"])["status"] == "CONFIRMED"


def test_a_courier_going_off_duty_before_pickup_hands_the_order_to_the_next_courier(
    api: Api, admin: dict[str, str]
) -> None:
    shop, patient, order = paid_order(api, admin)
    pharmacist = staff_of(api, admin, shop)
    first_user, first = new_courier(api, admin)
    available(api, first, shop, north_km=1)
    dispensed(api, pharmacist, shop, order["id"])
    assigned_to(api, first, order["id"])
    shown = polled(
        lambda: order_of(api, patient, order["id"])["delivery"],
        lambda d: d is not None and d["courier_id"] is not None,
    )
    assert shown["courier_id"] == first_user["id"]
    next_user, next_one = new_courier(api, admin)
    available(api, next_one, shop, north_km=3)

    off = api.http.put(
        "/couriers/me",
        headers=first,
        json={"available": False, "latitude": shop.latitude, "longitude": shop.longitude},
    )

    assert off.status_code == 200, off.text
    assert (off.json()["available"], off.json()["delivery_id"]) == (False, None)
    assert assigned_to(api, next_one, order["id"])["courier_id"] == next_user["id"]
    assert api.http.get(f"/deliveries/{order['id']}", headers=first).status_code == 404
    view = polled(
        lambda: order_of(api, patient, order["id"]),
        lambda o: o["delivery"]["courier_id"] == next_user["id"],
    )
    assert (view["status"], view["delivery"]["courier_id"]) == ("READY_FOR_PICKUP", next_user["id"])
    assert view["delivery"]["eta"] is not None

    # Collected, it is theirs to deliver: going off duty is refused until it is handed over or failed.
    assert api.http.post(f"/deliveries/{order['id']}/pickup", headers=next_one).status_code == 200
    refused = api.http.put(
        "/couriers/me",
        headers=next_one,
        json={"available": False, "latitude": shop.latitude, "longitude": shop.longitude},
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "deliver it or record a failed attempt" in refused.json()["detail"]


def test_a_courier_reads_their_own_state_once_they_have_said_it(api: Api, admin: dict[str, str]) -> None:
    shop, _, order = paid_order(api, admin)
    pharmacist = staff_of(api, admin, shop)
    user, courier = new_courier(api, admin)
    assert api.http.get("/couriers/me", headers=courier).status_code == 404  # never said: takes none

    available(api, courier, shop, north_km=1)
    dispensed(api, pharmacist, shop, order["id"])
    assigned_to(api, courier, order["id"])
    me = api.http.get("/couriers/me", headers=courier)

    assert me.status_code == 200, me.text
    assert (me.json()["id"], me.json()["available"]) == (user["id"], True)
    assert me.json()["delivery_id"] == order["id"]
    assert me.json()["latitude"] == pytest.approx(shop.latitude + 1 / 111)
    assert api.http.get("/couriers/me", headers=admin).status_code == 403
