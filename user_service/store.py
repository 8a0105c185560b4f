"""Users in the gateway's own database."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from service_runtime.crypto import FieldCipher, blind_index, place
from service_runtime.store import UniqueViolation, unique_violations
from user_service.domain import Role, User

# A user's personal data, stored sealed. The email is found, and kept unique, by its blind index.
SEALED = ("email", "full_name")


class EmailTaken(Exception):
    """Another account already uses this email."""


class UserStore:
    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], *, cipher: FieldCipher, email_index_key: bytes
    ) -> None:
        self.users: AsyncCollection[dict[str, Any]] = db["users"]
        self.cipher = cipher
        self.email_index_key = email_index_key

    async def ensure_indexes(self) -> None:
        await self.users.create_index([("email_index", ASCENDING)], unique=True)
        # The admins' list, oldest first: a page is read from the index.
        await self.users.create_index([("created_at", ASCENDING)])

    def email_index(self, email: str) -> str:
        """What an account is found by: a keyed hash of its casefolded email, never the email itself."""
        return blind_index(self.email_index_key, email.casefold())

    def _load(self, doc: dict[str, Any]) -> User:
        doc = dict(doc)
        doc["id"] = doc.pop("_id")
        doc.pop("email_index", None)
        for name in SEALED:
            doc[name] = self.cipher.open(doc[name], at=place(self.users.name, doc["id"], name))
        return User.model_validate(doc)

    async def add(self, *, user: User) -> None:
        doc = user.model_dump(exclude={"id"})
        for name in SEALED:
            doc[name] = self.cipher.seal(doc[name], at=place(self.users.name, user.id, name))
        doc["email_index"] = self.email_index(user.email)
        doc["_id"] = user.id
        try:
            with unique_violations():
                await self.users.insert_one(doc)
        except UniqueViolation as exc:
            raise EmailTaken(user.email) from exc

    async def by_email(self, *, email: str) -> User | None:
        doc = await self.users.find_one({"email_index": self.email_index(email)})
        return None if doc is None else self._load(doc)

    async def by_id(self, *, user_id: str) -> User | None:
        doc = await self.users.find_one({"_id": user_id})
        return None if doc is None else self._load(doc)

    async def list(self, *, limit: int, offset: int, role: Role | None = None) -> list[User]:
        cursor = self.users.find(
            {} if role is None else {"role": role},
            sort=[("created_at", ASCENDING), ("_id", ASCENDING)],
            skip=offset,
            limit=limit,
        )
        return [self._load(doc) async for doc in cursor]

    async def set_password_hash(self, *, user_id: str, password_hash: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$set": {"password_hash": password_hash}})

    async def set_role(self, *, user_id: str, role: Role) -> User | None:
        await self.users.update_one({"_id": user_id}, {"$set": {"role": role}})
        return await self.by_id(user_id=user_id)
