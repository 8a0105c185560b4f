"""One settings object per service, from environment variables, with working local defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service_runtime.crypto import parse_keys

# A fixed key so a development run needs no setup; refused anywhere else (see below).
DEVELOPMENT_FIELD_KEYS = "dev:ZGV2ZWxvcG1lbnQtb25seS1maWVsZC1rZXktMDAzMmI="


class RuntimeSettings(BaseSettings):
    """What every service needs to reach the broker and its own database."""

    # A refused value must not reach the start-up log: URLs carry the broker's and the store's passwords.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    environment: Literal["development", "test", "production"] = "development"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    # Each service overrides this default with its own database: no two services share one.
    mongodb_database: str = "pharmacy"
    # Prefix of every exchange and queue name, so two platforms (or two test runs) share a broker safely.
    broker_namespace: str = "pharmacy"
    # How often a message may be delivered before it is dead-lettered. Fixed at queue declaration.
    delivery_limit: int = 5
    retry_backoff_seconds: float = 0.2
    rpc_timeout_seconds: float = 10.0
    # The outbox is swept at start and soon after a failed publish; this is the slow backstop.
    outbox_sweep_seconds: float = 60.0
    outbox_retry_seconds: float = 1.0
    # RPC requests answered at once per service; events are always taken one at a time, in order.
    prefetch_count: int = 20
    log_level: str = "INFO"
    # Tracing (service_runtime/tracing.py) is off unless an OTLP/HTTP endpoint is named, by the standard
    # OpenTelemetry variables; the exporter reads the others itself (OTEL_EXPORTER_OTLP_HEADERS,
    # OTEL_BSP_SCHEDULE_DELAY, OTEL_TRACES_SAMPLER...).
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    otel_sdk_disabled: bool = False
    # The operator's port of a back-end service process: GET /metrics, /health/live, /health/ready.
    # Unset: none (a service started inside a test); 0: any free port; the launcher gives each its own.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # How long a readiness check waits for the broker or the store before calling it down.
    health_timeout_seconds: float = 1.0
    # Queue depths are asked of the broker when scraped, at most this often.
    queue_depth_refresh_seconds: float = 5.0
    # Patients' data is sealed at rest (service_runtime/crypto.py) with the key FIELD_ENCRYPTION_KEY_ID
    # names (default: the first listed); FIELD_ENCRYPTION_KEYS lists it and every older key still in use.
    field_encryption_keys: SecretStr = SecretStr(DEVELOPMENT_FIELD_KEYS)
    field_encryption_key_id: str = ""

    @model_validator(mode="after")
    def refuse_development_field_keys(self) -> RuntimeSettings:
        # A forgotten key must fail at start, not seal patients' data with a key published here.
        keys = parse_keys(self.field_encryption_keys.get_secret_value())
        if self.field_encryption_key_id and self.field_encryption_key_id not in keys:
            raise ValueError(f"FIELD_ENCRYPTION_KEY_ID {self.field_encryption_key_id} is not listed")
        if self.environment != "development" and set(keys.values()) & set(
            parse_keys(DEVELOPMENT_FIELD_KEYS).values()
        ):
            raise ValueError("FIELD_ENCRYPTION_KEYS must be set outside development")
        return self
