"""Every endpoint, called as every role: who may, who may not, and no patient reaches another's records.

OWASP API Security Top 10 (2023): API1 broken object level authorization (every id a client sends is
tried by another patient) and API5 broken function level authorization (every endpoint is tried by
every role). The table names every operation of the OpenAPI document, so a new endpoint without a
line here fails `test_the_table_covers_every_operation_of_the_api`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, GOOD_CARD, Api, Shop, add_card, blank_png, open_shop, upload

pytestmark = pytest.mark.e2e

ANONYMOUS, OWNER, OTHER = "anonymous", "owner", "other patient"
ROLES = (ANONYMOUS, OWNER, OTHER, "pharmacist", "courier", "admin")
SIGNED_IN = frozenset(ROLES) - {ANONYMOUS}
PATIENTS = frozenset({OWNER, OTHER})
STAFF = frozenset({"pharmacist", "admin"})
# Ids in a path that belong to one patient: another patient is answered 404, as if there were none.
OWNED_IDS = ("{prescription_id}", "{order_id}", "{payment_id}", "{document_id}", "{payment_method_id}")


@dataclass
class World:
    """The actors, and the owner's records everyone else tries to reach."""

    api: Api
    admin_headers: dict[str, str]
    headers: dict[str, dict[str, str]]
    users: dict[str, dict[str, Any]]
    cards: dict[str, str]
    shop: Shop
    ids: dict[str, str] = field(default_factory=dict)

    def confirmed_order(self) -> dict[str, Any]:
        """A new prescription of the owner's, its order confirmed and paid."""
        prescription = upload(self.api, self.headers[OWNER], self.shop, self.cards[OWNER], quantity=1)
        self.api.wait_for_status(prescription["order_id"], self.headers[OWNER], {"CONFIRMED"})
        return prescription

    def fresh(self, placeholder: str) -> str:
        """A record of its own for an allowed call that changes or removes what it names."""
        if placeholder == "{prescription_id}":
            return str(upload(self.api, self.headers[OWNER], self.shop, self.cards[OWNER], 1)["id"])
        if placeholder == "{order_id}":
            return str(upload(self.api, self.headers[OWNER], self.shop, self.cards[OWNER], 1)["order_id"])
        if placeholder == "{payment_id}":
            order_id = self.confirmed_order()["order_id"]
            payments = self.api.http.get("/payments", headers=self.headers[OWNER]).json()["items"]
            return str(next(p["id"] for p in payments if p["order_id"] == order_id))
        if placeholder == "{payment_method_id}":
            return add_card(self.api, self.headers[OWNER])
        if placeholder == "{medication_id}":
            return open_shop(self.api, self.admin_headers, quantity=1).medication_id
        if placeholder == "{user_id}":
            return str(self.api.new_patient()[0]["id"])
        raise AssertionError(f"no fresh record for {placeholder}")

    def fresh_staff_member(self) -> str:
        """A pharmacist of their own on the shop's staff, for a call that takes them off it."""
        user, _ = self.api.new_patient()
        granted = self.api.http.patch(
            f"/users/{user['id']}", headers=self.admin_headers, json={"role": "pharmacist"}
        )
        assert granted.status_code == 200, granted.text
        added = self.api.http.put(
            f"/pharmacies/{self.shop.pharmacy_id}/staff/{user['id']}", headers=self.admin_headers
        )
        assert added.status_code == 200, added.text
        return str(user["id"])

    def new_session(self, role: str) -> dict[str, str]:
        """A sign-in of its own, for a call that signs out: the shared one stays valid."""
        if role == ANONYMOUS:
            return {}
        if role == "admin":
            return self.api.token(ADMIN_EMAIL, ADMIN_PASSWORD)
        return self.api.token(self.users[role]["email"], "a long enough password")


Body = Callable[[World, str], dict[str, Any]]


def _pharmacy(world: World, role: str) -> dict[str, Any]:
    return {"name": "Access Pharmacy", "address": "3 Side St", "latitude": 1.5, "longitude": 2.5}


def _medication(world: World, role: str) -> dict[str, Any]:
    name = f"Access {secrets.token_hex(3)}"
    return {"name": name, "strength": "1 mg", "form": "tablet", "price": "1.00", "prescription_only": True}


