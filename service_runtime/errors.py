"""Errors a handler raises to say what should happen to the message or command in hand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError
from pymongo.errors import ConnectionFailure

from contracts.base import ErrorCode, FieldProblem

log = logging.getLogger(__name__)
T = TypeVar("T")

# The store or the broker is away for a moment: wait and try again, do not count it as a failure.
TRANSIENT: tuple[type[Exception], ...] = (
    ConnectionFailure,
    AMQPConnectionError,
    ChannelInvalidStateError,
    ConnectionError,
    TimeoutError,
)


class PermanentFailure(Exception):
    """The message can never be handled (bad payload, broken invariant): dead-letter it with this reason."""


class RetryLater(Exception):
    """The message arrived before what it depends on: requeue it and try again shortly."""


class CommandRefused(Exception):
    """A command the service will not carry out, with the code the gateway maps to an HTTP status."""

    def __init__(
        self,
        code: ErrorCode,
        detail: str,
        field: str | None = None,
        errors: tuple[FieldProblem, ...] = (),
    ) -> None:
        super().__init__(detail)
        self.code: ErrorCode = code
        self.detail = detail
        self.field = field
        self.errors = errors


class ServiceUnavailable(Exception):
    """The service that owns a command did not answer in time, or is not there."""


class ConcurrentModification(Exception):
    """Another writer changed the aggregate since it was read: reload and decide again."""


async def until_up(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    first_delay: float = 0.2,
    max_delay: float = 5.0,
    still_wanted: Callable[[], bool] = lambda: True,
) -> T:
    """Run `attempt` until the store or broker it needs answers, backing off between tries.

    Services start in any order, and a handler waits out an outage instead of failing. Gives up, by
    raising the last error, once `still_wanted` says the result is no longer wanted.
    """
    delay = first_delay
    while True:
        try:
            return await attempt()
        except TRANSIENT as exc:
            if not still_wanted():
                raise
            log.warning(
                "%s: store or broker unreachable, retrying in %.1f s: %s: %s",
                what,
                delay,
                type(exc).__name__,
                exc,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
