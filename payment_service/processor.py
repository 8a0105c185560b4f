"""A simulated card processor, standing where a real one (Stripe, Adyen) would.

It behaves as their test modes do: card 4000000000000002 is always declined, 4000000000009995
has insufficient funds, every other valid card is approved. It keeps only a token and the test
outcome of each card, and makes charges idempotent by key, so a retried charge never charges twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from service_runtime.clock import utc_now
from service_runtime.store import UniqueViolation, unique_violations

DECLINING_TEST_CARDS = {
    "4000000000000002": "card declined",
    "4000000000009995": "insufficient funds",
}


@dataclass(frozen=True)
class ChargeResult:
    charge_id: str
    approved: bool
    reason: str | None


class CardProcessor:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.cards = db["processor_cards"]
        self.charges = db["processor_charges"]

    async def tokenize(self, number: str, exp_month: int, exp_year: int) -> str:
        token = "tok_" + secrets.token_hex(12)
        await self.cards.insert_one(
            {"_id": token, "decline": DECLINING_TEST_CARDS.get(number), "exp": [exp_year, exp_month]}
        )
        return token

    async def charge(self, token: str, amount_cents: int, *, idempotency_key: str) -> ChargeResult:
        previous = await self.charges.find_one({"_id": idempotency_key})
        if previous is None:
            card = await self.cards.find_one({"_id": token})
            now = utc_now()
            if card is None:
                decline: str | None = "unknown card"
            elif tuple(card["exp"]) < (now.year, now.month):
                decline = "expired card"
            else:
                decline = card["decline"]
            charge: dict[str, Any] = {
                "_id": idempotency_key,
                "charge_id": "ch_" + secrets.token_hex(12),
                "token": token,
                "amount_cents": amount_cents,
                "approved": decline is None,
                "reason": decline,
                "refunded": False,
                "at": now,
            }
            try:
                with unique_violations():
                    await self.charges.insert_one(charge)
                previous = charge
            except UniqueViolation:
                previous = await self.charges.find_one({"_id": idempotency_key})
        assert previous is not None
        return ChargeResult(previous["charge_id"], previous["approved"], previous["reason"])

    async def refund(self, *, idempotency_key: str) -> None:
        await self.charges.update_one(
            {"_id": idempotency_key, "approved": True}, {"$set": {"refunded": True}}
        )