def _card(world: World, role: str) -> dict[str, Any]:
    return {"card_number": GOOD_CARD, "exp_month": 12, "exp_year": 2031, "cvc": "123"}


def _prescription(world: World, role: str) -> dict[str, Any]:
    return {
        "lines": [{"medication_id": world.shop.medication_id, "quantity": 1}],
        "delivery_location": {"latitude": world.shop.latitude, "longitude": world.shop.longitude},
        "payment_method_id": world.cards.get(role, world.cards[OWNER]),
    }


def _document(world: World, role: str) -> dict[str, Any]:
    return {"document": ("blank.png", blank_png(), "image/png")}  # a draft of no lines


def _refresh_token(world: World, role: str) -> dict[str, Any]:
    form = {"username": world.users[OWNER]["email"], "password": "a long enough password"}
    return {"refresh_token": world.api.http.post("/auth/token", data=form).json()["refresh_token"]}


def _registration(world: World, role: str) -> dict[str, Any]:
    email = f"access-{secrets.token_hex(4)}@example.com"
    return {"email": email, "password": "a long enough password", "full_name": "New Comer"}


@dataclass(frozen=True)
class Operation:
    allowed: frozenset[str]
    status: frozenset[int]  # what an allowed call answers
    json: Body | None = None
    form: bool = False  # the OAuth2 password form of /auth/token
    files: Body | None = None  # a multipart upload
    changes: bool = False  # each allowed call acts on a fresh record, not on the shared ones
    signs_out: bool = False  # called with a sign-in of its own
    staff_member: bool = False  # {user_id} is a pharmacist on the shop's staff, not the other patient


def op(allowed: Iterable[str], *status: int, **kwargs: Any) -> Operation:
    return Operation(frozenset(allowed), frozenset(status), **kwargs)


