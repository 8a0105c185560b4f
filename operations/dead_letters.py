"""Dead-lettered messages: read them in place, and send them back to the queue that failed them.

A service dead-letters a message into `<queue>.dlq` with the reason in headers (`x-error`,
`x-error-type`, `x-failed-service`, `x-attempts`, `x-failed-at`). Reading takes messages without
acknowledging them and closes the channel, so RabbitMQ puts every one back. Redriving publishes a
copy to the failed service's event queue with publisher confirms, and only then removes the dead
letter: a crash in between sends it twice, which idempotent consumers absorb.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from aio_pika.exceptions import DeliveryError

from contracts import topology
from contracts.commands import DeadLetterView
from service_runtime import broker_nodes

SERVICES = tuple(topology.SUBSCRIPTIONS)
# What a redrive leaves out of the copy: the failure it is meant to repair, and the dead-letter
# queue's own delivery count.
_FAILURE_HEADERS = {"x-error", "x-error-type", "x-attempts", "x-failed-at", "x-delivery-count"}


class DeadLetter(DeadLetterView):
    """A dead letter as read from its queue: the contract's view of it, with the message's own body
    and headers."""

    body: bytes
    headers: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """What `DeadLetterView` says of it (the journal's answer, `pharmacy-ops dead-letters list`)."""
        return self.model_dump(include=set(DeadLetterView.model_fields))


def _letter(service: str, message: AbstractIncomingMessage) -> DeadLetter:
    headers = {k: _plain(v) for k, v in (message.headers or {}).items()}
    return DeadLetter(
        service=service,
        message_id=message.message_id or "",
        type=message.type or "",
        error_type=str(headers.get("x-error-type", "")),
        error=str(headers.get("x-error", "")),
        failed_at=str(headers.get("x-failed-at", "")),
        attempts=int(headers.get("x-attempts", 1) or 1),
        body=message.body,
        headers=headers,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@asynccontextmanager
async def _channel(rabbitmq_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await broker_nodes.connect(rabbitmq_url)
    async with connection:
        # Returns raise: a copy no queue took (its partitions unbound, its queue gone) is not confirmed
        # as sent, so its dead letter stays where it is.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        yield channel


async def _taken(
    channel: AbstractChannel, service: str, namespace: str, limit: int
) -> list[AbstractIncomingMessage]:
    """Up to `limit` messages of a service's dead-letter queue, unacknowledged (held by this channel)."""
    dlq = await channel.get_queue(topology.dead_letter_queue(topology.event_queue(namespace, service)))
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < limit and (message := await dlq.get(no_ack=False, fail=False)) is not None:
        taken.append(message)
    return taken


async def read(
    rabbitmq_url: str, namespace: str, services: Sequence[str] = SERVICES, *, limit: int = 1000
) -> list[DeadLetter]:
    """Every dead letter of the named services (up to `limit` each), left where it is."""
    found: list[DeadLetter] = []
    for service in services:
        async with _channel(rabbitmq_url) as channel:
            found += [_letter(service, m) for m in await _taken(channel, service, namespace, limit)]
            # Closing the channel without acknowledging puts every message back in its queue.
    return found


@dataclass(frozen=True)
class Redriven:
    service: str
    message_id: str
    queue: str
    replaced_body: bool
    # Why it was not sent back (it stays in the dead-letter queue); empty when it was.
    error: str = ""


async def redrive(
    rabbitmq_url: str,
    namespace: str,
    services: Sequence[str] = SERVICES,
    *,
    message_ids: Sequence[str] = (),
    body: bytes | None = None,
    dry_run: bool = False,
    limit: int = 1000,
) -> list[Redriven]:
    """Send dead letters back to the event queue of the service that failed them.

    Only those in `message_ids` when given; all otherwise. `body` replaces the payload (the fix for a
    message that was wrong); it needs exactly one message id. Each message's outcome is its own: one
    that could not be sent says why (its `error`) and stays a dead letter; those before and after it
    are sent all the same.
    """
    if body is not None and len(message_ids) != 1:
        raise ValueError("a replacement payload needs exactly one message id")
    done: list[Redriven] = []
    for service in services:
        async with _channel(rabbitmq_url) as channel:
            queue = topology.event_queue(namespace, service)
            # Back through the partition exchange: the partition header the message kept picks its queue.
            partitions = await channel.get_exchange(topology.partition_exchange(namespace, service))
            for message in await _taken(channel, service, namespace, limit):
                if message_ids and message.message_id not in message_ids:
                    continue
                item = Redriven(service, message.message_id or "", queue, body is not None)
                if not dry_run:
                    item = await _send_back(partitions, message, queue, body, item)
                done.append(item)
    return done


async def _send_back(
    partitions: AbstractExchange,
    message: AbstractIncomingMessage,
    queue: str,
    body: bytes | None,
    item: Redriven,
) -> Redriven:
    """Publish the dead letter's copy, then remove the dead letter; or say why not (it stays)."""
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _FAILURE_HEADERS}
    headers["x-redriven-at"] = datetime.now(UTC).isoformat()
    # One published before partitions names no partition: its saga's is its aggregate's.
    headers.setdefault(topology.PARTITION_HEADER, message.correlation_id or "")
    copy = aio_pika.Message(
        message.body if body is None else body,
        headers=headers,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        content_type=message.content_type or "application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    try:
        await partitions.publish(copy, routing_key=queue, mandatory=True)
    except DeliveryError as exc:
        # Returned (no queue bound for it: NO_ROUTE), or refused by the broker (nacked).
        reason = getattr(exc.frame, "reply_text", None) or "the broker refused it"
        return replace(item, error=f"not sent: no queue took the copy ({reason}); still a dead letter")
    except Exception as exc:  # any failure is this message's, said in its outcome
        return replace(item, error=f"not sent ({type(exc).__name__}: {exc}); still a dead letter")
    try:
        await message.ack()
    except Exception as exc:  # the copy went: the dead letter, left, may be sent twice
        return replace(item, error=f"sent, but the dead letter could not be removed ({type(exc).__name__})")
    return item
