"""The gateway's settings, from the environment."""

from __future__ import annotations

import hashlib
import re

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from service_runtime.settings import RuntimeSettings

DEVELOPMENT_SECRET = "development-only-signing-key-change-me"  # noqa: S105 - refused outside development
DEVELOPMENT_EMAIL_INDEX_KEY = "development-only-email-index-key-change-me"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def derived_key_id(secret: str) -> str:
    """The key id of a SECRET_KEY: stable for one secret, different for the next.

    Published in every token's header; a hash reveals nothing the token's own HMAC does not already
    offer to an offline guesser.
    """
    return hashlib.sha256(b"pharmacy signing key id:" + secret.encode()).hexdigest()[:16]


class Settings(RuntimeSettings):
    # A refused value must not reach the start-up log: the inputs hold the signing keys.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    mongodb_database: str = "pharmacy_users"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    # Key rotation: "kid:secret,kid:secret". When set it replaces SECRET_KEY; SIGNING_KEY_ID (else the
    # first listed) signs, every listed key verifies.
    signing_keys: SecretStr | None = None
    signing_key_id: str | None = None
    access_token_minutes: int = 15
    refresh_token_days: float = Field(default=14, gt=0)
    # A sign-out takes effect at once on the gateway process that took it, and on any other within this
    # time: how old its copy of the revoked access tokens may grow before it reads them again.
    revocations_refresh_seconds: float = Field(default=5, gt=0)
    # Expired refresh tokens and revocations are deleted this often (FerretDB has no TTL index).
    expired_tokens_sweep_seconds: float = Field(default=300, gt=0)
    # How long a browser stays signed in to the web UI, however active (then it signs in again).
    web_session_hours: float = Field(default=12, gt=0)
    # An order page follows its order live by asking order_service this often (one RPC a tab), for at
    # most this long; then it says so and the patient reloads to follow again.
    web_live_poll_seconds: float = Field(default=1, gt=0)
    web_live_max_minutes: float = Field(default=15, gt=0)
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    # Failed sign-ins allowed per account, and per client address, in one window; then 429.
    sign_in_failures_per_account: int = Field(default=5, ge=1)
    sign_in_failures_per_address: int = Field(default=50, ge=1)
    sign_in_window_seconds: float = Field(default=900, gt=0)
    # The edge (user_service/edge.py): a larger request body is refused with 413.
    max_request_bytes: int = Field(default=64 * 1024, ge=1)
    # Web pages of these origins may call the API from a browser (CORS), a JSON list; none by default.
    cors_allowed_origins: list[str] = []
    # Strict-Transport-Security on every answer (browsers heed it over HTTPS only); 0 sends none.
    hsts_max_age_seconds: int = Field(default=365 * 24 * 3600, ge=0)
    # Emails are stored sealed; this key makes the keyed hash they are found and kept unique by. Changing
    # it loses every account's email lookup: it is not rotated with FIELD_ENCRYPTION_KEYS.
    email_index_key: SecretStr = SecretStr(DEVELOPMENT_EMAIL_INDEX_KEY)

    @property
    def verifying_keys(self) -> dict[str, str]:
        """Every key a token may be signed with, by key id."""
        return dict(self._listed_keys())

    @property
    def signing_key(self) -> tuple[str, str]:
        """The key id and secret that sign new tokens."""
        keys = self._listed_keys()
        kid = self.signing_key_id or keys[0][0]
        return kid, self.verifying_keys[kid]

    def _listed_keys(self) -> list[tuple[str, str]]:
        if self.signing_keys is None:
            secret = self.secret_key.get_secret_value()
            return [(derived_key_id(secret), secret)]
        entries = [entry.strip().partition(":") for entry in self.signing_keys.get_secret_value().split(",")]
        return [(kid, secret) for kid, _, secret in entries]

    @model_validator(mode="after")
    def refuse_weak_signing_keys(self) -> Settings:
        # A forgotten signing key must fail at start, not sign production tokens with a public value.
        keys = self._listed_keys()
        for kid, secret in keys:
            named = "SECRET_KEY" if self.signing_keys is None else f"the signing key {kid!r}"
            if not _KEY_ID.fullmatch(kid) or not secret:
                raise ValueError("SIGNING_KEYS must be kid:secret pairs, the kid of letters, digits . _ -")
            if self.environment != "development" and secret == DEVELOPMENT_SECRET:
                raise ValueError(f"{named} must be set outside development")
            if len(secret) < 32:
                raise ValueError(f"{named} must be at least 32 characters")
        if len(self.verifying_keys) < len(keys):
            raise ValueError("SIGNING_KEYS names a key id twice")
        if self.signing_key_id is not None and self.signing_key_id not in self.verifying_keys:
            raise ValueError("SIGNING_KEY_ID must name a key of SIGNING_KEYS")
        return self

    @model_validator(mode="after")
    def refuse_default_email_index_key(self) -> Settings:
        key = self.email_index_key.get_secret_value()
        if self.environment != "development" and key == DEVELOPMENT_EMAIL_INDEX_KEY:
            raise ValueError("EMAIL_INDEX_KEY must be set outside development")
        if len(key) < 32:
            raise ValueError("EMAIL_INDEX_KEY must be at least 32 characters")
        return self
