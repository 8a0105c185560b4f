"""What the journal's process answers over RabbitMQ: the operator's screens ask it for an order's
saga (from the journal's store, which no other process opens) and for the dead letters, and ask it to
redrive them (`pharmacy-ops timeline` and `dlq` do the same from a shell)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from contracts import commands as c
from contracts import topology
from operations import dead_letters
from operations.timeline import saga_timeline
from service_runtime.errors import CommandRefused
from service_runtime.messaging import CommandServer

if TYPE_CHECKING:  # the journal's process imports this module to answer with it
    from operations.journal import Journal


def _services(service: str | None) -> tuple[str, ...]:
    return dead_letters.SERVICES if service is None else (service,)


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def journal_server(journal: Journal, rabbitmq_url: str, namespace: str) -> CommandServer:
    """The journal's command server: reads of sagas and dead letters, and redriving them.

    It answers several requests at once (its prefetch), but one dead-letter operation at a time: a
    list or a dry run holds the letters it reads unacknowledged until it is done, so a redrive at the
    same moment would not find them (and report them not found), nor would a second, double-submitted
    redrive find what the first is sending.
    """
    server = CommandServer(topology.JOURNAL)
    one_at_a_time = asyncio.Lock()

    @server.on(c.GetSagaTimeline)
    async def get_saga_timeline(command: c.GetSagaTimeline) -> c.SagaTimelineView:
        found = await journal.find(correlation_id=command.order_id)
        if not found:
            raise CommandRefused("not_found", f"the journal holds no event of order {command.order_id}")
        return saga_timeline(command.order_id, found)

    @server.on(c.ListDeadLetters)
    async def list_dead_letters(command: c.ListDeadLetters) -> list[c.DeadLetterView]:
        async with one_at_a_time:
            letters = await dead_letters.read(rabbitmq_url, namespace, _services(command.service))
        return [c.DeadLetterView(**letter.summary()) for letter in letters]

    @server.on(c.GetDeadLetter)
    async def get_dead_letter(command: c.GetDeadLetter) -> c.DeadLetterDetailView:
        async with one_at_a_time:
            letters = await dead_letters.read(rabbitmq_url, namespace, (command.service,))
        for letter in letters:
            if letter.message_id == command.message_id:
                return c.DeadLetterDetailView(
                    **letter.summary(), headers=letter.headers, body=_body(letter.body)
                )
        raise CommandRefused(
            "not_found", f"no dead letter {command.message_id} in the queue of {command.service}"
        )

    @server.on(c.RedriveDeadLetters)
    async def redrive_dead_letters(command: c.RedriveDeadLetters) -> c.RedriveView:
        async with one_at_a_time:
            done = await dead_letters.redrive(
                rabbitmq_url,
                namespace,
                _services(command.service),
                message_ids=command.message_ids,
                dry_run=command.dry_run,
            )
        found = {item.message_id for item in done}
        return c.RedriveView(
            dry_run=command.dry_run,
            redriven=tuple(
                c.RedrivenView(service=i.service, message_id=i.message_id, queue=i.queue)
                for i in done
                if not i.error
            ),
            not_found=tuple(m for m in dict.fromkeys(command.message_ids) if m not in found),
            failed=tuple(
                c.NotRedrivenView(service=i.service, message_id=i.message_id, queue=i.queue, reason=i.error)
                for i in done
                if i.error
            ),
        )

    return server
