"""The base of every stored aggregate: identity, optimistic version, and the events it has applied."""

from __future__ import annotations

from uuid import NAMESPACE_URL, uuid4, uuid5

from pydantic import BaseModel, ConfigDict, PrivateAttr


class Aggregate(BaseModel):
    """A consistency boundary kept in one document, changed by one atomic update at a time.

    `processed_event_ids` makes a consumer idempotent inside the same write as the state change: the
    store offers no multi-document transactions, so a separate "processed" collection would not do.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    version: int = 0
    processed_event_ids: list[str] = []
    # Whether its document held events not yet published when it was read (the repository's to know).
    _outbox_waiting: bool = PrivateAttr(default=False)

    def has_processed(self, event_id: str) -> bool:
        return event_id in self.processed_event_ids


def minted_id(request_id: str | None, kind: str) -> str:
    """The id of what a write creates: the same for the same request, so a redelivery creates nothing.

    Without a request id (a caller that gives none) every call creates anew.
    """
    if request_id is None:
        return str(uuid4())
    return str(uuid5(NAMESPACE_URL, f"pharmacy:{kind}:{request_id}"))