TABLE: dict[tuple[str, str], Operation] = {
    ("POST", "/auth/register"): op(frozenset(ROLES), 201, json=_registration),
    ("POST", "/auth/token"): op(frozenset(ROLES), 200, form=True),
    ("POST", "/auth/refresh"): op(frozenset(ROLES), 200, json=_refresh_token),
    ("POST", "/auth/logout"): op(SIGNED_IN, 204, json=_refresh_token, signs_out=True),
    ("GET", "/users/me"): op(SIGNED_IN, 200),
    ("GET", "/users"): op({"admin"}, 200),
    ("POST", "/users/search"): op({"admin"}, 200, json=lambda w, r: {"email": w.users[OTHER]["email"]}),
    ("PATCH", "/users/{user_id}"): op({"admin"}, 200, json=lambda w, r: {"role": "patient"}, changes=True),
    ("POST", "/pharmacies"): op(STAFF, 201, json=_pharmacy),
    ("GET", "/pharmacies"): op(SIGNED_IN, 200),
    # The pharmacist is on the shop's staff (see `world`); another's is refused: test_pharmacy_staff.py
    ("PUT", "/pharmacies/{pharmacy_id}/stock/{medication_id}"): op(
        STAFF, 200, json=lambda w, r: {"quantity": 1000}
    ),
    ("PUT", "/pharmacies/{pharmacy_id}/staff/{user_id}"): op({"admin"}, 200, staff_member=True),
    ("DELETE", "/pharmacies/{pharmacy_id}/staff/{user_id}"): op(
        {"admin"}, 204, staff_member=True, changes=True
    ),
    ("GET", "/pharmacies/{pharmacy_id}/staff"): op(STAFF, 200),
    ("GET", "/pharmacies/{pharmacy_id}/stock/{medication_id}"): op(STAFF, 200),
    ("GET", "/pharmacies/{pharmacy_id}/stock"): op(STAFF, 200),
    ("POST", "/medications"): op(STAFF, 201, json=_medication),
    ("GET", "/medications"): op(SIGNED_IN, 200),
    ("GET", "/medications/{medication_id}"): op(SIGNED_IN, 200),
    ("PATCH", "/medications/{medication_id}"): op(STAFF, 200, json=lambda w, r: {"price": "4.20"}),
    ("DELETE", "/medications/{medication_id}"): op(STAFF, 204, changes=True),
    ("GET", "/medications/{medication_id}/availability"): op(SIGNED_IN, 200),
    ("POST", "/payment-methods"): op(PATIENTS, 201, json=_card),
    ("GET", "/payment-methods"): op(PATIENTS, 200),
    ("DELETE", "/payment-methods/{payment_method_id}"): op({OWNER}, 204, changes=True),
    ("GET", "/payments"): op(PATIENTS | {"admin"}, 200),
    ("GET", "/payments/{payment_id}"): op({OWNER, "admin"}, 200),
    ("DELETE", "/payments/{payment_id}"): op({"admin"}, 204, changes=True),
    ("POST", "/prescriptions"): op(PATIENTS, 202, json=_prescription),
    ("POST", "/prescriptions/scan"): op(PATIENTS, 200, files=_document),
    ("GET", "/documents/{document_id}"): op({OWNER} | STAFF, 200),
    ("GET", "/documents/{document_id}/draft"): op({OWNER} | STAFF, 200),
    ("GET", "/prescriptions"): op(PATIENTS | STAFF, 200),
    ("GET", "/prescriptions/{prescription_id}"): op({OWNER} | STAFF, 200),
    ("DELETE", "/prescriptions/{prescription_id}"): op({OWNER} | STAFF, 204, changes=True),
    # 409: the fresh prescription is over the counter, not awaiting a pharmacist (nor a question);
    # refused by the rules, not by access.
    ("POST", "/prescriptions/{prescription_id}/answer"): op(
        {OWNER}, 409, json=lambda w, r: {"answer": "twice a day"}, changes=True
    ),
    ("POST", "/prescriptions/{prescription_id}/refills"): op(
        {OWNER},
        409,
        json=lambda w, r: {
            "delivery_location": {"latitude": 1.0, "longitude": 2.0},
            "payment_method_id": w.cards.get(r, w.cards[OWNER]),
        },
        changes=True,
    ),
    # 404: the shared prescription was typed, so no document is kept with it; refused by what exists.
    ("GET", "/prescriptions/{prescription_id}/document"): op({OWNER} | STAFF, 404),
    ("GET", "/verifications"): op(STAFF, 200),
    ("GET", "/verifications/{prescription_id}"): op(STAFF, 200),
    ("POST", "/verifications/{prescription_id}/approve"): op(STAFF, 409, changes=True),
    ("POST", "/verifications/{prescription_id}/reject"): op(
        STAFF, 409, json=lambda w, r: {"reason": "OTHER", "note": "access check"}, changes=True
    ),
    ("POST", "/verifications/{prescription_id}/hold"): op(
        STAFF, 409, json=lambda w, r: {"question": "Since when?"}, changes=True
    ),
    ("GET", "/orders"): op(PATIENTS | STAFF, 200),
    ("GET", "/orders/{order_id}"): op({OWNER} | STAFF, 200),
    # 409 only if the fresh order had already reached a courier: refused by the rules, not by access.
    ("DELETE", "/orders/{order_id}"): op({OWNER} | STAFF, 200, 409, changes=True),
    ("GET", "/orders/{order_id}/fhir"): op({OWNER} | STAFF, 200),
    # The pharmacist is on the shop's staff. 409: the fresh order was not paid yet when dispensed.
    ("POST", "/orders/{order_id}/dispense"): op(STAFF, 200, 409, changes=True),
    ("GET", "/pharmacies/{pharmacy_id}/dispensing"): op(STAFF, 200),
    # 404 while the courier has not said yet whether they take deliveries (the PUT may run later).
    ("GET", "/couriers/me"): op({"courier"}, 200, 404),
    ("PUT", "/couriers/me"): op(
        {"courier"}, 200, json=lambda w, r: {"available": False, "latitude": 1.0, "longitude": 2.0}
    ),
    ("GET", "/deliveries"): op({"courier", "admin"}, 200),
    # 404: the shared order was never dispensed, so it has no delivery; refused by what exists.
    ("GET", "/deliveries/{delivery_id}"): op({"courier", "admin"}, 404),
    ("POST", "/deliveries/{delivery_id}/pickup"): op({"courier"}, 404),
    ("POST", "/deliveries/{delivery_id}/deliver"): op(
        {"courier"}, 404, json=lambda w, r: {"recipient_name": "Access Check"}
    ),
    ("POST", "/deliveries/{delivery_id}/fail"): op({"courier"}, 404, json=lambda w, r: {"reason": "OTHER"}),
    ("GET", "/audit"): op({"admin"}, 200),
    ("GET", "/operations/orders/{order_id}/timeline"): op({"admin"}, 200),
    ("GET", "/operations/dead-letters"): op({"admin"}, 200),
    # 404: no such dead letter; refused by what exists.
    ("GET", "/operations/dead-letters/{service}/{message_id}"): op({"admin"}, 404),
    # A dry run (the default) of a message no queue holds: nothing is sent.
    ("POST", "/operations/dead-letters/redrive"): op(
        {"admin"}, 200, json=lambda w, r: {"message_ids": ["no-such-message"]}
    ),
    ("GET", "/health"): op(frozenset(ROLES), 200),
    ("GET", "/health/live"): op(frozenset(ROLES), 200),
    ("GET", "/health/ready"): op(frozenset(ROLES), 200),
}


