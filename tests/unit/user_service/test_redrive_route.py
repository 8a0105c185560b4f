"""The redrive route: it gives the journal longer than a read's RPC timeout, and names few enough ids
per request to answer within it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

from contracts import commands as c
from contracts.base import Command
from service_runtime.settings import RuntimeSettings
from user_service.routes import operations
from user_service.schemas import MAX_REDRIVE_IDS, RedriveIn


class Rpc:
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    async def ask(self, command: Command, answer: Any, *, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return c.RedriveView(dry_run=False, redriven=())


async def test_a_redrive_waits_longer_than_a_read_for_its_answer() -> None:
    rpc = Rpc()
    audit = SimpleNamespace(details={})

    await operations.redrive_dead_letters(
        RedriveIn(message_ids=["m-1"], dry_run=False), cast(Any, None), cast(Any, rpc), cast(Any, audit)
    )

    [timeout] = rpc.timeouts
    assert timeout is not None
    assert timeout >= 6 * RuntimeSettings.model_fields["rpc_timeout_seconds"].default


def test_a_redrive_names_at_most_as_many_ids_as_the_page_lists() -> None:
    RedriveIn(message_ids=[f"m-{n}" for n in range(MAX_REDRIVE_IDS)])
    with pytest.raises(ValidationError) as refused:
        RedriveIn(message_ids=[f"m-{n}" for n in range(MAX_REDRIVE_IDS + 1)])
    assert refused.value.errors()[0]["loc"] == ("message_ids",)
