"""Guessing passwords is throttled: per account and per client address, 429 with Retry-After (issue 5)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import Api, Backing, started_platform

from service_runtime.launcher import Platform

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"  # as Api.new_patient registers


def sign_in(api: Api, email: str, password: str) -> httpx.Response:
    return api.http.post("/auth/token", data={"username": email, "password": password})


def test_an_account_is_locked_after_five_failed_sign_ins_whatever_the_password(api: Api) -> None:
    user, _ = api.new_patient()
    other, _ = api.new_patient()

    failed = [sign_in(api, user["email"], f"guess number {n}").status_code for n in range(5)]
    locked = sign_in(api, user["email"], "guess number 6")
    right_password = sign_in(api, user["email"].upper(), PASSWORD)
    someone_else = sign_in(api, other["email"], PASSWORD)

    assert failed == [401] * 5
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    assert right_password.status_code == 429  # the guesser may have found it: no answer either way
    assert someone_else.status_code == 200  # the address is not locked by one account's failures


@pytest.fixture(scope="module")
def strict_platform(backing: Backing) -> Iterator[Platform]:
    env = {**os.environ, "SIGN_IN_FAILURES_PER_ADDRESS": "3", "SIGN_IN_WINDOW_SECONDS": "3"}
    with started_platform(backing, "throttle", env=env) as platform:
        yield platform


def test_an_address_trying_many_accounts_is_held_back_until_the_window_passes(
    strict_platform: Platform,
) -> None:
    api = Api(strict_platform.url)
    user, _ = api.new_patient()

    failed = [sign_in(api, f"nobody-{n}@example.com", PASSWORD).status_code for n in range(3)]
    held = sign_in(api, user["email"], PASSWORD)
    time.sleep(int(held.headers.get("Retry-After", "0")) + 0.5)
    later = sign_in(api, user["email"], PASSWORD)
    api.http.close()

    assert failed == [401] * 3
    assert held.status_code == 429
    assert 0 < int(held.headers["Retry-After"]) <= 3
    assert later.status_code == 200, later.text
