"""Field-level encryption at rest: patients' data sealed with AES-GCM under a key id, and blind indexes.

A sealed value is one string, `enc:v1:<key id>:<base64 of nonce and ciphertext>`. The key id says which
key opens it, so a new key can seal new values while older ones still open (`pharmacy-ops rotate-keys`
re-seals them). The associated data is where the value lives (collection, document id, field path): a
ciphertext copied into another field, or into another patient's document, does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic_core import to_json

if TYPE_CHECKING:
    from service_runtime.settings import RuntimeSettings

PREFIX = "enc:v1:"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class CannotOpen(Exception):
    """A value that must be sealed is not, names a key not configured, or was altered or moved."""


def parse_keys(spec: str) -> dict[str, bytes]:
    """Keys from `id:base64key,id2:base64key`, each key 32 random bytes. Raises ValueError, saying why."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kid, _, encoded = item.partition(":")
        if not KEY_ID.fullmatch(kid):
            raise ValueError(f"key id {kid!r}: 1 to 32 letters, digits, '-' or '_'")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"key {kid}: not base64") from exc
        if len(key) != KEY_BYTES:
            raise ValueError(f"key {kid}: {len(key)} bytes, not {KEY_BYTES}")
        if kid in keys:
            raise ValueError(f"key id {kid} is listed twice")
        keys[kid] = key
    if not keys:
        raise ValueError("no key listed")
    return keys


def new_key(kid: str) -> str:
    """A new field-encryption key as FIELD_ENCRYPTION_KEYS lists it: `id:base64 of 32 random bytes`."""
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def place(collection: str, doc_id: object, path: str) -> str:
    """Where a sealed value lives: its associated data, so it opens there and nowhere else."""
    return f"{collection}/{doc_id}/{path}"


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def key_id(sealed: str) -> str:
    """The id of the key a sealed value was sealed with."""
    return sealed.removeprefix(PREFIX).partition(":")[0]


def blind_index(key: bytes, text: str) -> str:
    """A keyed hash to find and keep unique what is stored only sealed (an email), without its text."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


class FieldCipher:
    """Seals values with the current key; opens values sealed with any key it holds."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"the current key {current!r} is not among the keys")
        self.current = current
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> FieldCipher:
        keys = parse_keys(settings.field_encryption_keys.get_secret_value())
        return cls(keys, settings.field_encryption_key_id or next(iter(keys)))

    def seal(self, value: Any, *, at: str) -> str:
        """`value` as JSON (any type pydantic can serialise), encrypted for the place `at`."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current].encrypt(nonce, to_json(value), _associated(self.current, at))
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: object, *, at: str) -> Any:
        """The JSON value sealed for the place `at`. Raises CannotOpen for anything else."""
        if not isinstance(sealed, str) or not is_sealed(sealed):
            raise CannotOpen(f"{at}: stored unsealed")
        kid, _, encoded = sealed.removeprefix(PREFIX).partition(":")
        key = self._keys.get(kid)
        if key is None:
            raise CannotOpen(f"{at}: sealed with key {kid!r}, which FIELD_ENCRYPTION_KEYS does not list")
        try:
            raw = base64.b64decode(encoded, validate=True)
            plain = key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(kid, at))
        except (binascii.Error, InvalidTag, ValueError) as exc:
            raise CannotOpen(f"{at}: altered, or sealed for another place") from exc
        return json.loads(plain)

    def reseal(self, sealed: str, *, at: str) -> str:
        """The same value sealed again with the current key (after opening it with its own)."""
        return self.seal(self.open(sealed, at=at), at=at)

    def seal_payload(self, envelope: Mapping[str, Any], *, at: str) -> dict[str, Any]:
        """A stored envelope whose payload only the keys read; type, ids and times stay searchable."""
        return {**envelope, "payload": self.seal(envelope["payload"], at=at)}

    def open_payload(self, envelope: Mapping[str, Any], *, at: str) -> dict[str, Any]:
        return {**envelope, "payload": self.open(envelope["payload"], at=at)}


def _associated(kid: str, at: str) -> bytes:
    return f"{kid}|{at}".encode()
