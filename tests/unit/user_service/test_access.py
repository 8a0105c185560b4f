"""Passwords, tokens and who may see whose records, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from user_service import domain, security
from user_service.domain import User
from user_service.settings import Settings

SETTINGS = Settings(environment="test", secret_key="a-test-signing-key-of-at-least-32-chars")


def user(role: domain.Role = "patient", uid: str = "u-1") -> User:
    return User(
        id=uid,
        email="p@example.com",
        full_name="P",
        role=role,
        password_hash="x",
        created_at=datetime.now(UTC),
    )


@pytest.mark.parametrize("password", ["short", "p@example.com", "P@Example.com", "p", "x" * 129])
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(domain.WeakPassword):
        domain.check_password_policy(password, "p@example.com")


def test_a_long_passphrase_is_accepted() -> None:
    domain.check_password_policy("correct horse battery staple", "p@example.com")


def test_a_password_verifies_only_against_its_own_hash() -> None:
    hashed = security.hash_password("correct horse battery")

    assert hashed.startswith("$argon2id$")
    assert security.verify_password(hashed, "correct horse battery")
    assert not security.verify_password(hashed, "correct horse batterz")
    assert not security.verify_password(None, "correct horse battery")


def test_an_issued_token_reads_back_its_user_and_role() -> None:
    token, lifetime = security.issue_access_token(SETTINGS, user_id="u-1", role="pharmacist")

    claims = security.read_access_token(SETTINGS, token)

    assert claims is not None
    assert (claims["sub"], claims["role"]) == ("u-1", "pharmacist")
    assert lifetime == SETTINGS.access_token_minutes * 60


def test_forged_expired_and_foreign_tokens_are_refused() -> None:
    token, _ = security.issue_access_token(SETTINGS, user_id="u-1", role="admin")
    other = Settings(environment="test", secret_key="another-signing-key-of-32-characters!!")
    now = datetime.now(UTC)
    key = SETTINGS.secret_key.get_secret_value()
    expired = jwt.encode(
        {"sub": "u-1", "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1), "typ": "access"}, key
    )
    untyped = jwt.encode({"sub": "u-1", "iat": now, "exp": now + timedelta(hours=1)}, key)

    assert security.read_access_token(other, token) is None
    assert security.read_access_token(SETTINGS, token[:-2] + "xx") is None
    assert security.read_access_token(SETTINGS, expired) is None
    assert security.read_access_token(SETTINGS, untyped) is None


def test_the_default_signing_key_is_refused_outside_development() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(environment="production")
    with pytest.raises(ValueError, match="32 characters"):
        Settings(environment="test", secret_key="too-short")
    assert Settings(environment="development").environment == "development"


def test_patients_see_their_own_records_and_staff_anyones() -> None:
    assert domain.owner_scope(user("patient"), None) == "u-1"
    assert domain.owner_scope(user("patient"), "u-1") == "u-1"
    with pytest.raises(domain.Forbidden):
        domain.owner_scope(user("patient"), "u-2")
    assert domain.owner_scope(user("pharmacist"), "u-2") == "u-2"
    assert domain.owner_scope(user("admin"), None) is None
