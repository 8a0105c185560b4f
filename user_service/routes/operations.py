"""The operator's view of the platform, for admins: an order's saga as the journal holds it, and the
dead letters, redriven after a dry run. The journal's process answers all of it over RabbitMQ (it
alone opens the journal's store); the gateway only asks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from contracts import commands as c
from user_service.audit import Audit, audited
from user_service.deps import Admin, Paging, ResourceId, Rpc
from user_service.schemas import (
    DeadLetterDetailOut,
    DeadLetterOut,
    FailedService,
    Page,
    RedriveIn,
    RedriveOut,
    SagaTimelineOut,
)

router = APIRouter(prefix="/operations", tags=["operations"])
# A dead letter keeps the message id its publisher gave it: not always one of our UUIDs.
MessageId = Annotated[str, Path(min_length=1, max_length=200)]
# A redrive publishes each message with confirms: slower than a read, so it has longer than
# RPC_TIMEOUT_SECONDS to answer (RedriveIn caps the ids one request names) rather than a 503 while it
# carries on. The request expires unanswered after as long, so one that waited in the queue never starts.
REDRIVE_SECONDS = 60.0


@router.get(
    "/orders/{order_id}/timeline",
    response_model=SagaTimelineOut,
    dependencies=[audited("operations.timeline", subject="order_id")],
)
async def get_saga_timeline(order_id: ResourceId, admin: Admin, rpc: Rpc) -> SagaTimelineOut:
    """Every event of the order's saga in the order it happened, across every service: the time
    between steps, who published each, and where the saga ended or what it waits for (404: the journal
    holds no event of it)."""
    view = await rpc.ask(c.GetSagaTimeline(order_id=order_id), c.SagaTimelineView)
    return SagaTimelineOut.of(view)


@router.get(
    "/dead-letters",
    response_model=Page[DeadLetterOut],
    dependencies=[audited("operations.dead_letters")],
)
async def list_dead_letters(
    admin: Admin,
    rpc: Rpc,
    page: Paging,
    service: Annotated[FailedService | None, Query(description="only this service's dead letters")] = None,
) -> Page[DeadLetterOut]:
    """The messages services dead-lettered, left where they are: which service failed each, its
    type, the error, when, after how many attempts."""
    found = await rpc.ask(c.ListDeadLetters(service=service), list[c.DeadLetterView])
    shown = found[page.offset : page.offset + page.limit]
    return Page(
        items=[DeadLetterOut.model_validate(d.model_dump()) for d in shown],
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/dead-letters/{service}/{message_id}",
    response_model=DeadLetterDetailOut,
    dependencies=[audited("operations.dead_letter_read", subject="message_id")],
)
async def get_dead_letter(
    service: FailedService, message_id: MessageId, admin: Admin, rpc: Rpc
) -> DeadLetterDetailOut:
    """One dead letter whole: its headers (the error among them) and its body."""
    view = await rpc.ask(c.GetDeadLetter(service=service, message_id=message_id), c.DeadLetterDetailView)
    return DeadLetterDetailOut.model_validate(view.model_dump())


@router.post(
    "/dead-letters/redrive",
    response_model=RedriveOut,
    dependencies=[audited("operations.redrive")],
)
async def redrive_dead_letters(body: RedriveIn, admin: Admin, rpc: Rpc, audit: Audit) -> RedriveOut:
    """Send dead letters back to the queue of the service that failed them: those named, or every one
    (of the service). A dry run (the default) only says what would be sent where, and sends nothing.

    Consumers are idempotent: a message that was applied after all changes nothing the second time.
    """
    command = c.RedriveDeadLetters(
        service=body.service, message_ids=tuple(body.message_ids), dry_run=body.dry_run
    )
    view = await rpc.ask(command, c.RedriveView, timeout=REDRIVE_SECONDS)
    audit.details = {"dry_run": str(body.dry_run).lower(), "redriven": str(len(view.redriven))}
    if view.failed:
        audit.details["failed"] = str(len(view.failed))
    return RedriveOut.model_validate(view.model_dump())
