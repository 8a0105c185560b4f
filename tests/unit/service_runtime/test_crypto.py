"""Field-level encryption without a store: sealing, opening, refusing, rotating, and the keys' settings."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from service_runtime.crypto import CannotOpen, FieldCipher, blind_index, is_sealed, key_id, parse_keys, place
from service_runtime.settings import DEVELOPMENT_FIELD_KEYS, RuntimeSettings

OLD, NEW = secrets.token_bytes(32), secrets.token_bytes(32)
AT = place("orders", "order-1", "lines")


def listed(**keys: bytes) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keys.items())


def test_a_sealed_value_opens_as_it_was_and_shows_nothing_of_it() -> None:
    cipher = FieldCipher({"k1": OLD}, "k1")
    lines = [{"medication_id": "amoxicillin-500", "quantity": 2}]

    sealed = cipher.seal(lines, at=AT)

    assert is_sealed(sealed)
    assert key_id(sealed) == "k1"
    assert "amoxicillin" not in sealed
    assert cipher.open(sealed, at=AT) == lines
    assert cipher.seal(lines, at=AT) != sealed  # a fresh nonce every time
    when = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert cipher.open(cipher.seal({"at": when}, at=AT), at=AT) == {"at": "2030-01-02T03:04:05.678901Z"}


def test_a_value_sealed_with_a_key_not_held_is_refused_naming_that_key() -> None:
    sealed = FieldCipher({"k1": OLD}, "k1").seal("Pat Ient", at=AT)

    with pytest.raises(CannotOpen, match="key 'k1'"):
        FieldCipher({"k2": NEW}, "k2").open(sealed, at=AT)


def test_a_value_sealed_with_another_key_under_the_same_id_is_refused() -> None:
    sealed = FieldCipher({"k1": OLD}, "k1").seal("Pat Ient", at=AT)

    with pytest.raises(CannotOpen, match="altered"):
        FieldCipher({"k1": NEW}, "k1").open(sealed, at=AT)


# In the nonce, the ciphertext, the tag.
@pytest.mark.parametrize("position", [0, 20, -3])
def test_an_altered_value_is_refused(position: int) -> None:
    cipher = FieldCipher({"k1": OLD}, "k1")
    sealed = cipher.seal({"latitude": 52.37, "longitude": 4.89}, at=AT)
    raw = bytearray(base64.b64decode(sealed.removeprefix("enc:v1:k1:")))
    raw[position] ^= 1
    altered = "enc:v1:k1:" + base64.b64encode(bytes(raw)).decode()

    with pytest.raises(CannotOpen, match="altered"):
        cipher.open(altered, at=AT)


def test_a_value_moved_to_another_field_or_document_does_not_open() -> None:
    cipher = FieldCipher({"k1": OLD}, "k1")
    sealed = cipher.seal("52.37,4.89", at=place("orders", "order-1", "delivery_location"))

    for elsewhere in (
        place("orders", "order-1", "lines"),
        place("orders", "order-2", "delivery_location"),
        place("prescriptions", "order-1", "delivery_location"),
    ):
        with pytest.raises(CannotOpen, match="another place"):
            cipher.open(sealed, at=elsewhere)


@pytest.mark.parametrize("stored", ["Pat Ient", {"latitude": 1.0}, None, "enc:v1:k1:not base64!"])
def test_a_value_stored_unsealed_or_malformed_is_refused(stored: object) -> None:
    with pytest.raises(CannotOpen):
        FieldCipher({"k1": OLD}, "k1").open(stored, at=AT)


def test_rotation_seals_again_under_the_new_key_and_the_old_key_can_then_go() -> None:
    before = FieldCipher({"k1": OLD}, "k1").seal("pat@example.com", at=AT)
    during = FieldCipher({"k1": OLD, "k2": NEW}, "k2")

    resealed = during.reseal(before, at=AT)
    after = FieldCipher({"k2": NEW}, "k2")

    assert during.open(before, at=AT) == "pat@example.com"
    assert key_id(resealed) == "k2"
    assert after.open(resealed, at=AT) == "pat@example.com"
    with pytest.raises(CannotOpen):
        after.open(before, at=AT)


def test_keys_are_read_from_their_setting_and_wrong_ones_are_refused() -> None:
    assert parse_keys(listed(k1=OLD, k2=NEW)) == {"k1": OLD, "k2": NEW}
    for wrong, why in (
        (listed(k1=OLD[:16]), "16 bytes, not 32"),
        ("k1:not-base64", "not base64"),
        (listed(**{"k/1": OLD}), "key id"),
        (listed(k1=OLD) + "," + listed(k1=NEW), "twice"),
        ("", "no key"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_keys(wrong)


def test_the_current_key_is_the_one_named_else_the_first_listed() -> None:
    keys = listed(k1=OLD, k2=NEW)

    named = RuntimeSettings(field_encryption_keys=keys, field_encryption_key_id="k2")
    first = RuntimeSettings(field_encryption_keys=keys)

    assert FieldCipher.from_settings(named).current == "k2"
    assert FieldCipher.from_settings(first).current == "k1"
    with pytest.raises(ValidationError, match="k3 is not listed"):
        RuntimeSettings(field_encryption_keys=keys, field_encryption_key_id="k3")


def test_the_development_key_is_refused_outside_development() -> None:
    def settings(environment: str, keys: str) -> RuntimeSettings:
        return RuntimeSettings(
            environment=environment,
            field_encryption_keys=keys,
            # Over TLS: production refuses plaintext connections too.
            rabbitmq_url="amqps://rabbitmq:5671/",
            mongodb_url="mongodb://mongodb:27017/?tls=true",
        )

    assert settings("development", DEVELOPMENT_FIELD_KEYS)
    renamed = DEVELOPMENT_FIELD_KEYS.replace("dev:", "mine:")
    for environment in ("test", "production"):
        # Alone, or listed among others under another id.
        for keys in (DEVELOPMENT_FIELD_KEYS, f"{listed(k1=NEW)},{renamed}"):
            with pytest.raises(ValidationError, match="FIELD_ENCRYPTION_KEYS must be set"):
                settings(environment, keys)
        assert settings(environment, listed(k1=NEW))


def test_a_blind_index_is_the_same_for_the_same_text_and_key_only() -> None:
    assert blind_index(OLD, "pat@example.com") == blind_index(OLD, "pat@example.com")
    assert blind_index(OLD, "pat@example.com") != blind_index(NEW, "pat@example.com")
    assert blind_index(OLD, "pat@example.com") != blind_index(OLD, "pam@example.com")
    assert "pat" not in blind_index(OLD, "pat@example.com")
