"""The operator's view of the saga and of what failed, on the web UI: an order's timeline as the
journal holds it, and the dead letters, redriven after a dry run. Each page calls the API's route
function (`operations.get_saga_timeline`, `redrive_dead_letters`, ...), which asks the journal's
process over RabbitMQ."""

from __future__ import annotations

import json
from typing import Annotated, get_args

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from contracts import commands as c
from user_service.deps import ResourceId, Rpc
from user_service.problems import FieldInvalid
from user_service.routes import operations
from user_service.schemas import MAX_REDRIVE_IDS, FailedService, RedriveIn
from user_service.web.common import AdminPage, PageRoute, audited_page, redirect, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)
SERVICES: tuple[str, ...] = get_args(FailedService)
PAGE_SIZE = MAX_REDRIVE_IDS  # every one listed fits in one redrive
ServiceChoice = Annotated[str, Query(max_length=40)]


def _redrive(service: str, message_ids: list[str], *, dry_run: bool) -> RedriveIn:
    if service and _service(service) is None:
        # Not every service instead: a redrive goes no wider than the form said.
        raise FieldInvalid("service", f"no service is named {service}: choose one from the list")
    try:
        return RedriveIn(
            service=_service(service), message_ids=[m for m in message_ids if m], dry_run=dry_run
        )
    except ValidationError as exc:
        if len(message_ids) > MAX_REDRIVE_IDS:
            raise FieldInvalid("message_id", f"at most {MAX_REDRIVE_IDS} messages per redrive") from exc
        raise FieldInvalid("message_id", "a message id has 1 to 200 characters") from exc


def _service(value: str) -> FailedService | None:
    """A service picked in a form; None for every one (or, to filter a list, a name no service has)."""
    return next((s for s in get_args(FailedService) if s == value), None)


@router.get(
    "/admin/orders/{order_id}/timeline", dependencies=[audited_page("operations.timeline", "order_id")]
)
async def timeline_page(request: Request, order_id: ResourceId, web: AdminPage, rpc: Rpc) -> HTMLResponse:
    saga = await operations.get_saga_timeline(order_id, web.user, rpc)
    return render(request, "operator_timeline.html", web, saga=saga, order_id=order_id, errors={})


@router.get("/admin/dead-letters", dependencies=[audited_page("operations.dead_letters")])
async def dead_letters_page(
    request: Request,
    web: AdminPage,
    rpc: Rpc,
    service: ServiceChoice = "",
    redriven: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> HTMLResponse:
    chosen = _service(service)
    found = await operations.list_dead_letters(web.user, rpc, c.Page(limit=PAGE_SIZE, offset=0), chosen)
    return render(
        request,
        "operator_dead_letters.html",
        web,
        letters=found.items,
        service=chosen,
        services=SERVICES,
        redriven=redriven,
    )


@router.get(
    "/admin/dead-letters/{service}/{message_id}",
    dependencies=[audited_page("operations.dead_letter_read", "message_id")],
)
async def dead_letter_page(
    request: Request, service: FailedService, message_id: operations.MessageId, web: AdminPage, rpc: Rpc
) -> HTMLResponse:
    letter = await operations.get_dead_letter(service, message_id, web.user, rpc)
    body = letter.body if isinstance(letter.body, str) else json.dumps(letter.body, indent=2)
    headers = {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in letter.headers.items()}
    return render(request, "operator_dead_letter.html", web, letter=letter, body=body, headers=headers)


@router.post("/admin/dead-letters/dry-run", dependencies=[audited_page("operations.redrive")])
async def dry_run_page(
    request: Request,
    web: AdminPage,
    rpc: Rpc,
    service: Annotated[str, Form(max_length=40)] = "",
    message_id: Annotated[list[str], Form(max_length=1000)] = [],  # noqa: B006 - copied per request
) -> HTMLResponse:
    """What a redrive would send, and where, sending nothing; its confirm button sends exactly those.
    A POST that sends nothing, answered with the page itself: its ids (up to a page of them) would not
    fit in a URL."""
    body = _redrive(service, message_id, dry_run=True)
    plan = await operations.redrive_dead_letters(body, web.user, rpc, request.state.audit)
    return render(request, "operator_redrive.html", web, plan=plan, service=body.service)


@router.post("/admin/dead-letters/redrive", dependencies=[audited_page("operations.redrive")])
async def redrive(
    request: Request,
    web: AdminPage,
    rpc: Rpc,
    service: Annotated[str, Form(max_length=40)] = "",
    message_id: Annotated[list[str], Form(max_length=1000)] = [],  # noqa: B006 - copied per request
) -> Response:
    # Only what the dry run listed: a letter dead-lettered since then waits for its own dry run.
    if not message_id:
        return redirect(request, "/admin/dead-letters")
    body = _redrive(service, message_id, dry_run=False)
    done = await operations.redrive_dead_letters(body, web.user, rpc, request.state.audit)
    if done.failed or done.not_found:
        # What went and what did not, and why: answered here, as the reasons cannot go in a URL.
        return render(request, "operator_redrive_result.html", web, done=done)
    return redirect(request, f"/admin/dead-letters?redriven={len(done.redriven)}")
