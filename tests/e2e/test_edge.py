"""The gateway's edge (issue 5): size limits, strict bodies, security headers, closed CORS, and errors
that say what went wrong without echoing secrets or internals."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Api, Backing, add_card, open_shop, prescription_body, started_platform

from service_runtime.launcher import Platform
from user_service.edge import API_POLICY, DOCS_POLICY

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
LIMIT = 64 * 1024  # MAX_REQUEST_BYTES by default
SHOP_ORIGIN = "https://shop.example"
EVIL_ORIGIN = "https://evil.example"


def registration(**extra: object) -> dict[str, object]:
    return {"email": "edge@example.com", "password": "a long enough password", "full_name": "Ed Ge", **extra}


def preflight(base_url: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{base_url}/api/v1/orders",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_a_body_whose_content_length_is_over_the_limit_is_refused_with_413(api: Api) -> None:
    answer = api.http.post("/auth/register", json=registration(full_name="x" * LIMIT))

    assert answer.status_code == 413
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["detail"] == f"the request body may hold at most {LIMIT} bytes"


def test_a_chunked_body_that_grows_past_the_limit_is_refused_with_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "edge@example.com", "full_name": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'", "password": "a long enough password"}'

    answer = api.http.post("/auth/register", content=chunks(), headers={"Content-Type": "application/json"})

    assert "content-length" not in answer.request.headers  # sent chunked: only counting catches it
    assert answer.status_code == 413
    assert answer.headers["content-type"] == PROBLEM


def test_a_megabyte_of_headers_is_refused_by_the_server(api: Api) -> None:
    answer = api.http.get("/health/live", headers={"X-Padding": "x" * 1_000_000})

    assert answer.status_code == 400


def test_api3_2023_mass_assignment_unknown_fields_are_refused_naming_the_field(
    api: Api, admin: dict[str, str]
) -> None:
    # OWASP API3:2023 (broken object property level authorization): a client may not set a field
    # the API does not offer, such as its own role or someone else's id.
    as_admin = api.http.post("/auth/register", json=registration(role="admin"))
    _, patient = api.new_patient()
    shop = open_shop(api, admin, quantity=1)
    someone_else = api.http.post(
        "/prescriptions",
        headers=patient,
        json={**prescription_body(shop, add_card(api, patient)), "patient_id": "another-patient"},
    )

    for answer, field in ((as_admin, "role"), (someone_else, "patient_id")):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert {"field": field, "message": "Extra inputs are not permitted"} in answer.json()["errors"]


def test_a_refused_body_never_echoes_what_was_sent(api: Api) -> None:
    secret = "my-secret-password-" + "s" * 200  # longer than a password may be
    answer = api.http.post(
        "/auth/register",
        json={"email": "not-an-email", "password": secret, "full_name": "Ed Ge", "cvc": "987"},
    )

    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"email", "password", "cvc"}
    for sent in ("my-secret-password", "not-an-email", "987"):
        assert sent not in answer.text


def test_an_overlong_path_id_is_refused_before_it_reaches_a_service(api: Api) -> None:
    _, patient = api.new_patient()

    answer = api.http.get(f"/orders/{'a' * 10_000}", headers=patient)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert [e["field"] for e in answer.json()["errors"]] == ["order_id"]
    assert "a" * 100 not in answer.text


def test_unknown_routes_and_wrong_methods_answer_problem_json(api: Api) -> None:
    missing = api.http.get("/no-such-route")
    wrong_method = api.http.delete("/users/me")

    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM)
    assert (wrong_method.status_code, wrong_method.headers["content-type"]) == (405, PROBLEM)


def test_every_answer_carries_the_security_headers_and_no_server_name(api: Api) -> None:
    _, patient = api.new_patient()
    answers = {
        "ok": api.http.get("/users/me", headers=patient),
        "unauthorized": api.http.get("/users/me"),
        "not found": api.http.get("/no-such-route"),
        "invalid": api.http.post("/auth/register", json={}),
        "too large": api.http.post("/auth/register", content=b"x" * (LIMIT + 1)),
    }

    for what, answer in answers.items():
        assert answer.headers["x-content-type-options"] == "nosniff", what
        assert answer.headers["x-frame-options"] == "DENY", what
        assert answer.headers["referrer-policy"] == "no-referrer", what
        assert answer.headers["content-security-policy"] == API_POLICY, what
        assert answer.headers["cache-control"] == "no-store", what
        assert answer.headers["strict-transport-security"] == "max-age=31536000", what
        assert "server" not in answer.headers, what


def test_the_docs_page_loads_only_what_its_policy_allows(api: Api) -> None:
    page = api.http.get("/docs")
    policy = dict(directive.strip().split(" ", 1) for directive in DOCS_POLICY.split(";"))
    # Each asset the page loads from elsewhere, and the directive that must allow its host.
    assets = [
        ("script-src" if tag == "script" else "style-src" if "stylesheet" in attributes else "img-src", url)
        for tag, attributes, url in re.findall(
            r'<(script|link)([^>]*?)(?:src|href)="(https://[^"]+)"', page.text
        )
    ]

    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DOCS_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    assert {directive for directive, _ in assets} == {"script-src", "style-src", "img-src"}
    for directive, url in assets:
        assert f"https://{urlsplit(url).hostname}" in policy[directive].split(), url


def test_cors_is_closed_by_default(platform: Platform) -> None:
    answer = preflight(platform.url, EVIL_ORIGIN)
    simple = httpx.get(f"{platform.url}/api/v1/health/live", headers={"Origin": EVIL_ORIGIN})

    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in simple.headers


@pytest.fixture(scope="module")
def shop_platform(backing: Backing) -> Iterator[Platform]:
    env = {**os.environ, "CORS_ALLOWED_ORIGINS": f'["{SHOP_ORIGIN}"]'}
    with started_platform(backing, "cors", env=env) as running:
        yield running


def test_cors_opens_to_exactly_the_configured_origins(shop_platform: Platform) -> None:
    allowed = preflight(shop_platform.url, SHOP_ORIGIN)
    refused = preflight(shop_platform.url, EVIL_ORIGIN)

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in refused.headers
