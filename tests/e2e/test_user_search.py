"""An admin finds a user by their email (POST /users/search): exactly, in any case, and nobody else
may ask; the email travels in the body, never in a URL."""

from __future__ import annotations

import pytest
from conftest import Api

pytestmark = pytest.mark.e2e


def test_an_admin_finds_a_user_by_their_email_in_any_case_and_only_them(
    api: Api, admin: dict[str, str]
) -> None:
    user, _ = api.new_patient()
    other, _ = api.new_patient()

    found = api.http.post("/users/search", headers=admin, json={"email": f"  {user['email'].upper()} "})
    nobody = api.http.post("/users/search", headers=admin, json={"email": "nobody-at-all@example.com"})
    partial = api.http.post("/users/search", headers=admin, json={"email": user["email"][:-4]})

    assert found.status_code == 200, found.text
    assert [u["id"] for u in found.json()["items"]] == [user["id"]]
    assert other["id"] not in found.text
    assert nobody.json()["items"] == []
    assert partial.json()["items"] == []  # a keyed hash of the whole address: no partial match


def test_only_an_admin_may_search_and_the_search_is_audited(api: Api, admin: dict[str, str]) -> None:
    user, patient = api.new_patient()

    refused = api.http.post("/users/search", headers=patient, json={"email": user["email"]})
    api.http.post("/users/search", headers=admin, json={"email": user["email"]})
    entries = api.http.get("/audit", params={"action": "user.search"}, headers=admin).json()["items"]

    assert refused.status_code == 403
    assert {e["outcome"] for e in entries} >= {"ok", "denied"}
    assert all(user["email"] not in str(e) for e in entries)  # ids only, never the email
