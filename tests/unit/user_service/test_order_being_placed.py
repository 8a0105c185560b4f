"""An order the patient was just given (202 on the upload) is placed a moment later, longer while the
broker fails over. Asked about meanwhile, the gateway waits for it rather than answer 404: a cancel is
never lost as "not found" (seen in make cluster-test: the upload's events waited 1.4 s in the outbox)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from contracts import commands as c
from contracts.base import Command, ErrorCode
from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service.routes import orders

ORDER = "order-1"
PLACED = cast(c.OrderView, object())  # what the ask answers once the order exists


class Rpc:
    """Answers ListPrescriptions with the patient's prescriptions, naming these orders."""

    def __init__(
        self,
        named: list[str],
        refills: tuple[str, ...] = (),
        *,
        uploaded: timedelta = timedelta(seconds=2),
        away: bool = False,
    ) -> None:
        self.named = named
        self.refills = refills
        self.uploaded_at = datetime.now(UTC) - uploaded
        self.away = away
        self.asked: list[Command] = []

    async def ask(self, command: Command, answer: Any, **_: Any) -> Any:
        self.asked.append(command)
        assert isinstance(command, c.ListPrescriptions)
        if self.away:
            raise ServiceUnavailable("prescription_service did not answer ListPrescriptions")
        return [
            SimpleNamespace(order_id=o, refill_order_ids=self.refills, uploaded_at=self.uploaded_at)
            for o in self.named
        ]


class Ask:
    """An order_service that finds the order only from the `found_at`-th ask (never if None)."""

    def __init__(self, found_at: int | None, refusal: ErrorCode = "not_found") -> None:
        self.found_at = found_at
        self.refusal = refusal
        self.calls = 0

    async def __call__(self) -> c.OrderView:
        self.calls += 1
        if self.found_at is not None and self.calls >= self.found_at:
            return PLACED
        raise CommandRefused(self.refusal, f"order {ORDER} not found")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders, "PLACING_SECONDS", 0.5)
    monkeypatch.setattr(orders, "PLACING_POLL_SECONDS", 0.01)


async def test_an_order_named_by_the_patients_prescription_is_waited_for() -> None:
    rpc, ask = Rpc([ORDER]), Ask(found_at=4)

    assert await orders._once_placed(cast(Any, rpc), "patient-1", ORDER, ask) is PLACED

    assert ask.calls == 4
    [listed] = rpc.asked
    assert isinstance(listed, c.ListPrescriptions)
    assert listed.owner_id == "patient-1"  # their own prescriptions only


async def test_a_refill_order_is_waited_for_too() -> None:
    rpc, ask = Rpc(["order-0"], refills=(ORDER,)), Ask(found_at=2)

    assert await orders._once_placed(cast(Any, rpc), "patient-1", ORDER, ask) is PLACED


async def test_an_order_still_not_placed_after_the_wait_is_a_conflict_not_a_404() -> None:
    rpc, ask = Rpc([ORDER]), Ask(found_at=None)

    with pytest.raises(CommandRefused) as refused:
        await orders._once_placed(cast(Any, rpc), "patient-1", ORDER, ask)

    assert refused.value.code == "conflict"
    assert "still being placed" in refused.value.detail
    assert ask.calls > 2


async def test_an_order_no_prescription_of_the_patient_names_is_not_found_at_once() -> None:
    rpc, ask = Rpc(["another-order"]), Ask(found_at=2)

    with pytest.raises(CommandRefused) as refused:
        await orders._once_placed(cast(Any, rpc), "patient-1", ORDER, ask)

    assert refused.value.code == "not_found"
    assert ask.calls == 1


async def test_staff_asking_about_a_missing_order_are_answered_at_once() -> None:
    rpc, ask = Rpc([ORDER]), Ask(found_at=2)

    with pytest.raises(CommandRefused):
        await orders._once_placed(cast(Any, rpc), None, ORDER, ask)

    assert (ask.calls, rpc.asked) == (1, [])


async def test_other_refusals_are_not_waited_on() -> None:
    rpc, ask = Rpc([ORDER]), Ask(found_at=None, refusal="conflict")

    with pytest.raises(CommandRefused) as refused:
        await orders._once_placed(cast(Any, rpc), "patient-1", ORDER, ask)

    assert (refused.value.code, ask.calls, rpc.asked) == ("conflict", 1, [])


async def test_an_order_of_an_upload_long_past_is_not_found_at_once() -> None:
    # Its event was lost or dead-lettered: the operators' incident, not something to wait for.
    rpc, ask = Rpc([ORDER], uploaded=orders.PLACING_WINDOW + timedelta(minutes=1)), Ask(found_at=2)

    with pytest.raises(CommandRefused) as refused:
        await orders._once_placed(cast(Any, rpc), "patient-1", ORDER, ask)

    assert (refused.value.code, ask.calls) == ("not_found", 1)


async def test_the_orders_404_stands_when_prescription_service_does_not_answer() -> None:
    rpc, ask = Rpc([ORDER], away=True), Ask(found_at=2)

    with pytest.raises(CommandRefused) as refused:
        await orders._once_placed(cast(Any, rpc), "patient-1", ORDER, ask)

    assert (refused.value.code, ask.calls) == ("not_found", 1)
