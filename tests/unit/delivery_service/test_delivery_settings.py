"""delivery_service's settings and its place among the platform's services, with nothing running."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from delivery_service.app import DEVELOPMENT_PIN_KEY, Settings
from operations import backup
from operations.cli import app
from service_runtime.launcher import SERVICES, database_name

# The field keys of production must not be the development ones either: any valid key will do here.
PRODUCTION: dict[str, object] = {
    "environment": "production",
    "allow_plaintext_transport": True,
    "field_encryption_keys": SecretStr("k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="),
}


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_tests_run_on_the_development_pin_key(environment: str) -> None:
    assert Settings(environment=environment).delivery_pin_key.get_secret_value() == DEVELOPMENT_PIN_KEY


def test_production_refuses_to_start_on_the_development_pin_key() -> None:
    with pytest.raises(ValidationError, match="DELIVERY_PIN_KEY must be set"):
        Settings.model_validate(PRODUCTION)

    chosen = Settings.model_validate(PRODUCTION | {"delivery_pin_key": SecretStr("k" * 32)})
    assert chosen.environment == "production"


def test_a_short_pin_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(delivery_pin_key=SecretStr("short"))


def test_the_settings_become_the_rules() -> None:
    rules = Settings(
        pin_over_cents=500,
        courier_reach_km=3,
        courier_speed_kmh=12,
        handling_minutes=2,
        max_delivery_attempts=3,
        max_wrong_pins=4,
    ).rules()

    assert (rules.pin_over_cents, rules.reach_km, rules.speed_kmh) == (500, 3, 12)
    assert (rules.handling, rules.max_attempts, rules.max_wrong_pins) == (timedelta(minutes=2), 3, 4)


def test_the_platform_runs_it_in_a_database_of_its_own_and_backs_it_up() -> None:
    assert "delivery_service" in SERVICES
    assert SERVICES.index("delivery_service") < SERVICES.index("user_service")  # before the gateway
    assert database_name("delivery_service") == "pharmacy_deliveries" == Settings().mongodb_database
    assert "delivery_service" in backup.TARGETS


def test_rebuild_refuses_it_couriers_come_from_commands_only() -> None:
    refused = CliRunner().invoke(app, ["rebuild", "delivery_service"], terminal_width=200)

    assert refused.exit_code == 1
    assert "delivery_service cannot be rebuilt from the journal" in " ".join(refused.output.split())
