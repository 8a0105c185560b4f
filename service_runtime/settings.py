"""One settings object per service, from environment variables, with working local defaults."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class RuntimeSettings(BaseSettings):
    """What every service needs to reach the broker and its own database."""

    model_config = SettingsConfigDict(extra="ignore")

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
