"""The gateway's own rules: the password policy, whose records a user may see (user_service/domain.py),
and password hashes and access tokens (user_service/security.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from user_service import domain, security
from user_service.domain import Role, User
from user_service.settings import Settings

EMAIL = "pat.ient@example.com"
SIGNING_KEY = "unit-test-signing-key-of-at-least-32-characters"
SETTINGS = Settings(environment="test", secret_key=SIGNING_KEY, access_token_minutes=30)
KID = SETTINGS.signing_key[0]


def user(role: Role = "patient", user_id: str = "user-1") -> User:
    return User(
        id=user_id,
        email=EMAIL,
        full_name="Pat Ient",
        role=role,
        password_hash="unused",
        created_at=datetime(2026, 11, 26, tzinfo=UTC),
    )


# --- password policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["a" * 12, "a" * 128, "correct horse battery staple", f"{EMAIL} and more"]
)
def test_a_password_of_12_to_128_characters_is_accepted(password: str) -> None:
    domain.check_password_policy(password, EMAIL)


@pytest.mark.parametrize(("password", "limit"), [("a" * 11, "at least 12"), ("a" * 129, "at most 128")])
def test_a_password_shorter_than_12_or_longer_than_128_is_refused(password: str, limit: str) -> None:
    with pytest.raises(domain.WeakPassword, match=limit):
        domain.check_password_policy(password, EMAIL)


@pytest.mark.parametrize(
    ("password", "email"),
    [
        (EMAIL, EMAIL),
        ("Pat.Ient@Example.COM", EMAIL),
        (f"  {EMAIL}  ", EMAIL),
        ("patient.smith", "patient.smith@example.com"),
        ("PATIENT.SMITH", "patient.smith@example.com"),
    ],
)
def test_the_email_address_or_its_name_part_is_refused_as_a_password(password: str, email: str) -> None:
    with pytest.raises(domain.WeakPassword, match="email"):
        domain.check_password_policy(password, email)


# --- who sees whose records -------------------------------------------------------------------------


def test_a_patient_listing_without_naming_anyone_sees_their_own_records() -> None:
    assert domain.owner_scope(user("patient", "user-1"), None) == "user-1"
    assert domain.owner_scope(user("patient", "user-1"), "user-1") == "user-1"


def test_a_patient_asking_for_another_patients_records_is_forbidden() -> None:
    with pytest.raises(domain.Forbidden):
        domain.owner_scope(user("patient", "user-1"), "user-2")


@pytest.mark.parametrize("role", ["pharmacist", "admin"])
def test_staff_see_the_records_they_ask_for_or_everyones(role: Role) -> None:
    staff = user(role, "staff-1")

    assert staff.is_staff
    assert domain.owner_scope(staff, "user-2") == "user-2"
    assert domain.owner_scope(staff, None) is None


def test_a_patient_is_not_staff() -> None:
    assert not user("patient").is_staff


def test_a_courier_reaches_no_patients_records_not_even_by_naming_none() -> None:
    courier = user("courier", "courier-1")

    assert not courier.is_staff
    for asked in (None, "courier-1", "user-2"):
        with pytest.raises(domain.Forbidden, match="courier"):
            domain.owner_scope(courier, asked)


def test_payments_are_read_by_their_patient_and_admins_only() -> None:
    readers = domain.PAYMENT_READERS

    assert domain.owner_scope(user("admin"), "user-2", readers=readers) == "user-2"
    assert domain.owner_scope(user("patient", "user-1"), None, readers=readers) == "user-1"
    with pytest.raises(domain.Forbidden):
        domain.owner_scope(user("pharmacist"), "user-2", readers=readers)


# --- password hashes --------------------------------------------------------------------------------


def test_a_hashed_password_verifies_and_a_wrong_one_does_not() -> None:
    hashed = security.hash_password("correct horse battery staple")

    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert security.verify_password(hashed, "correct horse battery staple") is True
    assert security.verify_password(hashed, "correct horse battery stapl") is False
    assert security.verify_password(hashed, "") is False


def test_the_same_password_hashes_differently_each_time() -> None:
    first, second = (security.hash_password("correct horse battery staple") for _ in range(2))

    assert first != second
    assert security.verify_password(second, "correct horse battery staple")


def test_no_hash_or_a_broken_hash_never_verifies() -> None:
    assert security.verify_password(None, "correct horse battery staple") is False
    assert security.verify_password("not-an-argon2-hash", "correct horse battery staple") is False


# --- access tokens ----------------------------------------------------------------------------------


def test_an_issued_token_reads_back_as_its_user_and_role() -> None:
    issued = security.issue_access_token(SETTINGS, user_id="user-1", role="pharmacist")
    token, lifetime = issued.token, issued.expires_in

    claims = security.read_access_token(SETTINGS, token)

    assert claims is not None
    assert (claims["sub"], claims["role"], claims["typ"]) == ("user-1", "pharmacist", "access")
    assert lifetime == 30 * 60
    assert claims["exp"] - claims["iat"] == lifetime


def test_every_token_has_its_own_id() -> None:
    first = security.issue_access_token(SETTINGS, user_id="user-1", role="patient").token
    second = security.issue_access_token(SETTINGS, user_id="user-1", role="patient").token

    first_claims = security.read_access_token(SETTINGS, first)
    second_claims = security.read_access_token(SETTINGS, second)
    assert first_claims is not None
    assert second_claims is not None
    assert first_claims["jti"] != second_claims["jti"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_token_whose_claims_were_changed_is_refused() -> None:
    token = security.issue_access_token(SETTINGS, user_id="user-1", role="patient").token
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    promoted = _b64(json.dumps({**claims, "role": "admin"}).encode())

    assert security.read_access_token(SETTINGS, f"{header}.{promoted}.{signature}") is None
    assert security.read_access_token(SETTINGS, f"{header}.{payload}.{signature}") is not None


def test_a_token_signed_with_another_key_is_refused() -> None:
    other = Settings(environment="test", secret_key="another-unit-test-key-of-32-characters!")
    token = security.issue_access_token(other, user_id="user-1", role="admin").token

    assert security.read_access_token(SETTINGS, token) is None


def test_an_expired_token_is_refused() -> None:
    already_over = Settings(environment="test", secret_key=SIGNING_KEY, access_token_minutes=-1)
    token = security.issue_access_token(already_over, user_id="user-1", role="patient").token

    assert security.read_access_token(SETTINGS, token) is None


def test_a_token_that_is_not_an_access_token_or_lacks_a_subject_is_refused() -> None:
    now = datetime.now(UTC)
    valid = {"sub": "user-1", "iat": now, "exp": now + timedelta(minutes=5), "jti": "t-1", "typ": "access"}
    refresh = {**valid, "typ": "refresh"}
    no_subject = {k: v for k, v in valid.items() if k != "sub"}
    no_id = {k: v for k, v in valid.items() if k != "jti"}

    def signed(claims: dict[str, object]) -> str:
        return jwt.encode(claims, SIGNING_KEY, headers={"kid": KID})

    assert security.read_access_token(SETTINGS, signed(valid)) is not None
    assert security.read_access_token(SETTINGS, signed(refresh)) is None
    assert security.read_access_token(SETTINGS, signed(no_subject)) is None
    assert security.read_access_token(SETTINGS, signed(no_id)) is None  # it could not be revoked
    assert security.read_access_token(SETTINGS, "not.a.token") is None


def test_an_unsigned_token_is_refused() -> None:
    now = datetime.now(UTC)
    claims = {
        "sub": "user-1",
        "role": "admin",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "t-1",
        "typ": "access",
    }

    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": KID})
    assert security.read_access_token(SETTINGS, unsigned) is None


def test_settings_refuse_the_development_key_outside_development() -> None:
    # Plaintext transport allowed here so that the key, and nothing before it, is what is refused.
    assert Settings(environment="development").secret_key.get_secret_value()
    with pytest.raises(ValueError, match="SECRET_KEY must be set"):
        Settings(environment="production", allow_plaintext_transport=True)
    with pytest.raises(ValueError, match="at least 32"):
        Settings(environment="production", allow_plaintext_transport=True, secret_key="x" * 31)


def test_a_retry_with_the_same_idempotency_key_is_the_same_request_of_the_same_user_only() -> None:
    first = domain.keyed_request_id("user-1", "upload-7")

    assert domain.keyed_request_id("user-1", "upload-7") == first
    assert domain.keyed_request_id("user-1", "upload-8") != first
    assert domain.keyed_request_id("user-2", "upload-7") != first
    # No way to forge another user's request by moving characters between the user id and the key.
    assert domain.keyed_request_id("user-1:upload", "7") != domain.keyed_request_id("user-1", "upload:7")