def refusal(role: str, path: str, operation: Operation) -> int:
    """What a role not allowed an operation is answered."""
    if role == ANONYMOUS:
        return 401
    if role == OTHER and OWNER in operation.allowed and any(owned in path for owned in OWNED_IDS):
        return 404  # another patient's record answers exactly like a missing one
    return 403


@pytest.fixture(scope="module")
def world(api: Api, admin: dict[str, str]) -> World:
    users: dict[str, dict[str, Any]] = {}
    headers: dict[str, dict[str, str]] = {ANONYMOUS: {}, "admin": admin}
    for role in (OWNER, OTHER, "pharmacist", "courier"):
        users[role], headers[role] = api.new_patient()
    for role in ("pharmacist", "courier"):
        granted = api.http.patch(f"/users/{users[role]['id']}", headers=admin, json={"role": role})
        assert granted.status_code == 200, granted.text
    shop = open_shop(api, admin, quantity=1000)
    # The pharmacist works at the shop: they may stock it.
    joined = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{users['pharmacist']['id']}", headers=admin)
    assert joined.status_code == 200, joined.text
    cards = {role: add_card(api, headers[role]) for role in PATIENTS}
    world = World(api, admin, headers, users, cards, shop)
    prescription = world.confirmed_order()
    payments = api.http.get("/payments", headers=headers[OWNER]).json()["items"]
    scanned = api.http.post("/prescriptions/scan", headers=headers[OWNER], files=_document(world, OWNER))
    assert scanned.status_code == 200, scanned.text
    world.ids = {
        "{prescription_id}": prescription["id"],
        "{order_id}": prescription["order_id"],
        "{payment_id}": payments[0]["id"],
        "{pharmacy_id}": shop.pharmacy_id,
        "{medication_id}": shop.medication_id,
        "{user_id}": users[OTHER]["id"],
        "{document_id}": scanned.json()["document_id"],
        "{payment_method_id}": cards[OWNER],
        # A delivery's id is its order's.
        "{delivery_id}": prescription["order_id"],
        "{service}": "order_service",
        "{message_id}": "no-such-message",
    }
    return world


def call(world: World, method: str, path: str, operation: Operation, role: str) -> httpx.Response:
    allowed = role in operation.allowed
    if operation.staff_member:
        member = (
            world.fresh_staff_member() if allowed and operation.changes else world.users["pharmacist"]["id"]
        )
        path = path.replace("{user_id}", member)
    for placeholder, shared in world.ids.items():
        if placeholder in path:
            # A refused call must leave the shared record as it was; an allowed change gets its own.
            # A fresh staff member (above) is on the shared shop's staff: the shop stays the shared one.
            fresh = allowed and operation.changes and not operation.staff_member
            record = world.fresh(placeholder) if fresh else shared
            path = path.replace(placeholder, record)
    headers = world.new_session(role) if operation.signs_out else world.headers[role]
    kwargs: dict[str, Any] = {"headers": headers}
    if operation.json is not None:
        kwargs["json"] = operation.json(world, role)
    if operation.files is not None:
        kwargs["files"] = operation.files(world, role)
    if operation.form:
        kwargs["data"] = {"username": world.users[OWNER]["email"], "password": "a long enough password"}
    return world.api.http.request(method, path, **kwargs)


