"""The journal's RPC server answers requests concurrently, but its dead-letter operations one at a
time: a list or a dry run holds the letters it reads unacknowledged, so a redrive running beside it
would not find them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

from contracts import commands as c
from contracts.base import Command
from operations import answers, dead_letters
from operations.journal import Journal

LETTER = dead_letters.DeadLetter(
    service="order_service",
    message_id="m-1",
    type="PrescriptionHeld",
    error_type="RetryLater",
    error="no order yet",
    failed_at="2026-12-01T10:00:00+00:00",
    attempts=2,
    body=b"{}",
    headers={},
)


class Queue:
    """A dead-letter queue as the broker keeps it: a read takes the letters (unacked) until it is done."""

    def __init__(self) -> None:
        self.letters = [LETTER]
        self.busy = 0
        self.overlapped = False

    async def _holding(self) -> list[dead_letters.DeadLetter]:
        self.busy += 1
        self.overlapped |= self.busy > 1
        held, self.letters = self.letters, []
        await asyncio.sleep(0.05)  # reading takes a while: the letters are held meanwhile
        self.letters = held
        self.busy -= 1
        return held

    async def read(self, url: str, namespace: str, services: Sequence[str], **_: Any) -> list[Any]:
        return await self._holding()

    async def redrive(self, url: str, namespace: str, services: Sequence[str], **k: Any) -> list[Any]:
        self.busy += 1
        self.overlapped |= self.busy > 1
        found = [m for m in self.letters if m.message_id in k["message_ids"]]
        self.busy -= 1
        return [
            dead_letters.Redriven(m.service, m.message_id, "ns.order_service.events", False) for m in found
        ]


async def test_a_redrive_beside_a_list_or_a_dry_run_waits_for_it_and_finds_its_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = Queue()
    monkeypatch.setattr(dead_letters, "read", queue.read)
    monkeypatch.setattr(dead_letters, "redrive", queue.redrive)
    server = answers.journal_server(cast(Journal, None), "amqp://nowhere", "ns")
    redrive = c.RedriveDeadLetters(service="order_service", message_ids=("m-1",), dry_run=False)

    async def ask(command: Command) -> Any:
        return await server.dispatch(command.TYPE, command.model_dump_json().encode())

    listed, shown, done = await asyncio.gather(
        ask(c.ListDeadLetters(service="order_service")),
        ask(c.GetDeadLetter(service="order_service", message_id="m-1")),
        ask(redrive),
    )

    assert queue.overlapped is False
    assert (listed.error, shown.error, done.error) == (None, None, None)
    assert [d["message_id"] for d in listed.data] == ["m-1"]
    assert shown.data["message_id"] == "m-1"
    assert [r["message_id"] for r in done.data["redriven"]] == ["m-1"]
    assert done.data["not_found"] == []
