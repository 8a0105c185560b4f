"""The courier's web pages driven as the wrong user, with a real session and its CSRF token: a patient
or a pharmacist is refused every courier page and form (403), another courier neither sees nor moves
a delivery not theirs (404), and nothing changed; a form sent twice moves once and answers the same."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import (
    Api,
    Shop,
    WebSession,
    assigned_to,
    available,
    confirmed_order,
    dispensed,
    new_courier,
    new_pharmacist,
    open_shop,
    staff_of,
)

pytestmark = pytest.mark.e2e


def delivery_of(api: Api, courier: dict[str, str], delivery_id: str) -> dict[str, Any]:
    answer = api.http.get(f"/deliveries/{delivery_id}", headers=courier)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def assigned_delivery(api: Api, admin: dict[str, str]) -> tuple[Shop, dict[str, Any], dict[str, str], str]:
    """A paid order of a shop of its own, dispensed and assigned to a new courier (not picked up)."""
    shop = open_shop(api, admin, quantity=10)
    _, order_id = confirmed_order(api, shop)
    user, courier = new_courier(api, admin)
    available(api, courier, shop, north_km=1)
    dispensed(api, staff_of(api, admin, shop), shop, order_id)
    assigned_to(api, courier, order_id)
    return shop, user, courier, order_id


def the_forms(delivery_id: str) -> list[tuple[str, dict[str, str]]]:
    """Every state-changing courier form, filled as the courier would, each with a fresh move key."""
    return [
        ("/courier/status", {"available": "no", "latitude": "1.0", "longitude": "2.0"}),
        (f"/courier/deliveries/{delivery_id}/pickup", {"move_key": "k-pickup"}),
        (
            f"/courier/deliveries/{delivery_id}/deliver",
            {"move_key": "k-deliver", "recipient_name": "Pat Ient"},
        ),
        (f"/courier/deliveries/{delivery_id}/fail", {"move_key": "k-fail", "reason": "NO_ONE_HOME"}),
    ]


def test_a_patient_or_a_pharmacist_is_refused_every_courier_page_and_form(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    _, courier_user, courier, delivery_id = assigned_delivery(api, admin)
    before, state_before = (
        delivery_of(api, courier, delivery_id),
        api.http.get("/couriers/me", headers=courier),
    )
    patient_user, _ = api.new_patient()
    pharmacist_user, _ = new_pharmacist(api, admin)

    for user in (patient_user, pharmacist_user):
        session = web(user["email"])
        for path in ("/courier", "/courier/deliveries", f"/courier/deliveries/{delivery_id}"):
            page = session.get(path)
            assert page.status_code == 403, (user["role"], path, page.status_code)
            assert "this needs the role courier" in page.text
            assert "<h1>Forbidden</h1>" in page.text
        for path, form in the_forms(delivery_id):
            sent = session.post(path, form)
            assert sent.status_code == 403, (user["role"], path, sent.status_code, sent.text[:200])

    assert delivery_of(api, courier, delivery_id) == before
    assert api.http.get("/couriers/me", headers=courier).json() == state_before.json()
    # And the courier themselves may: the same page opens for them.
    session = web(courier_user["email"])
    assert session.get(f"/courier/deliveries/{delivery_id}").status_code == 200


def test_another_courier_neither_sees_nor_moves_a_delivery_not_theirs(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    _, _, courier, delivery_id = assigned_delivery(api, admin)
    assert api.http.post(f"/deliveries/{delivery_id}/pickup", headers=courier).status_code == 200
    before = delivery_of(api, courier, delivery_id)
    other_user, _ = new_courier(api, admin)
    session = web(other_user["email"])

    page = session.get(f"/courier/deliveries/{delivery_id}")
    assert page.status_code == 404, page.text[:300]
    assert delivery_id not in session.get("/courier/deliveries").text
    assert delivery_id not in session.get("/courier").text
    for path, form in the_forms(delivery_id)[1:]:
        sent = session.post(path, form)
        assert sent.status_code == 404, (path, sent.status_code, sent.text[:300])

    assert delivery_of(api, courier, delivery_id) == before
    assert before["status"] == "OUT_FOR_DELIVERY"


def test_a_move_sent_twice_from_one_form_is_carried_out_once_and_answered_the_same(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    _, courier_user, courier, delivery_id = assigned_delivery(api, admin)
    session = web(courier_user["email"])

    def move_key(action: str) -> str:
        page = session.get(f"/courier/deliveries/{delivery_id}").text
        found = re.search(rf'action="[^"]*/{action}".*?name="move_key" value="([^"]+)"', page, re.S)
        assert found is not None, page
        return found.group(1)

    pickup = {"move_key": move_key("pickup")}
    answers = [session.post(f"/courier/deliveries/{delivery_id}/pickup", pickup) for _ in range(2)]
    assert [(a.status_code, a.headers.get("location")) for a in answers] == [
        (303, f"/courier/deliveries/{delivery_id}?done=picked-up")
    ] * 2

    failed = {
        "move_key": move_key("fail"),
        "reason": "NO_ONE_HOME",
        "note": "rang twice",
    }
    answers = [session.post(f"/courier/deliveries/{delivery_id}/fail", failed) for _ in range(2)]
    assert [(a.status_code, a.headers.get("location")) for a in answers] == [
        (303, f"/courier/deliveries/{delivery_id}?done=failed")
    ] * 2

    delivery = delivery_of(api, courier, delivery_id)
    assert delivery["status"] == "ATTEMPT_FAILED"  # one attempt of the two allowed, not both
    assert [(a["reason"], a["note"]) for a in delivery["attempts"]] == [("NO_ONE_HOME", "rang twice")]
    # Each page rendered makes a key of its own: the next attempt is another move.
    assert move_key("fail") != failed["move_key"]


def test_a_courier_form_without_its_csrf_token_is_refused(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    _, courier_user, courier, delivery_id = assigned_delivery(api, admin)
    session = web(courier_user["email"])

    sent = session.post(f"/courier/deliveries/{delivery_id}/pickup", {"move_key": "forged"}, with_token=False)

    assert sent.status_code == 403
    assert "expired" in sent.text
    assert delivery_of(api, courier, delivery_id)["status"] == "ASSIGNED"


def test_the_list_is_sent_again_only_once_it_has_changed(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    pharmacist = staff_of(api, admin, shop)
    courier_user, courier = new_courier(api, admin)
    available(api, courier, shop, north_km=1)
    session = web(courier_user["email"])

    def seen_in(answer: httpx.Response) -> str:
        found = re.search(r'name="seen" value="([0-9a-f]+)"', answer.text)
        assert found is not None, answer.text
        return found.group(1)

    def list_entries() -> int:
        mine = {"actor_id": courier_user["id"], "action": "delivery.list"}
        answer = api.http.get("/audit", headers=admin, params=mine)
        assert answer.status_code == 200, answer.text
        return len(answer.json()["items"])

    seen = seen_in(session.get("/courier/deliveries"))
    assert list_entries() == 1  # the list sent is audited
    for _ in range(3):
        assert session.get("/courier/deliveries", seen=seen).status_code == 204
    assert list_entries() == 1  # polls that showed nothing new are not
    _, order_id = confirmed_order(api, shop)
    dispensed(api, pharmacist, shop, order_id)
    assigned_to(api, courier, order_id)

    changed = session.get("/courier/deliveries", seen=seen)
    assert changed.status_code == 200
    assert f'data-delivery="{order_id}"' in changed.text
    assert seen_in(changed) != seen
    assert list_entries() == 2  # a changed list sent is


def test_going_off_duty_on_the_page_hands_back_a_delivery_not_picked_up(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    shop, courier_user, courier, delivery_id = assigned_delivery(api, admin)
    session = web(courier_user["email"])
    off = {"available": "no", "latitude": f"{shop.latitude}", "longitude": f"{shop.longitude}"}

    sent = session.post("/courier/status", off)

    assert (sent.status_code, sent.headers.get("location")) == (303, "/courier?done=status")
    assert api.http.get("/couriers/me", headers=courier).json()["available"] is False
    assert api.http.get(f"/deliveries/{delivery_id}", headers=courier).status_code == 404
    assert delivery_id not in session.get("/courier").text
    assert session.get(f"/courier/deliveries/{delivery_id}").status_code == 404


def test_a_move_refused_because_the_delivery_moved_meanwhile_is_said_on_the_page(
    api: Api, admin: dict[str, str], web: Callable[[str], WebSession]
) -> None:
    _, courier_user, courier, delivery_id = assigned_delivery(api, admin)
    session = web(courier_user["email"])
    page = session.get(f"/courier/deliveries/{delivery_id}").text
    found = re.search(r'action="[^"]*/pickup".*?name="move_key" value="([^"]+)"', page, re.S)
    assert found is not None, page
    # Picked up meanwhile (another tab, the API): the page's pickup form is out of date.
    assert api.http.post(f"/deliveries/{delivery_id}/pickup", headers=courier).status_code == 200

    sent = session.post(f"/courier/deliveries/{delivery_id}/pickup", {"move_key": found.group(1)})

    assert sent.status_code == 409, sent.text
    alert = re.search(r'<p class="error" role="alert">(.*?)</p>', sent.text, re.S)
    assert alert is not None, sent.text
    assert "not ASSIGNED" in alert.group(1)
    assert 'action="/courier/deliveries/' + delivery_id + '/deliver"' in sent.text  # as it is now
