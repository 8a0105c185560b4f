"""Errors a handler raises to say what should happen to the message or command in hand."""

from __future__ import annotations

from contracts.base import ErrorCode


class PermanentFailure(Exception):
    """The message can never be handled (bad payload, broken invariant): dead-letter it with this reason."""


class RetryLater(Exception):
    """The message arrived before what it depends on: requeue it and try again shortly."""


class CommandRefused(Exception):
    """A command the service will not carry out, with the code the gateway maps to an HTTP status."""

    def __init__(self, code: ErrorCode, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.code: ErrorCode = code
        self.detail = detail
        self.field = field


class ServiceUnavailable(Exception):
    """The service that owns a command did not answer in time, or is not there."""


class ConcurrentModification(Exception):
    """Another writer changed the aggregate since it was read: reload and decide again."""
