"""A simulated card processor, standing where a real one (Stripe, Adyen) would.

It behaves as their test modes do: card 4000000000000002 is always declined, 4000000000009995
has insufficient funds, an expired or unknown card is declined, every other valid card is authorised.
Money moves as with theirs: an authorisation holds the amount on the card, a capture takes it, a void
releases it, a refund gives a captured amount back. It keeps only a token and the test outcome of each
card. Every step is idempotent by key (the order's id): asked again after a crash, it answers what it
did the first time and does nothing twice. A step that no longer fits (capturing a voided
authorisation) is refused with the reason, and changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase

from service_runtime.clock import utc_now
from service_runtime.store import UniqueViolation, unique_violations

DECLINING_TEST_CARDS = {
    "4000000000000002": "card declined",
    "4000000000009995": "insufficient funds",
}

ChargeState = Literal["AUTHORISED", "DECLINED", "CAPTURED", "VOIDED", "REFUNDED"]

# Why a step does not fit a charge in this state, for the refusal.
_ALREADY: dict[ChargeState, str] = {
    "AUTHORISED": "it is only authorised, nothing was taken",
    "DECLINED": "it was declined, nothing is held",
    "CAPTURED": "it was captured, the money is taken",
    "VOIDED": "it was voided, the hold is released",
    "REFUNDED": "it was refunded",
}


@dataclass(frozen=True)
class Authorisation:
    """The processor's answer to an authorisation: `state` is CAPTURED only for a charge in full made
    under this key before authorisations existed."""

    charge_id: str
    state: ChargeState
    reason: str | None

    @property
    def approved(self) -> bool:
        return self.state != "DECLINED"


@dataclass(frozen=True)
class Outcome:
    """Where a capture, void or refund left the charge. `done`: it is in the state asked for, by this
    call or an earlier one; otherwise `refused` says why, and nothing changed. `state` is None when
    nothing was ever authorised under the key."""

    state: ChargeState | None
    done: bool
    refused: str | None = None


def charge_state(charge: dict[str, Any]) -> ChargeState:
    """A charge's state. Charges in full, stored before authorisations, have none: approved, they were
    taken at once (CAPTURED) and later perhaps refunded."""
    if "state" in charge:
        state: ChargeState = charge["state"]
        return state
    if not charge["approved"]:
        return "DECLINED"
    return "REFUNDED" if charge["refunded"] else "CAPTURED"


class CardProcessor:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.cards = db["processor_cards"]
        # One charge per key, from its authorisation to its end (the name is from charges in full).
        self.charges = db["processor_charges"]

    async def tokenize(self, number: str, exp_month: int, exp_year: int) -> str:
        token = "tok_" + secrets.token_hex(12)
        await self.cards.insert_one(
            {"_id": token, "decline": DECLINING_TEST_CARDS.get(number), "exp": [exp_year, exp_month]}
        )
        return token

    async def authorise(self, token: str, amount_cents: int, *, idempotency_key: str) -> Authorisation:
        """Hold the amount on the card, or decline; asked again under the same key, the first answer."""
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
                "state": "DECLINED" if decline else "AUTHORISED",
                # `approved` and `refunded` as charges in full had them, for readers of those.
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
        return Authorisation(previous["charge_id"], charge_state(previous), previous["reason"])

    async def capture(self, *, idempotency_key: str) -> Outcome:
        """Take the whole authorised amount. Refused once the authorisation was voided."""
        return await self._move(idempotency_key, "capture", "AUTHORISED", "CAPTURED", "captured_at")

    async def void(self, *, idempotency_key: str) -> Outcome:
        """Release the hold, nothing taken. Refused once captured: that is a refund's to undo."""
        return await self._move(idempotency_key, "void", "AUTHORISED", "VOIDED", "voided_at")

    async def refund(self, *, idempotency_key: str) -> Outcome:
        """Give a captured amount (or a charge in full) back. Refused while only authorised."""
        return await self._move(idempotency_key, "refund", "CAPTURED", "REFUNDED", "refunded_at")

    async def _move(
        self, key: str, step: str, source: ChargeState, target: ChargeState, stamp: str
    ) -> Outcome:
        while True:
            charge = await self.charges.find_one({"_id": key})
            if charge is None:
                return Outcome(None, done=False, refused=f"cannot {step} {key}: nothing was authorised")
            state = charge_state(charge)
            if state == target:
                return Outcome(state, done=True)  # done by an earlier call: a retry after a crash
            if state != source:
                return Outcome(state, done=False, refused=f"cannot {step} {key}: {_ALREADY[state]}")
            changes: dict[str, Any] = {"state": target, stamp: utc_now()}
            if target == "REFUNDED":
                changes["refunded"] = True
            # Conditional on the state read (none on a charge in full): of two callers, one moves it.
            moved = await self.charges.update_one(
                {"_id": key, "state": charge.get("state")}, {"$set": changes}
            )
            if moved.matched_count == 1:
                return Outcome(target, done=True)
