"""Card numbers and CVCs never rest anywhere: after payments, no database, log line, journalled event or
dead letter of the platform holds one (issue 5)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
from bson import json_util
from conftest import DECLINED_CARD, Api, Backing, open_shop, upload
from pymongo import MongoClient

from contracts import topology
from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e

# Cards of this test's own, typed as people type them; the declining test card is every test's.
APPROVED = "5555 5555 5555 4444"
CARDS = (APPROVED, DECLINED_CARD)
CVC_FIELDS = ("cvc", "cvv", "cvc2", "security_code", "card_number")


def digits(number: str) -> str:
    return number.replace(" ", "")


def stored_documents(backing: Backing, platform: Platform) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every document of every database of the platform (the journal's included), with where it is."""
    client: MongoClient[dict[str, Any]] = MongoClient(backing.mongodb_url)
    try:
        for database in client.list_database_names():
            if not database.startswith(platform.database_prefix):
                continue
            for collection in client[database].list_collection_names():
                for doc in client[database][collection].find({}):
                    yield f"{database}.{collection}/{doc.get('_id')}", doc
    finally:
        client.close()


async def queued_messages(backing: Backing, platform: Platform) -> list[tuple[str, bytes, dict[str, Any]]]:
    """Every dead letter of the platform, left in place. (Events in flight are in the journal; the
    event queues, one consumer at a time, allow no basic.get.)"""
    connection = await aio_pika.connect(backing.rabbitmq_url)
    found = []
    async with connection:
        for service in topology.SUBSCRIPTIONS:
            name = topology.dead_letter_queue(topology.event_queue(platform.namespace, service))
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                found.append((name, message.body, dict(message.headers or {})))
            await channel.close()  # unacked: back in the queue
    return found


def field_names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key).lower()
            yield from field_names(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from field_names(inner)


def test_no_card_number_or_cvc_is_kept_logged_or_published(
    platform: Platform, backing: Backing, api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    orders = []
    for number in CARDS:
        card = api.http.post(
            "/payment-methods",
            headers=patient,
            json={"card_number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        )
        assert card.status_code == 201, card.text
        assert card.json()["last4"] == digits(number)[-4:]
        orders.append(upload(api, patient, shop, card.json()["id"], quantity=1)["order_id"])
    for order_id in orders:
        api.wait_for_status(order_id, patient, {"CONFIRMED", "CANCELLED"})
    # Cards refused, by the service (check digit) and by the gateway's schema (too long): the number
    # does not come back in the error either.
    for bad in ("4242 4242 4242 4241", "5555 5555 5555 4444 0000 1"):
        refused = api.http.post(
            "/payment-methods",
            headers=patient,
            json={"card_number": bad, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        )
        assert refused.status_code == 422, refused.text
        assert digits(bad)[:16] not in refused.text.replace(" ", "")

    leaks = []
    searched: list[str] = []
    for where, doc in stored_documents(backing, platform):
        searched.append(where)
        text = json_util.dumps(doc)
        leaks += [f"{where}: card {n}" for n in CARDS if digits(n) in text.replace(" ", "")]
        leaks += [f"{where}: field {f}" for f in set(field_names(doc)) & set(CVC_FIELDS)]
    lines = 0
    for log in sorted(platform.log_dir.glob("*.log")):
        for at, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            lines += 1
            leaks += [f"{log.name}:{at}: card {n}" for n in CARDS if digits(n) in line.replace(" ", "")]
    messages = asyncio.run(queued_messages(backing, platform))
    for queue, body, headers in messages:
        text = body.decode(errors="replace") + json.dumps(headers, default=str)
        leaks += [f"queue {queue}: card {n}" for n in CARDS if digits(n) in text.replace(" ", "")]

    # The search looked where the cards went: the payment methods, the journal's events, every log.
    assert any("_payments.payment_methods/" in where for where in searched), searched[:5]
    assert any("_journal.events/" in where for where in searched), searched[:5]
    assert lines > 0
    assert leaks == []
