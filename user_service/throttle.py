"""Sign-in throttling: too many failed sign-ins for one account, or from one client address, and
sign-ins there are refused with 429 and Retry-After until the window they fell in has passed.

Counted in the gateway's store, so a restart forgets nothing, in fixed windows that start at the
first failure. Per account it stops guessing one patient's password from many addresses; per
address it stops one client trying many accounts. A success clears its account's count, not its
address's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from service_runtime.clock import utc_now


class SignInThrottle:
    """`account_key`: what an account is counted under; the email's blind index, never the email."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        *,
        account_key: Callable[[str], str],
        per_account: int,
        per_address: int,
        window: timedelta,
    ) -> None:
        self.failures: AsyncCollection[dict[str, Any]] = db["sign_in_failures"]
        self.account_key = account_key
        self.limits = {"account": per_account, "address": per_address}
        self.window = window

    def _keys(self, email: str, address: str) -> dict[str, str]:
        return {"account": f"account:{self.account_key(email.strip())}", "address": f"address:{address}"}

    async def retry_after(self, email: str, address: str) -> int | None:
        """Seconds until this account may be tried from this address again; None when it may now."""
        now = utc_now()
        waits = []
        for kind, key in self._keys(email, address).items():
            counted = await self.failures.find_one({"_id": key})
            if counted and counted["count"] >= self.limits[kind] and counted["until"] > now:
                waits.append(math.ceil((counted["until"] - now).total_seconds()))
        return max(waits) if waits else None

    async def failed(self, email: str, address: str) -> None:
        now = utc_now()
        for key in self._keys(email, address).values():
            counted = await self.failures.find_one({"_id": key})
            if counted is None or counted["until"] <= now:
                await self._start_window(key, now)
            else:
                await self.failures.update_one({"_id": key}, {"$inc": {"count": 1}})

    async def succeeded(self, email: str) -> None:
        await self.failures.delete_one({"_id": self._keys(email, "")["account"]})

    async def _start_window(self, key: str, now: datetime) -> None:
        await self.failures.update_one(
            {"_id": key}, {"$set": {"count": 1, "until": now + self.window}}, upsert=True
        )
