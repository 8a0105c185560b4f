"""The outbox's fast path: once a change is stored, a publish the broker refuses leaves its events in
the outbox for the sweep, and the change still succeeded (a cluster's quorum queue between leaders
nacks publishes; the change's caller was answered `internal` for a change that was kept)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiormq.exceptions import DeliveryError
from pamqp.commands import Basic

from service_runtime.service import Service


class RefusingRelay:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.flushed: list[str] = []

    async def flush(self, collection: Any, aggregate_id: str, written: Any) -> int:
        self.flushed.append(aggregate_id)
        raise self.error


def repository() -> Any:
    return SimpleNamespace(collection=object(), written={"order-1": ["an envelope"]})


async def test_a_nacked_publish_leaves_the_events_for_the_sweep_and_the_change_succeeds() -> None:
    relay = RefusingRelay(DeliveryError(None, Basic.Nack(delivery_tag=2, multiple=True)))
    service = cast(Service, SimpleNamespace(relay=relay))

    await Service.publish_pending(service, repository(), "order-1")

    assert relay.flushed == ["order-1"]


async def test_a_publish_failing_otherwise_still_fails_the_change() -> None:
    service = cast(Service, SimpleNamespace(relay=RefusingRelay(ValueError("a bug"))))

    with pytest.raises(ValueError, match="a bug"):
        await Service.publish_pending(service, repository(), "order-1")
