"""One settings object per service, from environment variables, with working local defaults."""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from service_runtime.crypto import parse_keys

# A fixed key so a development run needs no setup; refused anywhere else (see below).
DEVELOPMENT_FIELD_KEYS = "dev:ZGV2ZWxvcG1lbnQtb25seS1maWVsZC1rZXktMDAzMmI="


class RuntimeSettings(BaseSettings):
    """What every service needs to reach the broker and its own database."""

    # A refused value must not reach the start-up log: URLs carry the broker's and the store's passwords.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    environment: Literal["development", "test", "production"] = "development"
    # One URL, or every node of a cluster comma-separated: connections move between them (broker_nodes.py).
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
    # RPC requests answered at once per service.
    prefetch_count: int = 20
    # Each service's events and write commands are spread over this many partition queues by aggregate
    # (a consistent-hash exchange), each consumed by one replica at a time: up to this many replicas
    # work at once. Every process of a platform must agree; fixed once the queues exist.
    event_partitions: int = Field(default=4, ge=1, le=64)
    # Messages handled at once per partition queue, different aggregates concurrently, one aggregate's
    # strictly in order.
    event_prefetch: int = Field(default=32, ge=1)
    # This process's place among the replicas of its service (the launcher sets both; a StatefulSet's
    # ordinal would do). Replica i takes partitions i, i + n, ... at once and stands by for the others
    # after `standby_after_seconds`, so replicas started together share the partitions; unset, the
    # replicas share them through their store and hand them over as they come and go (below).
    replica_index: int | None = Field(default=None, ge=0)
    replica_count: int = Field(default=1, ge=1)
    standby_after_seconds: float = Field(default=3.0, ge=0)
    # Unnumbered replicas (REPLICA_INDEX unset: a Kubernetes Deployment's pods) share the partitions
    # through a member document each in their store (service_runtime/membership.py): renewed every
    # tick; a replica whose heartbeat is older than the lease is taken as gone (a clean stop says so
    # at once); a partition given up waits this long at most for the messages it holds to be handled.
    partition_tick_seconds: float = Field(default=2.0, gt=0)
    partition_lease_seconds: float = Field(default=10.0, gt=0)
    partition_drain_seconds: float = Field(default=10.0, ge=0)
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
    # TLS to the broker takes an amqps:// RABBITMQ_URL; to the store, tls=true in MONGODB_URL. These name
    # the CA that signed the server's certificate and the client's own certificate, when the server asks
    # for one; they are written into the URLs, which every client (pharmacy-ops too) connects by.
    rabbitmq_tls_ca_file: str = ""
    rabbitmq_tls_cert_file: str = ""
    rabbitmq_tls_key_file: str = ""
    mongodb_tls_ca_file: str = ""
    # The client's certificate and its key in one PEM file, as PyMongo takes it.
    mongodb_tls_certificate_key_file: str = ""
    # Production refuses a plaintext broker or store connection unless this says the network between is
    # trusted (a private host network, or a mesh that encrypts it already).
    allow_plaintext_transport: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Docker and Kubernetes secrets are files: with SECRETS_DIR=/run/secrets, /run/secrets/secret_key
        # is SECRET_KEY, for any setting. The environment, when it names one too, wins.
        secrets_dir = os.environ.get("SECRETS_DIR")
        files = (
            SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)
            if secrets_dir
            else file_secret_settings
        )
        return init_settings, env_settings, dotenv_settings, files

    @model_validator(mode="after")
    def refuse_plaintext_transport(self) -> RuntimeSettings:
        if self.rabbitmq_tls_ca_file or self.rabbitmq_tls_cert_file or self.rabbitmq_tls_key_file:
            nodes = self.rabbitmq_url.split(",")
            if any(urlsplit(node.strip()).scheme != "amqps" for node in nodes):
                raise ValueError("RABBITMQ_TLS_* files need an amqps:// RABBITMQ_URL")
            # RABBITMQ_URL may list every node of a cluster (service_runtime/broker_nodes.py): each one.
            self.rabbitmq_url = ",".join(
                with_query(
                    node.strip(),
                    cafile=self.rabbitmq_tls_ca_file,
                    certfile=self.rabbitmq_tls_cert_file,
                    keyfile=self.rabbitmq_tls_key_file,
                )
                for node in nodes
            )
        if self.mongodb_tls_ca_file or self.mongodb_tls_certificate_key_file:
            self.mongodb_url = with_query(
                self.mongodb_url,
                tls="true",
                tlsCAFile=self.mongodb_tls_ca_file,
                tlsCertificateKeyFile=self.mongodb_tls_certificate_key_file,
            )
        plaintext = plaintext_connections(self.rabbitmq_url, self.mongodb_url)
        if self.environment == "production" and plaintext and not self.allow_plaintext_transport:
            raise ValueError(
                f"{' and '.join(plaintext)} in production: use TLS, or set ALLOW_PLAINTEXT_TRANSPORT=true "
                "where the network between is trusted"
            )
        return self

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


def with_query(url: str, **params: str) -> str:
    """`url` with these query parameters set; empty ones are left out."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | {name: value for name, value in params.items() if value}
    # PyMongo wants a "/" between the hosts and the options.
    return parts._replace(path=parts.path or "/", query=urlencode(query, safe="/")).geturl()


def plaintext_connections(rabbitmq_url: str, mongodb_url: str) -> list[str]:
    """Which of the broker and the store these URLs reach without TLS."""
    nodes = rabbitmq_url.split(",")
    tls_broker = all(urlsplit(node.strip()).scheme == "amqps" for node in nodes)
    found = [] if tls_broker else ["RABBITMQ_URL is not amqps://"]
    store = urlsplit(mongodb_url)
    options = {name.lower(): value.lower() for name, value in parse_qsl(store.query)}
    # mongodb+srv:// means TLS unless told otherwise; mongodb:// only with tls=true (or its old name ssl).
    tls = options.get("tls", options.get("ssl", "true" if store.scheme == "mongodb+srv" else "false"))
    return found if tls == "true" else [*found, "MONGODB_URL has no tls=true"]
