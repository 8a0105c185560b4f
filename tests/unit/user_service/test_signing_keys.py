"""Signing keys with ids, their rotation, and refresh tokens' pure parts (user_service/security.py,
user_service/settings.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from user_service import security
from user_service.settings import DEVELOPMENT_SECRET, Settings

OLD = "old-unit-test-signing-key-of-32-characters"
NEW = "new-unit-test-signing-key-of-32-characters"


def keyring(keys: str, **overrides: Any) -> Settings:
    return Settings(environment="test", signing_keys=keys, **overrides)


def header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def claims_for(user_id: str = "user-1") -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"sub": user_id, "iat": now, "exp": now + timedelta(minutes=5), "jti": "t-1", "typ": "access"}


def test_a_token_names_the_key_that_signed_it_the_first_listed_unless_one_is_named() -> None:
    first_listed = keyring(f"k2:{NEW},k1:{OLD}")
    named = keyring(f"k2:{NEW},k1:{OLD}", signing_key_id="k1")

    token = security.issue_access_token(first_listed, user_id="user-1", role="patient").token
    other = security.issue_access_token(named, user_id="user-1", role="patient").token

    assert header(token) == {"alg": "HS256", "kid": "k2", "typ": "JWT"}
    assert header(other)["kid"] == "k1"
    assert jwt.decode(token, NEW, algorithms=["HS256"])["sub"] == "user-1"
    assert jwt.decode(other, OLD, algorithms=["HS256"])["sub"] == "user-1"


def test_secret_key_alone_is_one_key_whose_id_is_stable_and_changes_with_the_key() -> None:
    one = Settings(environment="test", secret_key=OLD)

    token = security.issue_access_token(one, user_id="user-1", role="patient").token

    assert header(token)["kid"] == Settings(environment="test", secret_key=OLD).signing_key[0]
    assert header(token)["kid"] != Settings(environment="test", secret_key=NEW).signing_key[0]
    assert OLD not in header(token)["kid"]
    assert security.read_access_token(one, token) is not None


def test_an_old_key_verifies_while_listed_and_is_refused_once_dropped() -> None:
    before = keyring(f"k1:{OLD}")
    during = keyring(f"k2:{NEW},k1:{OLD}")
    after = keyring(f"k2:{NEW}")
    old_token = security.issue_access_token(before, user_id="user-1", role="patient").token
    new_token = security.issue_access_token(during, user_id="user-1", role="patient").token

    assert security.read_access_token(during, old_token) is not None
    assert security.read_access_token(after, old_token) is None
    assert security.read_access_token(after, new_token) is not None
    assert security.read_access_token(before, new_token) is None


def test_a_token_with_an_unknown_kid_or_none_is_refused_even_when_signed_with_a_listed_key() -> None:
    settings = keyring(f"k1:{OLD}")

    assert security.read_access_token(settings, jwt.encode(claims_for(), OLD, headers={"kid": "k1"}))
    assert security.read_access_token(settings, jwt.encode(claims_for(), OLD, headers={"kid": "k9"})) is None
    assert security.read_access_token(settings, jwt.encode(claims_for(), OLD)) is None


@pytest.mark.parametrize("algorithm", ["none", "HS384", "HS512"])
def test_a_token_in_any_other_algorithm_is_refused(algorithm: str) -> None:
    secret = OLD * 2  # long enough for HS512: refused for the algorithm, not for a short key
    settings = keyring(f"k1:{secret}")
    key = "" if algorithm == "none" else secret

    token = jwt.encode(claims_for(), key, algorithm=algorithm, headers={"kid": "k1"})

    assert header(token)["alg"] == algorithm
    assert security.read_access_token(settings, token) is None


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        ({"signing_keys": f"k1:{NEW},k2:{'x' * 31}"}, "'k2' must be at least 32"),
        ({"signing_keys": f"k1:{NEW},k2:{DEVELOPMENT_SECRET}"}, "'k2' must be set outside development"),
        ({"signing_keys": f"k1:{NEW},k1:{OLD}"}, "names a key id twice"),
        ({"signing_keys": NEW}, "kid:secret pairs"),
        ({"signing_keys": f"k 1:{NEW}"}, "kid:secret pairs"),
        ({"signing_keys": f"k1:{NEW}", "signing_key_id": "k2"}, "SIGNING_KEY_ID must name"),
        ({"secret_key": "x" * 31}, "SECRET_KEY must be at least 32"),
    ],
)
def test_settings_refuse_a_weak_or_muddled_keyring(overrides: dict[str, Any], refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal) as refused:
        Settings(environment="test", **overrides)  # test refuses the development key as production does

    assert NEW not in str(refused.value)  # a refusal logged at start does not print the keys


def test_the_development_key_is_fine_in_development_only() -> None:
    development = Settings(environment="development", signing_keys=f"dev:{DEVELOPMENT_SECRET}")

    assert development.signing_key == ("dev", DEVELOPMENT_SECRET)


def test_a_refresh_token_is_random_and_only_its_hash_is_kept() -> None:
    tokens = {security.new_refresh_token() for _ in range(100)}

    assert len(tokens) == 100
    assert all(len(token) >= 43 for token in tokens)  # 32 random bytes
    token = tokens.pop()
    assert security.refresh_token_hash(token) == security.refresh_token_hash(token)
    assert security.refresh_token_hash(token) != security.refresh_token_hash(tokens.pop())
    assert token not in security.refresh_token_hash(token)
