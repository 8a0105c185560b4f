"""The page a redrive answers with when not everything went: what was sent, and what was not and why."""

from __future__ import annotations

from user_service.schemas import NotRedrivenOut, RedrivenOut, RedriveOut
from user_service.web.common import templates


def test_the_page_names_what_was_sent_and_what_was_not_with_why() -> None:
    done = RedriveOut(
        dry_run=False,
        redriven=[RedrivenOut(service="order_service", message_id="sent-1", queue="ns.order_service.events")],
        not_found=["gone-1"],
        failed=[
            NotRedrivenOut(
                service="payment_service",
                message_id="kept-1",
                queue="ns.payment_service.events",
                reason="not sent: no queue took the copy (NO_ROUTE); still a dead letter",
            )
        ],
    )

    page = templates.get_template("operator_redrive_result.html").render(
        user=None, csrf_token=None, done=done
    )

    assert page.count("<h1>") == 1
    assert "<strong>Sent:</strong> 1 dead letter sent back" in page
    assert "<td>sent-1</td><td>order_service</td><td><code>ns.order_service.events</code></td>" in page
    assert '<a href="/admin/dead-letters/payment_service/kept-1">Message kept-1</a>' in page
    assert "<td>not sent: no queue took the copy (NO_ROUTE); still a dead letter</td>" in page
    assert "no dead-letter queue holds gone-1" in page
