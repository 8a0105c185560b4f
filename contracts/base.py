"""The envelope every message travels in, and the base classes of events, commands and replies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    """Immutable value. Tolerant reader: fields it does not know are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(Frozen):
    """A past-tense fact. Subclasses name their type, version and routing key."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    ROUTING_KEY: ClassVar[str]


class Timer(Event):
    """A fact that falls due at `fires_at`: the broker holds it until then, then hands it to its subscriber.

    Published like any event, but routed to the subscriber's timer queue with a per-message TTL, which
    dead-letters it into the subscriber's event queue when it is due: a durable timer, no store scan.
    """

    fires_at: AwareDatetime


class Command(Frozen):
    """An imperative request sent over RPC to the one service that owns the answer.

    A command that writes is WRITE: it is queued with the service's events, on the partition queue of
    the aggregate it changes (PARTITION_BY), which one replica consumes at a time. Reads are answered
    by any replica.
    """

    TYPE: ClassVar[str]
    WRITE: ClassVar[bool] = False
    # A write is queued on the partition of the key this field names. Events are keyed by their saga's
    # correlation id (the order's id), so only a write keyed by the order (CancelOrder) queues in order
    # with the order's events; the others (a pharmacy's stock, a withdrawal by prescription id...) may
    # meet those events from another partition, where the version-conditional save keeps both.
    PARTITION_BY: ClassVar[str] = "request_id"
    # A read whose work is slow (reading a scanned document) names its own queue: a worker of its own
    # serves it, so it never waits behind, nor delays, the quick reads of the service's RPC queue.
    QUEUE: ClassVar[str | None] = None
    # How long such a read may wait for its worker and take: the caller's timeout, and the queue's TTL.
    QUEUE_SECONDS: ClassVar[float] = 60.0

    # The caller's id for this request. A write can be delivered twice (a crash between carrying it
    # out and acknowledging it): what it creates takes ids derived from this, so it is created once.
    request_id: str | None = None


class Envelope(Frozen):
    """What crosses the broker: identity, causality and a typed payload."""

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str
    causation_id: str | None = None
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        correlation_id: str,
        causation_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        return cls(
            type=event.TYPE,
            version=event.VERSION,
            occurred_at=occurred_at or datetime.now(UTC),
            correlation_id=correlation_id,
            causation_id=causation_id,
            payload=event.model_dump(mode="json"),
        )


ErrorCode = Literal[
    "not_found",
    "conflict",
    "invalid",
    "forbidden",
    "too_large",
    "unsupported_media_type",
    "unavailable",
    "internal",
]


class FieldProblem(Frozen):
    """One place in what was sent that is at fault, and why."""

    field: str
    message: str


class RpcError(Frozen):
    """Why a command was refused, in terms the gateway maps to an HTTP status."""

    code: ErrorCode
    detail: str
    field: str | None = None
    # Every place at fault, when there are several (a FHIR document's problems, by JSON pointer).
    errors: tuple[FieldProblem, ...] = ()


class RpcReply(Frozen):
    """Every RPC answer: `data` on success, `error` otherwise."""

    data: Any = None
    error: RpcError | None = None
