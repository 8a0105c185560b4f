"""One test per item of the OWASP API Security Top 10 (2023), named after it, on the running platform.

Each attacks the gateway the way the item describes. Wider tests of the same defences live beside
these: test_access (every operation as every role), test_tokens, test_edge, test_sign_in_throttle,
test_idempotency, test_audit_log, test_card_data, test_encryption_at_rest and test_schemathesis.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from typing import Any

import aio_pika
import jwt
import pytest
from conftest import Api, Backing, add_card, dead_letters, open_shop, prescription_body, upload

from contracts import topology
from contracts.events import PrescriptionUploaded
from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def test_api1_2023_broken_object_level_authorization(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, victim = api.new_patient()
    _, attacker = api.new_patient()
    prescription = upload(api, victim, shop, add_card(api, victim), quantity=1)
    order = api.wait_for_status(prescription["order_id"], victim, {"CONFIRMED"})
    payment_id = api.http.get("/payments", headers=victim).json()["items"][0]["id"]

    tries = {
        "read prescription": api.http.get(f"/prescriptions/{prescription['id']}", headers=attacker),
        "withdraw prescription": api.http.delete(f"/prescriptions/{prescription['id']}", headers=attacker),
        "read order": api.http.get(f"/orders/{order['id']}", headers=attacker),
        "cancel order": api.http.delete(f"/orders/{order['id']}", headers=attacker),
        "read payment": api.http.get(f"/payments/{payment_id}", headers=attacker),
    }

    assert {what: answer.status_code for what, answer in tries.items()} == dict.fromkeys(tries, 404)
    after = api.http.get(f"/prescriptions/{prescription['id']}", headers=victim).json()
    assert after["status"] == "FILLED"  # nothing the attacker sent changed it


def test_api2_2023_broken_authentication(api: Api, platform: Platform) -> None:
    user, headers = api.new_patient()
    genuine = headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    header = {"kid": jwt.get_unverified_header(genuine)["kid"]}
    # A token re-signed with a guessed key, one promoted to admin, one unsigned, one expired.
    guessed = jwt.encode({**claims, "role": "admin"}, "secret" * 6, algorithm="HS256", headers=header)
    unsigned = jwt.encode(claims, "", algorithm="none", headers=header)
    body, _, _ = genuine.rpartition(".")
    tampered = f"{body[:-2]}AA.{genuine.rsplit('.', 1)[1]}"

    for forged in (guessed, unsigned, tampered, "x", "Bearer"):
        answer = api.http.get("/users/me", headers={"Authorization": f"Bearer {forged}"})
        assert answer.status_code == 401, forged
        assert answer.headers["content-type"] == PROBLEM
    locked = [
        api.http.post("/auth/token", data={"username": user["email"], "password": f"guess {n}"}).status_code
        for n in range(6)
    ]
    assert locked[-1] == 429  # guessing is throttled before the password is ever checked


def test_api3_2023_broken_object_property_level_authorization(api: Api) -> None:
    _, patient = api.new_patient()

    # Writing properties a client does not own: refused, naming the field, not silently dropped.
    as_admin = api.http.post(
        "/auth/register",
        json={
            "email": f"{secrets.token_hex(4)}@example.com",
            "password": "a long enough password",
            "full_name": "Mallory",
            "role": "admin",
        },
    )
    card = add_card(api, patient)
    someone_elses = api.http.post(
        "/prescriptions",
        headers=patient,
        json={
            "lines": [{"medication_id": "x", "quantity": 1}],
            "delivery_location": {"latitude": 1, "longitude": 1},
            "payment_method_id": card,
            "patient_id": str(uuid.uuid4()),
        },
    )
    # Reading properties a client should not see: no hash, no card number beyond its last four.
    me = api.http.get("/users/me", headers=patient)
    cards = api.http.get("/payment-methods", headers=patient)

    assert as_admin.status_code == 422
    assert [e["field"] for e in as_admin.json()["errors"]] == ["role"]
    assert someone_elses.status_code == 422
    assert [e["field"] for e in someone_elses.json()["errors"]] == ["patient_id"]
    assert set(me.json()) == {"id", "email", "full_name", "role", "created_at"}
    assert "4242424242424242" not in cards.text
    assert "cvc" not in cards.text


def test_api4_2023_unrestricted_resource_consumption(api: Api) -> None:
    _, patient = api.new_patient()

    huge_body = api.http.post("/auth/register", content=b"{" + b" " * (1024 * 1024) + b"}")
    huge_page = api.http.get("/orders", headers=patient, params={"limit": 100_000})
    too_many_lines = api.http.post(
        "/prescriptions",
        headers=patient,
        json={
            "lines": [{"medication_id": f"m{n}", "quantity": 1} for n in range(51)],
            "delivery_location": {"latitude": 1, "longitude": 1},
            "payment_method_id": "card",
        },
    )
    huge_quantity = api.http.put("/pharmacies/p/stock/m", headers=patient, json={"quantity": 10**12})

    assert huge_body.status_code == 413
    assert huge_page.status_code == 422
    assert too_many_lines.status_code == 422
    assert huge_quantity.status_code in (403, 422)  # refused by role before anything is read


def test_api5_2023_broken_function_level_authorization(api: Api) -> None:
    user, patient = api.new_patient()

    functions = {
        "grant a role": api.http.patch(f"/users/{user['id']}", headers=patient, json={"role": "admin"}),
        "list users": api.http.get("/users", headers=patient),
        "read the audit log": api.http.get("/audit", headers=patient),
        "add a medication": api.http.post(
            "/medications",
            headers=patient,
            json={"name": "X", "strength": "1", "form": "t", "price": "1", "prescription_only": False},
        ),
        "set stock": api.http.put("/pharmacies/p/stock/m", headers=patient, json={"quantity": 1}),
        "hide a payment": api.http.delete(f"/payments/{uuid.uuid4()}", headers=patient),
        "list deliveries": api.http.get("/deliveries", headers=patient),
    }

    assert {what: a.status_code for what, a in functions.items()} == dict.fromkeys(functions, 403)
    assert api.http.get("/users/me", headers=patient).json()["role"] == "patient"


def test_api6_2023_unrestricted_access_to_sensitive_business_flows(api: Api, admin: dict[str, str]) -> None:
    # Ordering medicine is the flow worth abusing: a retried or replayed upload must not order twice.
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    body = prescription_body(shop, add_card(api, patient))
    key = {"Idempotency-Key": secrets.token_hex(8), **patient}

    answers = [api.http.post("/prescriptions", headers=key, json=body) for _ in range(3)]
    api.wait_for_status(answers[0].json()["order_id"], patient, {"CONFIRMED"})
    orders = api.http.get("/orders", headers=patient).json()["items"]

    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["order_id"] for a in answers}) == 1
    assert len(orders) == 1
    assert len(api.http.get("/payments", headers=patient).json()["items"]) == 1


def test_api7_2023_server_side_request_forgery(api: Api) -> None:
    # The gateway fetches nothing a client names: no operation takes a URL, a host or a callback.
    document = api.http.get("/openapi.json").json()
    names: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("format") in {"uri", "url", "hostname", "ipv4", "ipv6"}:
                names.append(json.dumps(node))
            names.extend(str(k) for k in node.get("properties", {}))
            if "name" in node and "in" in node:
                names.append(str(node["name"]))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)
    # By whole word ("courier_id" has "uri" inside it, and is no address).
    words = {"url", "urls", "uri", "uris", "host", "hosts", "hostname", "callback", "webhook"}
    risky = [n for n in names if words & set(re.split(r"[^a-z]+", n.lower()))]

    assert names  # the walk found the document's fields at all
    assert risky == []


def test_api8_2023_security_misconfiguration(api: Api) -> None:
    failing = api.http.get("/orders/x", headers={"Authorization": "Bearer x"})
    preflight = api.http.options(
        "/orders", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )

    assert failing.headers["x-content-type-options"] == "nosniff"
    assert failing.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in failing.headers["content-security-policy"]
    assert "server" not in failing.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert "Traceback" not in failing.text


def test_api9_2023_improper_inventory_management(api: Api, platform: Platform) -> None:
    # Every API route the gateway answers is in its document, under the one version; outside /api/v1
    # only the web UI's pages answer (HTML, not in the API's document), and nothing else.
    document = api.http.get("/openapi.json").json()
    base = platform.url

    assert document["info"]["version"] == "1.0.0"
    assert all(path.startswith("/api/v1/") for path in document["paths"])
    for stray in ("/api/v2/orders", "/api/orders", "/v1/orders", "/openapi.json", "/docs", "/api/v1/pages"):
        answer = api.http.get(f"{base}{stray}")
        assert answer.status_code == 404, stray


def test_api10_2023_unsafe_consumption_of_apis(platform: Platform, backing: Backing) -> None:
    # A service takes what reaches it from elsewhere as untrusted: an event in no valid shape, claiming
    # a prescription for someone, is dead-lettered with the reason and applied nowhere.
    queue = topology.event_queue(platform.namespace, "order_service")
    message_id = f"forged-{secrets.token_hex(4)}"
    forged = json.dumps({"type": "PrescriptionUploaded", "payload": {"patient_id": "x", "lines": "all"}})

    async def publish_and_read_back() -> list[aio_pika.abc.AbstractIncomingMessage]:
        connection = await aio_pika.connect(backing.rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(f"{platform.namespace}.{topology.EVENTS_EXCHANGE}")
            message = aio_pika.Message(forged.encode(), message_id=message_id)
            await exchange.publish(message, routing_key=PrescriptionUploaded.ROUTING_KEY)
        for _ in range(200):
            mine = [m for m in await dead_letters(backing.rabbitmq_url, queue) if m.message_id == message_id]
            if mine:
                return mine
            await asyncio.sleep(0.05)
        return []

    letters = asyncio.run(publish_and_read_back())

    assert len(letters) == 1, "the forged event was not dead-lettered"
    headers: dict[str, Any] = dict(letters[0].headers)
    assert headers["x-failed-service"] == "order_service"
    assert headers["x-error"]  # the reason, for the operator who reads the dead letter
