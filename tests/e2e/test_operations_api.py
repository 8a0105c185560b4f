"""The operator's API (issue 14): an order's saga as the journal holds it, and dead letters listed,
shown, dry-run and redriven. The journal's process answers it all over RabbitMQ; only admins ask."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import DECLINED_CARD, Api, Backing, add_card, held_too_early, open_shop, polled, upload

from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e


def timeline(api: Api, admin: dict[str, str], order_id: str) -> Any:
    return api.http.get(f"/operations/orders/{order_id}/timeline", headers=admin)


def test_an_orders_timeline_shows_every_step_in_order_and_where_it_ended(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=5)
    _, patient = api.new_patient()
    order_id = upload(api, patient, shop, add_card(api, patient, DECLINED_CARD), quantity=1)["order_id"]
    api.wait_for_status(order_id, patient, {"CANCELLED"})

    # The journal archives as events pass: the last one may land a moment after the order's change.
    answer = polled(lambda: timeline(api, admin, order_id), lambda a: a.json().get("ended") is not None)

    assert answer.status_code == 200, answer.text
    saga = answer.json()
    assert [s["type"] for s in saga["steps"]] == [
        "PrescriptionUploaded",
        "OrderCreated",
        "StockReserved",
        "PaymentDeclined",
        "OrderCancelled",
    ]
    assert [s["publisher"] for s in saga["steps"]] == [
        "prescription_service",
        "order_service",
        "inventory_service",
        "payment_service",
        "order_service",
    ]
    assert saga["steps"][0]["step_ms"] == 0
    assert all(s["step_ms"] >= 0 for s in saga["steps"])
    assert saga["total_ms"] == sum(s["step_ms"] for s in saga["steps"])
    assert "declined" in saga["steps"][3]["detail"].lower()
    assert (saga["ended"], saga["waiting"]) == ("CANCELLED", None)


def test_a_saga_that_waits_for_people_says_for_what(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=5)
    _, patient = api.new_patient()
    order_id = upload(api, patient, shop, add_card(api, patient), quantity=1)["order_id"]
    api.wait_for_status(order_id, patient, {"CONFIRMED"})

    answer = polled(
        lambda: timeline(api, admin, order_id),
        lambda a: a.status_code == 200 and a.json()["steps"][-1]["type"] == "OrderConfirmed",
    )

    assert answer.json()["ended"] is None
    assert answer.json()["waiting"] == "paid, waiting for its pharmacy to dispense it"


def test_an_order_the_journal_never_saw_is_not_found(api: Api, admin: dict[str, str]) -> None:
    answer = timeline(api, admin, "00000000-0000-4000-8000-000000000000")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_dry_run_sends_nothing_and_the_redrive_clears_the_dead_letter(
    api: Api, admin: dict[str, str], platform: Platform, backing: Backing
) -> None:
    letter = held_too_early(platform, backing)

    listed = api.http.get("/operations/dead-letters", params={"service": "order_service"}, headers=admin)
    shown = api.http.get(f"/operations/dead-letters/order_service/{letter.message_id}", headers=admin)
    dry = api.http.post(
        "/operations/dead-letters/redrive", headers=admin, json={"message_ids": [letter.message_id]}
    )

    assert listed.status_code == 200, listed.text
    [mine] = [d for d in listed.json()["items"] if d["message_id"] == letter.message_id]
    assert (mine["service"], mine["type"], mine["error_type"]) == (
        "order_service",
        "PrescriptionHeld",
        "RetryLater",
    )
    assert "does not exist" in mine["error"]
    assert mine["attempts"] >= 2
    assert shown.status_code == 200, shown.text
    assert shown.json()["body"]["payload"]["question"] == "Since when?"
    assert shown.json()["headers"]["x-failed-service"] == "order_service"
    assert dry.status_code == 200, dry.text
    assert dry.json() == {
        "dry_run": True,
        "redriven": [
            {
                "service": "order_service",
                "message_id": letter.message_id,
                "queue": f"{platform.namespace}.order_service.events",
            }
        ],
        "not_found": [],
        "failed": [],
    }
    assert letter.message_id in letter.dead_lettered()  # the dry run left it where it was

    letter.make_the_order()
    polled(lambda: api.http.get(f"/orders/{letter.order_id}", headers=admin), lambda a: a.status_code == 200)
    sent = api.http.post(
        "/operations/dead-letters/redrive",
        headers=admin,
        json={"service": "order_service", "message_ids": [letter.message_id], "dry_run": False},
    )

    assert sent.status_code == 200, sent.text
    assert [r["message_id"] for r in sent.json()["redriven"]] == [letter.message_id]
    assert sent.json()["dry_run"] is False
    order = polled(
        lambda: api.http.get(f"/orders/{letter.order_id}", headers=admin).json(),
        lambda o: len(o["history"]) > 1,
    )
    assert "question" in str(order["history"][-1])  # the redriven question was applied
    assert letter.message_id not in letter.dead_lettered()
    after = api.http.get("/operations/dead-letters", params={"service": "order_service"}, headers=admin)
    assert letter.message_id not in [d["message_id"] for d in after.json()["items"]]
    gone = api.http.get(f"/operations/dead-letters/order_service/{letter.message_id}", headers=admin)
    assert gone.status_code == 404
    audited = api.http.get("/audit", params={"action": "operations.redrive"}, headers=admin).json()["items"]
    assert {"dry_run": "false", "redriven": "1"} in [e["details"] for e in audited]
    assert {"dry_run": "true", "redriven": "1"} in [e["details"] for e in audited]


def test_a_redrive_says_which_messages_it_did_not_find(api: Api, admin: dict[str, str]) -> None:
    answer = api.http.post(
        "/operations/dead-letters/redrive",
        headers=admin,
        json={"message_ids": ["nowhere-1"], "dry_run": False},
    )
    unknown = api.http.get("/operations/dead-letters", params={"service": "shipping_service"}, headers=admin)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"dry_run": False, "redriven": [], "not_found": ["nowhere-1"], "failed": []}
    assert unknown.status_code == 422


def test_a_redrive_names_at_most_200_messages(api: Api, admin: dict[str, str]) -> None:
    answer = api.http.post(
        "/operations/dead-letters/redrive",
        headers=admin,
        json={"message_ids": [f"nowhere-{n}" for n in range(201)], "dry_run": False},
    )

    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "message_ids"


def test_the_platforms_health_includes_the_journal(api: Api) -> None:
    answer = api.http.get("/health")

    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"]["journal"] == "up"
    assert answer.json()["services"]["journal"]["checks"] == {"broker": "up", "store": "up"}
