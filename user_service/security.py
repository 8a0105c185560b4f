"""Password hashing (argon2id), access tokens (JWT) and refresh tokens (opaque, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from user_service.settings import Settings

# argon2-cffi's defaults are RFC 9106's low-memory profile: argon2id, t=3, m=64 MiB, p=4.
_hasher = PasswordHasher()
_ALGORITHM = "HS256"
# Verifying against this keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash was made with other parameters than today's (older, weaker ones)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, InvalidHashError):
        return False


@dataclass(frozen=True)
class AccessToken:
    """An issued access token, with what it takes to revoke it before it expires."""

    token: str
    jti: str
    expires_at: datetime
    expires_in: int


def issue_access_token(settings: Settings, *, user_id: str, role: str) -> AccessToken:
    """A token signed with the current key, its id in the header so a verifier picks the right key."""
    now = datetime.now(UTC)
    lifetime = timedelta(minutes=settings.access_token_minutes)
    jti = str(uuid4())
    claims = {"sub": user_id, "role": role, "iat": now, "exp": now + lifetime, "jti": jti, "typ": "access"}
    kid, key = settings.signing_key
    token = jwt.encode(claims, key, algorithm=_ALGORITHM, headers={"kid": kid})
    return AccessToken(token, jti, now + lifetime, int(lifetime.total_seconds()))


def read_access_token(settings: Settings, token: str) -> dict[str, Any] | None:
    """The token's claims, or None when it is forged, expired, not an access token, or signed with a key
    that is not (or no longer) configured, or with any algorithm but ours (`none` included)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = settings.verifying_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            return None
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[_ALGORITHM], options={"require": ["sub", "exp", "iat", "jti"]}
        )
    except jwt.PyJWTError:
        return None
    return claims if claims.get("typ") == "access" else None


def new_refresh_token() -> str:
    """An opaque refresh token: 256 random bits, meaningless without the store."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    """What the store keeps of a refresh token: a leaked store holds no token a client could present.

    A plain SHA-256 suffices: the token is random, not a password to be guessed.
    """
    return hashlib.sha256(token.encode()).hexdigest()
