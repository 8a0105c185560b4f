"""Transport security and secrets in the shared settings (issue 5): TLS files reach the clients through
the URLs they connect by, production refuses plaintext, and any setting can be read from a file."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import aiormq
import pytest
from pydantic import ValidationError
from pymongo.uri_parser import parse_uri

from service_runtime.settings import RuntimeSettings
from user_service.settings import Settings as GatewaySettings

TLS_BROKER = "amqps://pharmacy:broker-password@rabbitmq:5671/"
TLS_STORE = "mongodb://pharmacy:store-password@mongodb:27017/?tls=true"


def production(**values: Any) -> RuntimeSettings:
    keys = f"k1:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    return RuntimeSettings(environment="production", field_encryption_keys=keys, **values)


def test_production_refuses_a_plaintext_broker_or_store() -> None:
    with pytest.raises(ValidationError) as broker:
        production(rabbitmq_url="amqp://pharmacy:broker-password@rabbitmq:5672/", mongodb_url=TLS_STORE)
    with pytest.raises(ValidationError) as store:
        production(rabbitmq_url=TLS_BROKER, mongodb_url="mongodb://pharmacy:store-password@mongodb:27017/")

    assert "RABBITMQ_URL is not amqps://" in str(broker.value)
    assert "MONGODB_URL has no tls=true" in str(store.value)
    for refused in (broker, store):
        assert "password" not in str(refused.value)  # the URLs' credentials stay out of the log


def test_production_starts_with_tls_to_both_or_plaintext_on_a_network_declared_trusted() -> None:
    production(rabbitmq_url=TLS_BROKER, mongodb_url=TLS_STORE)
    production(rabbitmq_url=TLS_BROKER, mongodb_url="mongodb+srv://pharmacy:store-password@cluster.example/")
    production(
        rabbitmq_url="amqp://guest:guest@rabbitmq:5672/",
        mongodb_url="mongodb://mongodb:27017/",
        allow_plaintext_transport=True,
    )
    RuntimeSettings(environment="test", rabbitmq_url="amqp://guest:guest@127.0.0.1:5672/")


def test_tls_turned_off_in_the_url_counts_as_plaintext() -> None:
    with pytest.raises(ValidationError, match="MONGODB_URL has no tls=true"):
        production(rabbitmq_url=TLS_BROKER, mongodb_url="mongodb+srv://cluster.example/?tls=false")


async def test_tls_files_reach_both_clients_through_their_urls(tmp_path: Path) -> None:
    # Async: aiormq's Connection takes the running loop; a sync test has none once another ran asyncio.run.
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "store-client")}
    for path in files.values():
        path.write_text("a PEM file\n")

    settings = RuntimeSettings(
        rabbitmq_url="amqps://pharmacy:p%40ss@rabbitmq:5671/pharmacy?heartbeat=30",
        rabbitmq_tls_ca_file=str(files["ca"]),
        rabbitmq_tls_cert_file=str(files["cert"]),
        rabbitmq_tls_key_file=str(files["key"]),
        mongodb_url="mongodb://pharmacy:secret@mongodb:27017",
        mongodb_tls_ca_file=str(files["ca"]),
        mongodb_tls_certificate_key_file=str(files["store-client"]),
    )

    # What aio-pika (and FastStream through it) builds its SSL context from.
    broker = aiormq.Connection(settings.rabbitmq_url)
    assert broker.url.scheme == "amqps"
    assert (broker.url.user, broker.url.password, broker.url.path) == ("pharmacy", "p@ss", "/pharmacy")
    assert broker.url.query["heartbeat"] == "30"
    assert broker.ssl_certs.cafile == str(files["ca"])
    assert (broker.ssl_certs.cert, broker.ssl_certs.key) == (str(files["cert"]), str(files["key"]))
    assert broker.ssl_certs.verify
    # What PyMongo connects with.
    store = parse_uri(settings.mongodb_url)
    assert (store["username"], store["password"]) == ("pharmacy", "secret")
    assert store["options"]["tls"] is True
    assert store["options"]["tlsCAFile"] == str(files["ca"])
    assert store["options"]["tlsCertificateKeyFile"] == str(files["store-client"])


def test_without_tls_files_the_urls_are_left_as_given() -> None:
    settings = RuntimeSettings(rabbitmq_url="amqp://guest:guest@127.0.0.1:5672/", mongodb_url=TLS_STORE)

    assert settings.rabbitmq_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.mongodb_url == TLS_STORE


def test_broker_tls_files_need_an_amqps_url() -> None:
    with pytest.raises(ValidationError, match="need an amqps:// RABBITMQ_URL"):
        RuntimeSettings(rabbitmq_url="amqp://rabbitmq:5672/", rabbitmq_tls_ca_file="/certs/ca.pem")


def test_any_setting_is_read_from_a_file_in_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_key = secrets.token_urlsafe(48)
    (tmp_path / "secret_key").write_text(secret_key + "\n")  # as `echo ... > file` leaves it
    (tmp_path / "RABBITMQ_URL").write_text(TLS_BROKER)
    (tmp_path / "admin_password").write_text("from a file")
    for variable in ("SECRET_KEY", "RABBITMQ_URL", "ADMIN_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ADMIN_PASSWORD", "from the environment")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))

    settings = GatewaySettings()

    assert settings.secret_key.get_secret_value() == secret_key
    assert settings.rabbitmq_url == TLS_BROKER
    assert settings.admin_password is not None
    assert settings.admin_password.get_secret_value() == "from the environment"  # the environment wins
