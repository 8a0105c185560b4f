"""The operator's web pages as the wrong user: a patient, a pharmacist and a courier, signed in through
the sign-in form, are refused (403, a page saying so) every /admin page and every /admin form sent
with their own valid CSRF token, and nothing changes. Signed out, every page sends one to sign in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    Api,
    Backing,
    HeldTooEarly,
    WebSession,
    held_too_early,
    open_shop,
)

from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e

WRONG_ROLES = ("patient", "pharmacist", "courier")


@dataclass
class World:
    api: Api
    admin: dict[str, str]
    browsers: dict[str, WebSession]
    users: dict[str, dict[str, str]]
    pharmacy_id: str
    order_id: str
    letter: HeldTooEarly


@pytest.fixture(scope="module")
def world(api: Api, admin: dict[str, str], platform: Platform, backing: Backing) -> Iterator[World]:
    users: dict[str, dict[str, str]] = {}
    for role in WRONG_ROLES:
        users[role], _ = api.new_patient()
        if role != "patient":
            granted = api.http.patch(f"/users/{users[role]['id']}", headers=admin, json={"role": role})
            assert granted.status_code == 200, granted.text
    browsers = {role: WebSession(platform.url, users[role]["email"]) for role in WRONG_ROLES}
    shop = open_shop(api, admin, quantity=1)
    letter = held_too_early(platform, backing)
    yield World(api, admin, browsers, users, shop.pharmacy_id, letter.order_id, letter)
    for browser in browsers.values():
        browser.close()


def pages(world: World) -> list[str]:
    letter = world.letter.message_id
    return [
        "/admin",
        f"/admin/orders?order_id={world.order_id}",
        f"/admin/orders/{world.order_id}/timeline",
        "/admin/users",
        "/admin/users?role=admin",
        "/admin/health",
        "/admin/audit",
        "/admin/audit?action=user.role_change",
        "/admin/dead-letters",
        "/admin/dead-letters?service=order_service",
        f"/admin/dead-letters/order_service/{letter}",
    ]


def refused(answer: httpx.Response) -> None:
    assert answer.status_code == 403, (answer.request.url, answer.text[:300])
    assert "text/html" in answer.headers["content-type"]
    assert "<h1>Forbidden</h1>" in answer.text
    assert "<strong>Error:</strong> this needs the role admin</p>" in answer.text  # the API's refusal


@pytest.mark.parametrize("role", WRONG_ROLES)
def test_every_operator_page_is_refused_to_a_patient_a_pharmacist_and_a_courier(
    world: World, role: str
) -> None:
    browser = world.browsers[role]

    for path in pages(world):
        refused(browser.get(path))


@pytest.mark.parametrize("role", WRONG_ROLES)
def test_every_operator_form_is_refused_and_changes_nothing(world: World, role: str) -> None:
    browser = world.browsers[role]
    me = world.users[role]["id"]
    victim_role = "patient" if role != "patient" else "courier"
    victim = world.users[victim_role]["id"]
    token = browser.csrf

    for target in (me, victim):
        refused(browser.post(f"/admin/users/{target}/role", {"csrf_token": token, "role": "admin"}))
        refused(
            browser.post(
                f"/admin/users/{target}/staff", {"csrf_token": token, "pharmacy_id": world.pharmacy_id}
            )
        )
    for action in ("/admin/dead-letters/dry-run", "/admin/dead-letters/redrive"):
        refused(
            browser.post(
                action,
                {"csrf_token": token, "service": "order_service", "message_id": [world.letter.message_id]},
            )
        )

    for who, expected in ((role, role), (victim_role, victim_role)):
        headers = world.api.token(world.users[who]["email"], PASSWORD)
        assert world.api.http.get("/users/me", headers=headers).json()["role"] == expected
    staff = world.api.http.get(f"/pharmacies/{world.pharmacy_id}/staff", headers=world.admin).json()["items"]
    assert staff == []
    assert world.letter.message_id in world.letter.dead_lettered()  # not redriven
    # Their own pages still answer: the refusal was the role's, not a broken session.
    assert browser.get("/").status_code in (200, 303)


def test_signed_out_every_operator_page_sends_one_to_sign_in(world: World, platform: Platform) -> None:
    with httpx.Client(base_url=platform.url, timeout=30) as anonymous:
        for path in pages(world):
            answer = anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/sign-in"
        posted = anonymous.post(f"/admin/users/{world.users['patient']['id']}/role", data={"role": "admin"})
        assert posted.status_code == 303


def test_the_admin_is_let_through_the_same_pages(world: World, platform: Platform) -> None:
    # The matrix's other side: the same pages answer the admin (the timeline once the journal has the order).
    admin = WebSession(platform.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        for path in pages(world):
            answer = admin.get(path)
            if path == f"/admin/orders?order_id={world.order_id}":
                assert answer.status_code == 303, path
            else:
                assert answer.status_code == 200, (path, answer.text[:500])
        dry_run = admin.post(
            "/admin/dead-letters/dry-run",
            {
                "service": "order_service",
                "message_id": [world.letter.message_id],
            },
        )
        assert dry_run.status_code == 200, dry_run.text[:500]
        assert "Redrive 1 message now" in dry_run.text
    finally:
        admin.close()
    assert world.letter.message_id in world.letter.dead_lettered()  # the dry run sent nothing


def test_the_order_search_says_what_is_wrong_beside_the_box_or_that_the_journal_never_saw_it(
    platform: Platform,
) -> None:
    admin = WebSession(platform.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        empty = admin.get("/admin/orders?order_id=+")
        unknown = admin.get(admin.get("/admin/orders?order_id=no-such-order").headers["location"])
    finally:
        admin.close()

    assert empty.status_code == 422
    assert 'id="order_id-error"' in empty.text
    assert 'aria-invalid="true"' in empty.text
    assert unknown.status_code == 404
    assert "the journal holds no event of order no-such-order" in unknown.text


def test_a_redrive_that_sent_not_everything_says_what_it_did_not_send(platform: Platform) -> None:
    # As a second click on the same confirm button finds: its messages already redriven.
    admin = WebSession(platform.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        answer = admin.post(
            "/admin/dead-letters/redrive",
            {"service": "order_service", "message_id": ["nowhere-1"]},
        )
    finally:
        admin.close()

    assert answer.status_code == 200, answer.text[:500]
    assert "<h1>Redrive: not everything was sent</h1>" in answer.text
    assert "<strong>Sent:</strong> 0 dead letters" in answer.text
    assert "no dead-letter queue holds nowhere-1" in answer.text


def test_a_dry_run_of_a_whole_page_of_long_ids_is_a_post_no_url_limit_refuses(platform: Platform) -> None:
    ids = [f"nowhere-{n:03}-" + "x" * 180 for n in range(200)]  # 38 kB of ids: no URL carries so much
    admin = WebSession(platform.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        expired = admin.post(
            "/admin/dead-letters/dry-run",
            {"service": "order_service", "message_id": ids[:1]},
            with_token=False,
        )
        answer = admin.post(
            "/admin/dead-letters/dry-run",
            {"service": "order_service", "message_id": ids},
        )
    finally:
        admin.close()

    assert expired.status_code == 403  # no CSRF token, no dry run
    assert answer.status_code == 200, answer.text[:500]
    assert "<h1>Redrive: dry run</h1>" in answer.text
    assert "Nothing has been sent yet. A redrive would send 0 messages" in answer.text
    assert ids[-1] in answer.text  # named among those not found


def test_a_redrive_or_dry_run_for_a_service_nobody_has_is_refused_not_widened(
    world: World, platform: Platform
) -> None:
    admin = WebSession(platform.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    letter = world.letter.message_id
    try:
        dry_run = admin.post(
            "/admin/dead-letters/dry-run",
            {"service": "shipping_service", "message_id": [letter]},
        )
        redrive = admin.post(
            "/admin/dead-letters/redrive",
            {"service": "shipping_service", "message_id": ["nowhere-2"]},
        )
    finally:
        admin.close()
    api = world.api.http.post(
        "/operations/dead-letters/redrive",
        headers=world.admin,
        json={"service": "shipping_service", "message_ids": ["nowhere-2"], "dry_run": False},
    )

    for answer in (dry_run, redrive):
        assert answer.status_code == 422, answer.text[:500]
        assert "no service is named shipping_service: choose one from the list" in answer.text
        assert "Redrive 1 message now" not in answer.text
    assert api.status_code == 422, api.text
    assert api.json()["errors"][0]["field"] == "service"
    assert letter in world.letter.dead_lettered()


def test_a_users_form_error_is_shown_in_the_view_the_form_came_from(world: World, platform: Platform) -> None:
    pharmacist, courier = world.users["pharmacist"], world.users["courier"]
    admin = WebSession(platform.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        found = admin.post("/admin/users/find", {"email": pharmacist["email"]})
        # The forms of the user found by email carry the email, in the body only.
        assert f'name="view_email" value="{pharmacist["email"]}"' in found.text
        no_pharmacy = admin.post(
            f"/admin/users/{pharmacist['id']}/staff",
            {"pharmacy_id": "", "view_email": pharmacist["email"]},
        )
        no_role = admin.post(
            f"/admin/users/{courier['id']}/role",
            {"role": "", "view_role": "courier", "view_offset": "0"},
        )
    finally:
        admin.close()

    assert no_pharmacy.status_code == 422, no_pharmacy.text[:500]
    assert no_pharmacy.text.count('class="person"') == 1  # the user found by email, and only them
    assert f'data-user-id="{pharmacist["id"]}"' in no_pharmacy.text
    assert f'id="pharmacy-{pharmacist["id"]}-error"' in no_pharmacy.text
    assert f'value="{pharmacist["email"]}"' in no_pharmacy.text  # the search box keeps the email
    assert no_role.status_code == 422, no_role.text[:500]
    assert '<option value="courier" selected>' in no_role.text  # the couriers, as the form was sent from
    assert f'id="role-{courier["id"]}-error"' in no_role.text
    assert 'class="role-now">patient<' not in no_role.text
