"""Users in the gateway's own database."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from user_service.domain import Role, User


class EmailTaken(Exception):
    """Another account already uses this email."""


class UserStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.users: AsyncCollection[dict[str, Any]] = db["users"]

    async def ensure_indexes(self) -> None:
        await self.users.create_index([("email", ASCENDING)], unique=True)

    @staticmethod
    def _load(doc: dict[str, Any]) -> User:
        doc = dict(doc)
        doc["id"] = doc.pop("_id")
        return User.model_validate(doc)

    async def add(self, *, user: User) -> None:
        doc = user.model_dump(exclude={"id"})
        doc["_id"] = user.id
        try:
            await self.users.insert_one(doc)
        except DuplicateKeyError as exc:
            raise EmailTaken(user.email) from exc

    async def by_email(self, *, email: str) -> User | None:
        doc = await self.users.find_one({"email": email.casefold()})
        return None if doc is None else self._load(doc)

    async def by_id(self, *, user_id: str) -> User | None:
        doc = await self.users.find_one({"_id": user_id})
        return None if doc is None else self._load(doc)

    async def list(self, *, limit: int, offset: int) -> list[User]:
        cursor = self.users.find(
            {}, sort=[("created_at", ASCENDING), ("_id", ASCENDING)], skip=offset, limit=limit
        )
        return [self._load(doc) async for doc in cursor]

    async def set_password_hash(self, *, user_id: str, password_hash: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$set": {"password_hash": password_hash}})

    async def set_role(self, *, user_id: str, role: Role) -> User | None:
        await self.users.update_one({"_id": user_id}, {"$set": {"role": role}})
        return await self.by_id(user_id=user_id)