CASES = [(method, path, role) for (method, path) in TABLE for role in ROLES]


@pytest.mark.parametrize(("method", "path", "role"), CASES, ids=[f"{m} {p} as {r}" for m, p, r in CASES])
def test_who_may_call_what(world: World, method: str, path: str, role: str) -> None:
    operation = TABLE[(method, path)]

    answer = call(world, method, path, operation, role)

    if role in operation.allowed:
        assert answer.status_code in operation.status, answer.text
    else:
        assert answer.status_code == refusal(role, path, operation), answer.text
        assert answer.headers["content-type"] == "application/problem+json"


def test_the_table_covers_every_operation_of_the_api(api: Api) -> None:
    document = api.http.get("/openapi.json").json()
    operations = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, item in document["paths"].items()
        for method in item
    }

    assert operations == set(TABLE)


def test_refused_calls_left_the_owners_records_as_they_were(world: World) -> None:
    # Runs after the table (pytest keeps file order): every refused DELETE and PATCH changed nothing.
    owner = world.headers[OWNER]
    prescription = world.api.http.get(f"/prescriptions/{world.ids['{prescription_id}']}", headers=owner)
    order = world.api.http.get(f"/orders/{world.ids['{order_id}']}", headers=owner)
    payment = world.api.http.get(f"/payments/{world.ids['{payment_id}']}", headers=owner)
    other = world.api.http.get("/users/me", headers=world.headers[OTHER])
    staff = world.api.http.get(f"/pharmacies/{world.shop.pharmacy_id}/staff", headers=world.admin_headers)

    assert prescription.status_code == 200
    assert prescription.json()["status"] == "FILLED"
    assert order.status_code == 200
    assert order.json()["status"] == "CONFIRMED"
    assert payment.status_code == 200
    assert payment.json()["status"] == "AUTHORISED"
    assert other.json()["role"] == "patient"
    cards = world.api.http.get("/payment-methods", headers=owner).json()["items"]
    assert world.ids["{payment_method_id}"] in {card["id"] for card in cards}
    assert world.users["pharmacist"]["id"] in {m["user_id"] for m in staff.json()["items"]}


def test_a_listing_shows_a_patient_only_their_own_records(world: World) -> None:
    other = world.headers[OTHER]
    owner_id = world.users[OWNER]["id"]

    for listing in ("/prescriptions", "/orders", "/payments"):
        mine = world.api.http.get(listing, headers=other)
        theirs = world.api.http.get(listing, headers=other, params={"user_id": owner_id})

        assert mine.status_code == 200
        assert {item["patient_id"] for item in mine.json()["items"]} <= {world.users[OTHER]["id"]}
        assert theirs.status_code == 403, listing


def test_a_courier_sees_only_their_own_deliveries(world: World) -> None:
    # The world's courier carries nothing: none of the shared order (never dispensed) nor anyone's.
    answer = world.api.http.get("/deliveries", headers=world.headers["courier"], params={"limit": 200})

    assert answer.status_code == 200
    assert answer.json()["items"] == []
    # What a delivery shows a courier, and hides (the lines, the price, the PIN): tests/e2e/test_last_mile.py.


def test_a_role_claim_is_never_taken_from_the_client(world: World) -> None:
    # The role comes from the store on every request: a patient cannot grant themselves one.
    owner = world.headers[OWNER]
    me = world.users[OWNER]["id"]

    self_grant = world.api.http.patch(f"/users/{me}", headers=owner, json={"role": "admin"})
    registered_as_admin = world.api.http.post(
        "/auth/register", json={**_registration(world, OWNER), "role": "admin"}
    )
    admin_self_change = world.api.http.patch(
        f"/users/{world.api.http.get('/users/me', headers=world.admin_headers).json()['id']}",
        headers=world.admin_headers,
        json={"role": "patient"},
    )

    assert self_grant.status_code == 403
    assert registered_as_admin.status_code == 422
    assert admin_self_change.status_code == 403
    assert world.api.http.get("/users/me", headers=owner).json()["role"] == "patient"
