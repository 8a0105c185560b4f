"""Browser sessions: the web UI's sign-in, beside the API's bearer tokens.

A session is a random token in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` and `__Host-`
prefixed outside development); the store keeps only its SHA-256 hash, with its user, its CSRF token
and its end. Signing out deletes it; an expired one is refused, then swept with the expired tokens.
The user's role is read from the store on every request, as for a bearer token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase


class WebSession(BaseModel):
    token_hash: str
    user_id: str
    # Every state-changing form and htmx request carries it (the synchronizer token pattern).
    csrf_token: str
    created_at: datetime
    expires_at: datetime

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent, self.csrf_token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebSessions:
    """The gateway's `web_sessions` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, lifetime: timedelta) -> None:
        self.sessions: AsyncCollection[dict[str, Any]] = db["web_sessions"]
        self.lifetime = lifetime

    async def ensure_indexes(self) -> None:
        await self.sessions.create_index([("expires_at", ASCENDING)])

    async def open(self, *, user_id: str, now: datetime) -> tuple[str, WebSession]:
        """A new session: the token for the cookie (never stored), and the session."""
        token = secrets.token_urlsafe(32)
        session = WebSession(
            token_hash=token_hash(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self.lifetime,
        )
        doc = session.model_dump(exclude={"token_hash"})
        doc["_id"] = session.token_hash
        await self.sessions.insert_one(doc)
        return token, session

    async def find(self, *, token: str, now: datetime) -> WebSession | None:
        # By _id alone, the expiry checked here: FerretDB would scan for a filter on two fields.
        doc = await self.sessions.find_one({"_id": token_hash(token)})
        if doc is None:
            return None
        session = WebSession(token_hash=doc.pop("_id"), **doc)
        return session if session.expires_at > now else None

    async def close(self, *, token: str) -> None:
        await self.sessions.delete_one({"_id": token_hash(token)})

    async def remove_expired(self, *, now: datetime) -> None:
        await self.sessions.delete_many({"expires_at": {"$lte": now}})
