"""The gateway's settings, from the environment."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from service_runtime.settings import RuntimeSettings

DEVELOPMENT_SECRET = "development-only-signing-key-change-me"  # noqa: S105 - refused outside development
DEVELOPMENT_EMAIL_INDEX_KEY = "development-only-email-index-key-change-me"


class Settings(RuntimeSettings):
    mongodb_database: str = "pharmacy_users"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    access_token_minutes: int = 30
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    # Failed sign-ins allowed per account, and per client address, in one window; then 429.
    sign_in_failures_per_account: int = Field(default=5, ge=1)
    sign_in_failures_per_address: int = Field(default=50, ge=1)
    sign_in_window_seconds: float = Field(default=900, gt=0)
    # Emails are stored sealed; this key makes the keyed hash they are found and kept unique by. Changing
    # it loses every account's email lookup: it is not rotated with FIELD_ENCRYPTION_KEYS.
    email_index_key: SecretStr = SecretStr(DEVELOPMENT_EMAIL_INDEX_KEY)

    @model_validator(mode="after")
    def refuse_default_secret(self) -> Settings:
        # A forgotten signing key must fail at start, not sign production tokens with a public value.
        if self.environment != "development" and self.secret_key.get_secret_value() == DEVELOPMENT_SECRET:
            raise ValueError("SECRET_KEY must be set outside development")
        if len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def refuse_default_email_index_key(self) -> Settings:
        key = self.email_index_key.get_secret_value()
        if self.environment != "development" and key == DEVELOPMENT_EMAIL_INDEX_KEY:
            raise ValueError("EMAIL_INDEX_KEY must be set outside development")
        if len(key) < 32:
            raise ValueError("EMAIL_INDEX_KEY must be at least 32 characters")
        return self
