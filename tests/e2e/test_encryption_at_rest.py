"""Patients' personal and health data is sealed at rest (issue 5): no database of the platform holds a
patient's name, email, medication line or delivery address in clear, the patient still sees them, and
`pharmacy-ops rotate-keys` moves everything to a new key so that the old one can be removed."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from bson import json_util
from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    FIELD_KEYS,
    Api,
    Backing,
    Shop,
    add_card,
    field_key,
    open_shop,
    started_platform,
    unique,
)
from pymongo import MongoClient
from typer.testing import CliRunner, Result

from operations.cli import app
from service_runtime.crypto import is_sealed, key_id
from service_runtime.launcher import ARCHIVER, Platform

pytestmark = pytest.mark.e2e

Document = dict[str, Any]
# Where a medication's id may be read in clear: the catalogue, and the stock a pharmacy keeps of it.
# Anywhere else in a document about a patient, it is that patient's medication.
CATALOGUE = re.compile(r"_inventory\.(medications/|pharmacies/[^/]+/stock/)")


def stored(backing: Backing, platform: Platform) -> Iterator[tuple[str, Document]]:
    """Every document of every database of the platform (the journal's included), with where it is."""
    client: MongoClient[Document] = MongoClient(backing.mongodb_url)
    try:
        for database in client.list_database_names():
            if database.startswith(platform.database_prefix):
                for collection in client[database].list_collection_names():
                    for doc in client[database][collection].find({}):
                        yield f"{database}.{collection}/{doc['_id']}", doc
    finally:
        client.close()


def leaves(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every key and scalar of a document as text, with its path (moments left out)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield f"{where}/{key}", str(key)
            yield from leaves(inner, f"{where}/{key}")
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            yield from leaves(inner, f"{where}/{n}")
    elif not isinstance(value, datetime):
        # A moment holds no patient's words, but its digits ("…:54.878Z") can spell a longitude's.
        yield where, json_util.dumps(value)


def sealed_values(backing: Backing, platform: Platform) -> list[tuple[str, str]]:
    return [
        (where, text.strip('"'))
        for place, doc in stored(backing, platform)
        for where, text in leaves(doc, place)
        if is_sealed(text.strip('"'))
    ]


def register(api: Api, email: str, full_name: str) -> dict[str, str]:
    password = "a long enough password"
    answer = api.http.post(
        "/auth/register", json={"email": email, "password": password, "full_name": full_name}
    )
    assert answer.status_code == 201, answer.text
    return api.token(email, password)


def order(api: Api, patient: dict[str, str], shop: Shop, quantity: int, at: tuple[float, float]) -> str:
    card = add_card(api, patient)
    answer = api.http.post(
        "/prescriptions",
        headers=patient,
        json={
            "lines": [{"medication_id": shop.medication_id, "quantity": quantity}],
            "delivery_location": {"latitude": at[0], "longitude": at[1]},
            "payment_method_id": card,
        },
    )
    assert answer.status_code == 202, answer.text
    order_id = str(answer.json()["order_id"])
    api.wait_for_status(order_id, patient, {"CONFIRMED"})
    return order_id


def journalled(backing: Backing, platform: Platform, order_id: str) -> list[Document]:
    client: MongoClient[Document] = MongoClient(backing.mongodb_url)
    try:
        return list(client[platform.database(ARCHIVER)]["events"].find({"correlation_id": order_id}))
    finally:
        client.close()


def test_no_name_email_medication_line_or_address_of_a_patient_rests_in_clear(
    platform: Platform, backing: Backing, api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=20)
    email = f"{unique('zelda.quartermain')}@example.com"
    name = f"Zelda Quartermain-{secrets.token_hex(3)}"
    patient = register(api, email, name)
    wrong = api.http.post("/auth/token", data={"username": email, "password": "not the password at all"})
    assert wrong.status_code == 401  # counted against the account by the sign-in throttle
    home = (round(shop.latitude + 0.0137, 6), round(shop.longitude - 0.0219, 6))
    order_id = order(api, patient, shop, 7, home)
    api.wait_until(
        lambda: any(e["type"] == "OrderConfirmed" for e in journalled(backing, platform, order_id)),
        "OrderConfirmed in the journal",
    )

    # The patient sees it all, opened.
    me = api.http.get("/users/me", headers=patient).json()
    assert (me["email"], me["full_name"]) == (email, name)
    shown = api.http.get(f"/orders/{order_id}", headers=patient).json()
    assert [(line["medication_id"], line["quantity"]) for line in shown["lines"]] == [(shop.medication_id, 7)]
    [prescription] = api.http.get("/prescriptions", headers=patient).json()["items"]
    assert prescription["delivery_location"] == {"latitude": home[0], "longitude": home[1]}

    leaks, searched = [], set()
    secrets_of_patient = {"name": name, "email": email, "latitude": repr(home[0]), "longitude": repr(home[1])}
    # A document about this patient names them, their order or their prescription by id (in clear).
    patients_ids = (me["id"], order_id, prescription["id"])
    for place, doc in stored(backing, platform):
        searched.add(place.split("/")[0].removeprefix(f"{platform.database_prefix}_"))
        about_patient = any(i in json_util.dumps(doc) for i in patients_ids)
        for where, text in leaves(doc, place):
            leaks += [f"{where}: {what}" for what, value in secrets_of_patient.items() if value in text]
            if about_patient and shop.medication_id in text and not CATALOGUE.search(where):
                leaks.append(f"{where}: medication {shop.medication_id}")
    # The search went where the data goes: the services' documents and the journal's events, sealed.
    assert {
        "users.users",
        "users.sign_in_failures",
        "prescriptions.prescriptions",
        "orders.orders",
    } <= searched
    assert {"inventory.reservations", "inventory.pharmacies", "journal.events"} <= searched
    events = journalled(backing, platform, order_id)
    assert len(events) >= 5
    assert all(is_sealed(e["envelope"]["payload"]) for e in events)
    assert leaks == []


def ops(backing: Backing, platform: Platform, *args: str, keys: dict[str, str]) -> Result:
    env = {"MONGODB_URL": backing.mongodb_url, "JOURNAL_DATABASE": platform.database(ARCHIVER), **keys}
    result = CliRunner().invoke(app, list(args), env=env, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result


def restart_with(platform: Platform, keys: dict[str, str]) -> None:
    """Every process of the platform restarted with these keys, as an operator would roll them out."""
    platform.base_env.update(keys)
    for name in platform.process_names():
        platform.stop_service(name)
        platform.start_service(name)
    platform.wait_healthy(60)


def test_rotate_keys_seals_everything_again_under_the_new_key_and_the_old_one_can_go(
    backing: Backing,
) -> None:
    old = FIELD_KEYS["FIELD_ENCRYPTION_KEYS"]
    new = field_key("test2")
    with started_platform(backing, "rotate") as platform:
        api = Api(platform.url)
        admin = api.token(ADMIN_EMAIL, ADMIN_PASSWORD)
        shop = open_shop(api, admin, quantity=20)
        email, name = f"{unique('rotated')}@example.com", "Rory Rotated"
        patient = register(api, email, name)
        first = order(api, patient, shop, 3, (shop.latitude + 0.01, shop.longitude))

        # The new key seals from now on; the old one still opens what it sealed.
        both = {"FIELD_ENCRYPTION_KEYS": f"{new},{old}", "FIELD_ENCRYPTION_KEY_ID": "test2"}
        restart_with(platform, both)
        second = order(api, patient, shop, 2, (shop.latitude + 0.02, shop.longitude))
        kids = {key_id(value) for _, value in sealed_values(backing, platform)}
        assert kids == {"test1", "test2"}

        prefix = ("--database-prefix", platform.database_prefix)
        dry = ops(backing, platform, "rotate-keys", "--all", "--dry-run", *prefix, keys=both)
        assert {key_id(value) for _, value in sealed_values(backing, platform)} == kids
        rotated = ops(backing, platform, "rotate-keys", "--all", *prefix, keys=both)
        again = ops(backing, platform, "rotate-keys", "--all", *prefix, keys=both)

        to_seal = int(re.findall(r"(\d+) values to seal again", dry.output)[0])
        assert to_seal > 0
        assert f"{to_seal} values sealed again under key test2" in " ".join(rotated.output.split())
        assert "0 values sealed again under key test2" in " ".join(again.output.split())
        left = [(where, key_id(value)) for where, value in sealed_values(backing, platform)]
        assert left
        assert {kid for _, kid in left} == {"test2"}, left[:5]

        # The old key removed: everything still reads, through the gateway and the operator's tools.
        only_new = {"FIELD_ENCRYPTION_KEYS": new, "FIELD_ENCRYPTION_KEY_ID": "test2"}
        restart_with(platform, only_new)
        patient = api.token(email, "a long enough password")
        assert api.http.get("/users/me", headers=patient).json()["full_name"] == name
        for order_id, quantity in ((first, 3), (second, 2)):
            shown = api.http.get(f"/orders/{order_id}", headers=patient)
            assert shown.status_code == 200, shown.text
            assert [line["quantity"] for line in shown.json()["lines"]] == [quantity]
            timeline = ops(backing, platform, "timeline", order_id, keys=only_new)
            assert "stopped after OrderConfirmed (paid, waiting for its pharmacy" in " ".join(
                timeline.output.split()
            )
        assert len(api.http.get("/prescriptions", headers=patient).json()["items"]) == 2
