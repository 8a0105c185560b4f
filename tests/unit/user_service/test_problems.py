"""The gateway's error answers: problem+json, and a 503 the client may retry while a store restarts."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from service_runtime.errors import ServiceUnavailable
from user_service import problems


def client_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_an_unreachable_user_store_is_a_503_to_retry_not_a_500() -> None:
    for failure in (AutoReconnect("store restarting"), ServerSelectionTimeoutError("no server")):
        answer = client_raising(failure).get("/boom")

        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
        assert answer.headers["content-type"] == "application/problem+json"
        assert "restarting" not in answer.text  # the driver's message stays in the log


def test_a_back_end_service_not_answering_is_a_503_too() -> None:
    answer = client_raising(ServiceUnavailable("order_service did not answer GetOrder")).get("/boom")

    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert "order_service" not in answer.text


def test_anything_else_is_a_plain_500_without_the_trace() -> None:
    answer = client_raising(RuntimeError("secret internals")).get("/boom")

    assert answer.status_code == 500
    assert "secret internals" not in answer.text
