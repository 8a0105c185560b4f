"""Access tokens name their signing key; refresh tokens rotate, a reused one ends its sign-in, and signing
out ends both (issue 5)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from conftest import ACCESS_TOKEN_MINUTES, Api

from service_runtime.launcher import Platform
from user_service.settings import derived_key_id

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"  # as Api.new_patient registers


def sign_in(api: Api, email: str) -> dict[str, Any]:
    answer = api.http.post("/auth/token", data={"username": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def refresh(api: Api, refresh_token: str) -> httpx.Response:
    return api.http.post("/auth/refresh", json={"refresh_token": refresh_token})


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def me(api: Api, tokens: dict[str, Any]) -> int:
    return api.http.get("/users/me", headers=bearer(tokens)).status_code


def refused(answer: httpx.Response) -> bool:
    return answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"


def test_sign_in_answers_an_access_token_naming_its_key_and_a_refresh_token(
    api: Api, platform: Platform
) -> None:
    user, _ = api.new_patient()

    answer = api.http.post("/auth/token", data={"username": user["email"], "password": PASSWORD})
    tokens = answer.json()

    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == derived_key_id(
        platform.base_env["SECRET_KEY"]
    )
    assert (tokens["token_type"], tokens["expires_in"]) == ("bearer", ACCESS_TOKEN_MINUTES * 60)
    assert len(tokens["refresh_token"]) >= 43
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_refresh_answers_a_new_pair_and_the_old_refresh_token_is_refused_afterwards(api: Api) -> None:
    user, _ = api.new_patient()
    first = sign_in(api, user["email"])

    second = refresh(api, first["refresh_token"])
    third = refresh(api, second.json()["refresh_token"])
    signed_in = me(api, third.json())
    again = refresh(api, first["refresh_token"])

    assert second.status_code == 200, second.text
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert second.json()["access_token"] != first["access_token"]
    assert third.status_code == 200, third.text
    assert signed_in == 200
    assert refused(again)


def test_a_reused_refresh_token_revokes_every_token_of_its_sign_in(api: Api) -> None:
    user, _ = api.new_patient()
    first = sign_in(api, user["email"])
    elsewhere = sign_in(api, user["email"])  # another device: another sign-in
    second = refresh(api, first["refresh_token"]).json()
    newest = refresh(api, second["refresh_token"]).json()
    assert me(api, newest) == 200

    reused = refresh(api, first["refresh_token"])

    assert refused(reused)
    assert "used before" in reused.json()["detail"]
    assert refused(refresh(api, newest["refresh_token"]))
    assert me(api, newest) == 401  # the access tokens of that sign-in end with it
    assert me(api, second) == 401
    assert me(api, elsewhere) == 200
    assert refresh(api, elsewhere["refresh_token"]).status_code == 200


def test_two_refreshes_with_the_same_token_at_once_do_not_both_succeed(api: Api) -> None:
    user, _ = api.new_patient()
    for _ in range(3):
        token = sign_in(api, user["email"])["refresh_token"]

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda same: refresh(api, same), [token] * 4))

        statuses = [a.status_code for a in answers]
        # The first exchange wins; the others are reuse and end the sign-in, often before the winner's
        # new token is kept, so the winner may be refused too. Never two new pairs.
        assert statuses.count(200) <= 1, statuses
        assert statuses.count(401) >= 3, [a.text for a in answers]


def test_signing_out_ends_the_sign_in_and_the_access_token_used_for_it(api: Api) -> None:
    user, _ = api.new_patient()
    first = sign_in(api, user["email"])
    elsewhere = sign_in(api, user["email"])
    current = refresh(api, first["refresh_token"]).json()

    answer = api.http.post(
        "/auth/logout", headers=bearer(current), json={"refresh_token": current["refresh_token"]}
    )

    assert answer.status_code == 204, answer.text
    assert me(api, current) == 401
    assert me(api, first) == 401
    assert refused(refresh(api, current["refresh_token"]))
    assert me(api, elsewhere) == 200


def test_signing_out_with_another_users_refresh_token_leaves_it_alone(api: Api) -> None:
    user, _ = api.new_patient()
    other, _ = api.new_patient()
    mine = sign_in(api, user["email"])
    theirs = sign_in(api, other["email"])

    answer = api.http.post(
        "/auth/logout", headers=bearer(mine), json={"refresh_token": theirs["refresh_token"]}
    )

    assert answer.status_code == 204
    assert me(api, mine) == 401
    assert refresh(api, theirs["refresh_token"]).status_code == 200


def test_a_refresh_reads_the_role_from_the_store(api: Api, admin: dict[str, str]) -> None:
    user, _ = api.new_patient()
    tokens = sign_in(api, user["email"])
    granted = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": "pharmacist"})
    assert granted.status_code == 200, granted.text

    renewed = refresh(api, tokens["refresh_token"]).json()

    assert jwt.decode(renewed["access_token"], options={"verify_signature": False})["role"] == "pharmacist"


def test_an_unknown_or_garbled_refresh_token_is_refused(api: Api) -> None:
    assert refused(refresh(api, "not-a-token-we-issued"))
    assert api.http.post("/auth/refresh", json={}).status_code == 422


def forged(platform: Platform, user_id: str, *, kid: str | None, algorithm: str = "HS256") -> dict[str, str]:
    """An access token made outside the gateway, with the gateway's own secret unless `none`."""
    now = datetime.now(UTC)
    claims = {"sub": user_id, "iat": now, "exp": now + timedelta(minutes=5), "jti": "forged", "typ": "access"}
    secret = platform.base_env["SECRET_KEY"]
    key = "" if algorithm == "none" else secret  # 64 characters: enough for HS512 too
    headers = {} if kid is None else {"kid": kid}
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm=algorithm, headers=headers)}"}


def test_a_token_with_an_unknown_or_no_kid_or_another_algorithm_is_refused(
    api: Api, platform: Platform
) -> None:
    user, _ = api.new_patient()
    kid = derived_key_id(platform.base_env["SECRET_KEY"])

    def status(headers: dict[str, str]) -> int:
        return api.http.get("/users/me", headers=headers).status_code

    assert status(forged(platform, user["id"], kid=kid)) == 200  # the forgery itself is sound
    assert status(forged(platform, user["id"], kid="retired-key")) == 401
    assert status(forged(platform, user["id"], kid=None)) == 401
    assert status(forged(platform, user["id"], kid=kid, algorithm="none")) == 401
    assert status(forged(platform, user["id"], kid=kid, algorithm="HS512")) == 401
