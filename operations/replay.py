"""Replay journalled events: to one service's event queue, or through the exchange to all.

Every copy keeps its event id, so consumers that already applied it only acknowledge it; a replayed
copy says so in its `x-replay` header. Payment charges are keyed by order id at the card processor,
so a replayed StockReserved never charges twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika

from contracts import topology

Document = dict[str, Any]


@dataclass
class ReplaySummary:
    delivered: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def plan(events: Sequence[Document], to: str | None) -> tuple[list[Document], Counter[str]]:
    """Which events go (a service gets only the types it subscribes to), and what is left out."""
    if to is None:
        return list(events), Counter()
    wanted = {event.TYPE for event in topology.SUBSCRIPTIONS[to]}
    going = [doc for doc in events if doc["type"] in wanted]
    return going, Counter(doc["type"] for doc in events if doc["type"] not in wanted)


async def replay(
    rabbitmq_url: str,
    namespace: str,
    events: Sequence[Document],
    *,
    to: str | None,
    dry_run: bool = False,
    progress: Callable[[], None] = lambda: None,
) -> ReplaySummary:
    """Publish journalled events again, in the order given, with publisher confirms."""
    going, skipped = plan(events, to)
    summary = ReplaySummary(skipped=skipped)
    if dry_run:
        summary.delivered.update(doc["type"] for doc in going)
        return summary
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        if to is None:
            exchange = await channel.get_exchange(f"{namespace}.{topology.EVENTS_EXCHANGE}")
        else:
            exchange = channel.default_exchange
        for doc in going:
            message = aio_pika.Message(
                json.dumps(doc["envelope"]).encode(),
                message_id=doc["_id"],
                correlation_id=doc["correlation_id"],
                type=doc["type"],
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"x-replay": True, "x-publisher": doc.get("publisher") or ""},
            )
            routing_key = doc["routing_key"] if to is None else topology.event_queue(namespace, to)
            await exchange.publish(message, routing_key=routing_key, mandatory=True)
            summary.delivered[doc["type"]] += 1
            progress()
    return summary
