"""The gateway's error answers: problem+json, and a 503 the client may retry while a store restarts."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from service_runtime.errors import CommandRefused, ServiceUnavailable
from user_service import problems


async def answer_to(exc: Exception) -> httpx.Response:
    """What the gateway answers when a route raises `exc`."""
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.get("/boom")


async def test_an_unreachable_user_store_is_a_503_to_retry_not_a_500() -> None:
    for failure in (AutoReconnect("store restarting"), ServerSelectionTimeoutError("no server")):
        answer = await answer_to(failure)

        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
        assert answer.headers["content-type"] == "application/problem+json"
        assert "restarting" not in answer.text  # the driver's message stays in the log


async def test_a_back_end_service_not_answering_is_a_503_too() -> None:
    answer = await answer_to(ServiceUnavailable("order_service did not answer GetOrder"))

    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert "order_service" not in answer.text


async def test_anything_else_is_a_plain_500_without_the_trace() -> None:
    answer = await answer_to(RuntimeError("secret internals"))

    assert answer.status_code == 500
    assert "secret internals" not in answer.text


async def test_a_back_end_failure_is_told_without_its_internals() -> None:
    internal = await answer_to(CommandRefused("internal", "order_service failed: pharmacy.rpc.orders"))
    away = await answer_to(CommandRefused("unavailable", "order_service cannot reach its store; try again"))

    assert (internal.status_code, away.status_code, away.headers["Retry-After"]) == (500, 503, "5")
    for answer in (internal, away):
        assert answer.headers["content-type"] == "application/problem+json"
        assert "order_service" not in answer.text


async def test_a_500_carries_the_security_headers_too() -> None:
    answer = await answer_to(RuntimeError("secret internals"))

    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
