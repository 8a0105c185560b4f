"""Refresh tokens and revoked access tokens, in the gateway's own database.

A refresh token is kept only as its SHA-256 hash, with its user, its family (every token rotated from
one sign-in) and two marks: used once it was exchanged, revoked when its family ended. A used token
presented again was copied: its whole family is revoked (OAuth 2.0 Security BCP, refresh token rotation).

Access tokens are revoked by id (jti) until they expire, a set checked on every request. Chosen over a
per-user "valid after" time: signing out on one device leaves the others signed in, and a token issued
in the second of a sign-out is not taken for an older one (`iat` counts whole seconds).

The check costs no round trip on most requests: this process refuses at once what it revoked itself,
and reads the whole set of unexpired revocations again when its copy is older than
`revocations_refresh_seconds`, so a sign-out on another gateway process is refused here within that
time. The set is small: only tokens signed out before they expired, kept until they expire.

FerretDB 1.24 has no TTL index (`expireAfterSeconds` is "not implemented yet"): expired entries are
deleted by a sweep every `EXPIRED_TOKENS_SWEEP_SECONDS`, off the requests' path, found by an index on
`expires_at`. Nothing depends on it but the collections' size: an expired token is refused anyway.
FerretDB 1.x does not make `find_one_and_update` atomic between connections either, so every change to
one family is serialised in this process (the gateway runs as one), and the conditional update stays
for MongoDB.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from service_runtime.clock import utc_now
from service_runtime.locks import KeyedLock

log = logging.getLogger(__name__)


class Sweep(Protocol):
    """Forgets what expired by `now`."""

    async def __call__(self, *, now: datetime) -> None: ...


class RefreshRefused(Exception):
    """The refresh token is unknown, expired or revoked."""


class RefreshReused(Exception):
    """A refresh token came back after it had been exchanged: its family is revoked now."""


class RefreshToken(BaseModel):
    """A stored refresh token: its hash, never the token."""

    token_hash: str
    user_id: str
    family_id: str
    issued_at: datetime
    expires_at: datetime
    # The access token issued with it: refused too when the family is revoked.
    access_jti: str
    access_expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class TokenStore:
    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], *, revocations_refresh_seconds: float = 5.0
    ) -> None:
        self.refresh_tokens: AsyncCollection[dict[str, Any]] = db["refresh_tokens"]
        self.revoked_access_tokens: AsyncCollection[dict[str, Any]] = db["revoked_access_tokens"]
        self._families = KeyedLock()
        self.revocations_refresh_seconds = revocations_refresh_seconds
        # jti -> expiry. Revoked by this process: refused at once, whatever the copy below says.
        self._revoked_here: dict[str, datetime] = {}
        # The store's revocations as last read, and when that read began (monotonic seconds).
        self._revoked_seen: frozenset[str] = frozenset()
        self._seen_at: float | None = None
        self._reading = asyncio.Lock()

    async def ensure_indexes(self) -> None:
        await self.refresh_tokens.create_index([("family_id", ASCENDING)])
        await self.refresh_tokens.create_index([("expires_at", ASCENDING)])
        await self.revoked_access_tokens.create_index([("expires_at", ASCENDING)])

    async def add(self, *, token: RefreshToken, new_family: bool = False) -> None:
        """Keep a new token of its family; RefreshRefused when the family was revoked meanwhile.

        `new_family`: the first token of a sign-in, whose family id was just made: nothing can have
        revoked it, so it is not looked up."""
        async with self._families.hold(token.family_id):
            if not new_family and await self.refresh_tokens.find_one(
                {"family_id": token.family_id, "revoked_at": {"$ne": None}}
            ):
                raise RefreshRefused(token.family_id)
            doc = token.model_dump(exclude={"token_hash"})
            doc["_id"] = token.token_hash
            await self.refresh_tokens.insert_one(doc)

    async def claim(self, *, token_hash: str, now: datetime) -> RefreshToken:
        """Mark a token used, once only: what it was, for its replacement in the same family.

        RefreshReused, after revoking the family, when it was used before; RefreshRefused when it is
        unknown, expired or revoked.
        """
        known = await self.refresh_tokens.find_one({"_id": token_hash})
        if known is None:
            raise RefreshRefused(token_hash)
        async with self._families.hold(known["family_id"]):
            claimed = await self.refresh_tokens.find_one_and_update(
                {"_id": token_hash, "used_at": None, "revoked_at": None, "expires_at": {"$gt": now}},
                {"$set": {"used_at": now}},
            )
            if claimed is not None:
                return RefreshToken(token_hash=claimed.pop("_id"), **claimed)
            current = await self.refresh_tokens.find_one({"_id": token_hash})
            if current is not None and current["used_at"] is not None:
                await self._revoke(current["family_id"], now)
                raise RefreshReused(token_hash)
        raise RefreshRefused(token_hash)

    async def family_of(self, *, token_hash: str, user_id: str) -> str | None:
        """The family of a user's own refresh token; None for an unknown token or another user's."""
        doc = await self.refresh_tokens.find_one({"_id": token_hash, "user_id": user_id})
        return None if doc is None else str(doc["family_id"])

    async def revoke_family(self, *, family_id: str, now: datetime) -> None:
        async with self._families.hold(family_id):
            await self._revoke(family_id, now)

    async def _revoke(self, family_id: str, now: datetime) -> None:
        await self.refresh_tokens.update_many(
            {"family_id": family_id, "revoked_at": None}, {"$set": {"revoked_at": now}}
        )
        alive = self.refresh_tokens.find({"family_id": family_id, "access_expires_at": {"$gt": now}})
        async for doc in alive:
            await self.revoke_access(jti=doc["access_jti"], expires_at=doc["access_expires_at"])

    async def revoke_access(self, *, jti: str, expires_at: datetime) -> None:
        await self.revoked_access_tokens.update_one(
            {"_id": jti}, {"$set": {"expires_at": expires_at}}, upsert=True
        )
        self._revoked_here[jti] = expires_at

    async def access_revoked(self, *, jti: str) -> bool:
        """Whether the token was signed out: at once when by this process, else within the refresh time."""
        if jti in self._revoked_here:
            return True
        if self._stale():
            async with self._reading:
                if self._stale():
                    await self._read_revocations()
        return jti in self._revoked_seen

    def _stale(self) -> bool:
        return self._seen_at is None or time.monotonic() - self._seen_at >= self.revocations_refresh_seconds

    async def _read_revocations(self) -> None:
        # Timed from the start: a revocation stored after this read began is seen by the next one.
        began, now = time.monotonic(), utc_now()
        alive = self.revoked_access_tokens.find({"expires_at": {"$gt": now}}, projection={"_id": True})
        self._revoked_seen = frozenset([doc["_id"] async for doc in alive])
        self._revoked_here = {jti: until for jti, until in self._revoked_here.items() if until > now}
        self._seen_at = began

    async def keep_sweeping(self, *, every: float, also: Sweep | None = None) -> None:
        """Forget what has expired, every `every` seconds, until cancelled; a failed sweep waits its turn.
        `also(now=...)` sweeps something else on the same beat (the web UI's sessions)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.remove_expired(now=utc_now())
                if also is not None:
                    await also(now=utc_now())
            except Exception:
                log.warning("expired tokens not swept; next try in %.0f s", every, exc_info=True)

    async def remove_expired(self, *, now: datetime) -> None:
        """Forget what has expired: no token presented later can be valid anyway."""
        await self.refresh_tokens.delete_many({"expires_at": {"$lte": now}})
        await self.revoked_access_tokens.delete_many({"expires_at": {"$lte": now}})
