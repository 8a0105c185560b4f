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
from service_runtime import broker_nodes
from service_runtime.messaging import REBUILD

Document = dict[str, Any]


@dataclass
class ReplaySummary:
    delivered: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def plan(
    events: Sequence[Document], to: str | None, *, rebuild: bool = False
) -> tuple[list[Document], Counter[str]]:
    """Which events go (a service gets only the types it subscribes to), and what is left out.

    A rebuild also sends a service the events of its own that record its decisions on commands.
    """
    if to is None:
        return list(events), Counter()
    own = topology.REBUILT_FROM_OWN.get(to, ()) if rebuild else ()
    wanted = {event.TYPE for event in (*topology.SUBSCRIPTIONS[to], *own)}
    going = [doc for doc in events if doc["type"] in wanted]
    if own:
        going = in_decision_order(going, to)
    return going, Counter(doc["type"] for doc in events if doc["type"] not in wanted)


def in_decision_order(events: Sequence[Document], service: str) -> list[Document]:
    """The service's own events moved to where it decided them: right after the event it had handled
    last (`decided_after`), not where the journal received them.

    A command waits in the service's queue behind the events before it, and its event is published
    only once it is carried out, so events that queued up meanwhile reached the journal first; the
    service had not handled them yet when it decided. Rebuilding in journal order would apply them
    first and could decide otherwise (an order cancelled while PENDING would get its stock first).
    Own events with nothing to go by keep their place.
    """
    position = {doc["_id"]: n for n, doc in enumerate(events) if doc.get("publisher") != service}

    def key(item: tuple[int, Document]) -> tuple[int, int, int]:
        n, doc = item
        after = doc.get("decided_after")
        if doc.get("publisher") == service and after in position:
            return (position[after], 1, n)
        return (n, 0, n)

    return [doc for _, doc in sorted(enumerate(events), key=key)]


async def replay(
    rabbitmq_url: str,
    namespace: str,
    events: Sequence[Document],
    *,
    to: str | None,
    dry_run: bool = False,
    rebuild: bool = False,
    progress: Callable[[], None] = lambda: None,
) -> ReplaySummary:
    """Publish journalled events again, in the order given, with publisher confirms.

    `rebuild`: the copies say `x-replay: rebuild`, so the service restores its state from them and
    publishes nothing (what it would publish is in the journal already).
    """
    if rebuild and to not in topology.REBUILT_FROM_OWN:
        raise ValueError(f"{to} cannot be rebuilt from the journal: restore it from a backup")
    going, skipped = plan(events, to, rebuild=rebuild)
    summary = ReplaySummary(skipped=skipped)
    if dry_run:
        summary.delivered.update(doc["type"] for doc in going)
        return summary
    connection = await broker_nodes.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        # To one service: through its partition exchange, so each copy reaches its aggregate's partition.
        name = topology.partition_exchange(namespace, to) if to else f"{namespace}.{topology.EVENTS_EXCHANGE}"
        exchange = await channel.get_exchange(name)
        for doc in going:
            message = aio_pika.Message(
                json.dumps(doc["envelope"]).encode(),
                message_id=doc["_id"],
                correlation_id=doc["correlation_id"],
                type=doc["type"],
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={
                    "x-replay": REBUILD if rebuild else True,
                    "x-publisher": doc.get("publisher") or "",
                    topology.PARTITION_HEADER: doc["correlation_id"],
                },
            )
            await exchange.publish(message, routing_key=doc["routing_key"], mandatory=True)
            summary.delivered[doc["type"]] += 1
            progress()
    return summary
