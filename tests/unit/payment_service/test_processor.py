"""The simulated card processor (payment_service/processor.py) on the real store: test cards at
authorisation, each step idempotent by key, steps that no longer fit refused without a change, and
charges in full stored before authorisations still read and refunded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/unit cannot see it.
from conftest import Namespace
from pymongo import AsyncMongoClient

from payment_service.processor import CardProcessor, ChargeState, Outcome, charge_state

pytestmark = pytest.mark.integration  # the real store

GOOD_CARD = "4242424242424242"
NEXT_YEAR = datetime.now(UTC).year + 1
KEY = "order-1"


@pytest_asyncio.fixture
async def processor(namespace: Namespace) -> AsyncIterator[CardProcessor]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(namespace.backing.mongodb_url, tz_aware=True)
    yield CardProcessor(client[f"{namespace.name}_processor"])
    await client.close()


async def charge(processor: CardProcessor, key: str = KEY) -> dict[str, Any]:
    found = await processor.charges.find_one({"_id": key})
    assert found is not None
    return found


class ReadTogether:
    """The charges collection, where the first `readers` reads all finish before any of them goes on: callers
    that all saw the charge as it was (or absent) before any of them writes, as two replicas could."""

    def __init__(self, charges: Any, readers: int) -> None:
        self.charges = charges
        self.together = asyncio.Barrier(readers)
        self.waiting = readers

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        found = await self.charges.find_one(*args, **kwargs)
        if self.waiting > 0:
            self.waiting -= 1
            await self.together.wait()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.charges, name)


async def authorised(processor: CardProcessor, key: str = KEY, amount_cents: int = 1850) -> dict[str, Any]:
    token = await processor.tokenize(GOOD_CARD, 12, NEXT_YEAR)
    held = await processor.authorise(token, amount_cents, idempotency_key=key)
    assert (held.state, held.approved) == ("AUTHORISED", True)
    return await charge(processor, key)


async def test_a_good_card_is_authorised_and_nothing_is_taken(processor: CardProcessor) -> None:
    token = await processor.tokenize(GOOD_CARD, 12, NEXT_YEAR)

    held = await processor.authorise(token, 1850, idempotency_key=KEY)

    assert (held.state, held.approved, held.reason) == ("AUTHORISED", True, None)
    stored = await charge(processor)
    assert (stored["charge_id"], stored["amount_cents"], stored["token"]) == (held.charge_id, 1850, token)
    assert (stored["approved"], stored["refunded"]) == (True, False)
    assert "captured_at" not in stored


@pytest.mark.parametrize(
    ("number", "month", "year", "reason"),
    [
        ("4000000000000002", 12, NEXT_YEAR, "card declined"),
        ("4000000000009995", 12, NEXT_YEAR, "insufficient funds"),
        (GOOD_CARD, 1, 2020, "expired card"),
    ],
    ids=["declined", "insufficient-funds", "expired"],
)
async def test_test_cards_are_declined_at_authorisation(
    processor: CardProcessor, number: str, month: int, year: int, reason: str
) -> None:
    token = await processor.tokenize(number, month, year)

    held = await processor.authorise(token, 1850, idempotency_key=KEY)

    assert (held.state, held.approved, held.reason) == ("DECLINED", False, reason)
    assert charge_state(await charge(processor)) == "DECLINED"


async def test_an_unknown_card_is_declined(processor: CardProcessor) -> None:
    held = await processor.authorise("tok_nobody", 1850, idempotency_key=KEY)

    assert (held.state, held.reason) == ("DECLINED", "unknown card")


async def test_an_authorisation_asked_again_answers_the_first_and_holds_once(
    processor: CardProcessor,
) -> None:
    first = await authorised(processor)
    other_card = await processor.tokenize("4000000000000002", 12, NEXT_YEAR)

    again = await processor.authorise(other_card, 9999, idempotency_key=KEY)

    assert (again.charge_id, again.state) == (first["charge_id"], "AUTHORISED")
    assert await processor.charges.count_documents({}) == 1
    assert await charge(processor) == first


async def test_authorisations_of_one_key_read_at_once_hold_once(processor: CardProcessor) -> None:
    token = await processor.tokenize(GOOD_CARD, 12, NEXT_YEAR)
    processor.charges = ReadTogether(processor.charges, readers=4)  # type: ignore[assignment]

    answers = await asyncio.gather(*(processor.authorise(token, 1850, idempotency_key=KEY) for _ in range(4)))

    assert len({a.charge_id for a in answers}) == 1
    assert await processor.charges.count_documents({}) == 1


async def test_a_capture_takes_the_authorisation_once(processor: CardProcessor) -> None:
    await authorised(processor)

    first = await processor.capture(idempotency_key=KEY)
    captured = await charge(processor)
    again = await processor.capture(idempotency_key=KEY)

    assert first == again == Outcome("CAPTURED", done=True)
    assert captured["state"] == "CAPTURED"
    assert await charge(processor) == captured  # the retry changed nothing, not even the time


async def test_a_void_releases_the_authorisation_once(processor: CardProcessor) -> None:
    await authorised(processor)

    first = await processor.void(idempotency_key=KEY)
    voided = await charge(processor)
    again = await processor.void(idempotency_key=KEY)

    assert first == again == Outcome("VOIDED", done=True)
    assert (voided["state"], voided["refunded"]) == ("VOIDED", False)
    assert voided["voided_at"] is not None
    assert await charge(processor) == voided


async def test_a_refund_gives_a_capture_back_once(processor: CardProcessor) -> None:
    await authorised(processor)
    await processor.capture(idempotency_key=KEY)

    first = await processor.refund(idempotency_key=KEY)
    refunded = await charge(processor)
    again = await processor.refund(idempotency_key=KEY)

    assert first == again == Outcome("REFUNDED", done=True)
    assert (refunded["state"], refunded["refunded"]) == ("REFUNDED", True)
    assert refunded["captured_at"] < refunded["refunded_at"]
    assert await charge(processor) == refunded


@pytest.mark.parametrize(
    ("before", "step", "state", "why"),
    [
        (["void"], "capture", "VOIDED", "it was voided, the hold is released"),
        (["capture"], "void", "CAPTURED", "it was captured, the money is taken"),
        ([], "refund", "AUTHORISED", "it is only authorised, nothing was taken"),
        (["void"], "refund", "VOIDED", "it was voided, the hold is released"),
        (["capture", "refund"], "capture", "REFUNDED", "it was refunded"),
        (["capture", "refund"], "void", "REFUNDED", "it was refunded"),
    ],
)
async def test_a_step_that_no_longer_fits_is_refused_and_changes_nothing(
    processor: CardProcessor, before: list[str], step: str, state: ChargeState, why: str
) -> None:
    await authorised(processor)
    for done in before:
        assert (await getattr(processor, done)(idempotency_key=KEY)).done
    stored = await charge(processor)

    outcome = await getattr(processor, step)(idempotency_key=KEY)

    assert outcome == Outcome(state, done=False, refused=f"cannot {step} {KEY}: {why}")
    assert await charge(processor) == stored


@pytest.mark.parametrize("step", ["capture", "void", "refund"])
async def test_a_declined_authorisation_is_neither_captured_voided_nor_refunded(
    processor: CardProcessor, step: str
) -> None:
    token = await processor.tokenize("4000000000000002", 12, NEXT_YEAR)
    await processor.authorise(token, 1850, idempotency_key=KEY)

    outcome = await getattr(processor, step)(idempotency_key=KEY)

    assert outcome == Outcome(
        "DECLINED", done=False, refused=f"cannot {step} {KEY}: it was declined, nothing is held"
    )


@pytest.mark.parametrize("step", ["capture", "void", "refund"])
async def test_nothing_authorised_under_the_key_is_refused(processor: CardProcessor, step: str) -> None:
    outcome = await getattr(processor, step)(idempotency_key="order-never")

    assert outcome == Outcome(None, done=False, refused=f"cannot {step} order-never: nothing was authorised")
    assert await processor.charges.count_documents({}) == 0


async def test_of_a_capture_and_a_void_read_at_once_exactly_one_happens(processor: CardProcessor) -> None:
    await authorised(processor)
    processor.charges = ReadTogether(processor.charges, readers=2)  # type: ignore[assignment]

    captured, voided = await asyncio.gather(
        processor.capture(idempotency_key=KEY), processor.void(idempotency_key=KEY)
    )

    assert sorted([captured.done, voided.done]) == [False, True]
    final = charge_state(await charge(processor))
    assert final == ("CAPTURED" if captured.done else "VOIDED")
    assert {captured.state, voided.state} == {final}


# Charges in full as CardProcessor.charge stored them before authorisations: no state.
def charge_of_before(key: str, *, approved: bool, refunded: bool) -> dict[str, Any]:
    return {
        "_id": key,
        "charge_id": "ch_before",
        "token": "tok_before",
        "amount_cents": 1350,
        "approved": approved,
        "reason": None if approved else "card declined",
        "refunded": refunded,
        "at": datetime(2026, 11, 1, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("approved", "refunded", "state"),
    [(True, False, "CAPTURED"), (True, True, "REFUNDED"), (False, False, "DECLINED")],
)
def test_a_charge_in_full_of_before_reads_as_taken_refunded_or_declined(
    approved: bool, refunded: bool, state: str
) -> None:
    assert charge_state(charge_of_before(KEY, approved=approved, refunded=refunded)) == state


async def test_a_charge_in_full_of_before_is_refunded_once_and_never_voided(processor: CardProcessor) -> None:
    await processor.charges.insert_one(charge_of_before(KEY, approved=True, refunded=False))

    assert await processor.void(idempotency_key=KEY) == Outcome(
        "CAPTURED", done=False, refused=f"cannot void {KEY}: it was captured, the money is taken"
    )
    first = await processor.refund(idempotency_key=KEY)
    refunded = await charge(processor)
    again = await processor.refund(idempotency_key=KEY)

    assert first == again == Outcome("REFUNDED", done=True)
    assert (refunded["state"], refunded["approved"], refunded["refunded"]) == ("REFUNDED", True, True)
    assert await charge(processor) == refunded


async def test_an_authorisation_under_the_key_of_a_charge_in_full_answers_that_charge(
    processor: CardProcessor,
) -> None:
    await processor.charges.insert_one(charge_of_before(KEY, approved=True, refunded=False))
    token = await processor.tokenize(GOOD_CARD, 12, NEXT_YEAR)

    held = await processor.authorise(token, 1350, idempotency_key=KEY)

    assert (held.charge_id, held.state, held.approved) == ("ch_before", "CAPTURED", True)
    assert await processor.charges.count_documents({}) == 1
