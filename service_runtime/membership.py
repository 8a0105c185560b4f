"""Which partitions a replica takes when nothing numbers the replicas (a Kubernetes Deployment).

The launcher and compose number a service's replicas (`REPLICA_INDEX`/`REPLICA_COUNT`), so each
takes its share at start. Pods of a Deployment have no number, and an autoscaler adds and removes
them: without help, the first pod would keep every partition and the pods added later would wait.
So each replica keeps a member document in its own service's store (`replicas`: its id, when it
started, a heartbeat, the partitions it consumes now) and, every tick, takes the share the live
members' list gives it:

- the live members are those whose heartbeat is younger than the lease; sorted by start, member i of
  n owns partitions i, i + n, ...: balanced within one (a change of members moves partitions between
  the others too, each handed over as below);
- a replica gives up a partition first (its consumer cancelled, the messages it holds handled and
  acked) and says so in its document; a replica takes a partition only when no live member's
  document still says it consumes it, so one partition never has two replicas handling it at once.
  The queue's single active consumer stays the broker's guard besides;
- a replica that stops cleanly deletes its document, and the others take its partitions at their
  next tick; one that crashed is left out once its lease has run out.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from service_runtime.clock import utc_now

log = logging.getLogger(__name__)

COLLECTION = "replicas"


def collection_of(service: str) -> str:
    return f"{COLLECTION}_{service}"


def share(members: Sequence[str], partitions: int, member: str) -> set[int]:
    """The partitions `member` owns among `members` (in the order they started): k where k mod n is
    its place. A member not in the list owns none."""
    if member not in members:
        return set()
    place, count = members.index(member), len(members)
    return {k for k in range(partitions) if k % count == place}


@dataclass(frozen=True)
class Member:
    id: str
    started_at: datetime
    seen_at: datetime
    consuming: frozenset[int]


class Membership:
    """This replica's member document, and the live members' view of who consumes what."""

    def __init__(self, db: AsyncDatabase[Any], service: str, *, lease_seconds: float) -> None:
        # One collection per service: services that share a database (tests do) are not each other's
        # members.
        self.collection = db[collection_of(service)]
        self.lease = timedelta(seconds=lease_seconds)
        self.id = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.started_at = utc_now()

    async def beat(self, consuming: set[int]) -> None:
        """Renew this replica's heartbeat and say which partitions it consumes now."""
        await self.collection.update_one(
            {"_id": self.id},
            {
                "$set": {
                    "started_at": self.started_at,
                    "seen_at": utc_now(),
                    "consuming": sorted(consuming),
                    "host": socket.gethostname(),
                }
            },
            upsert=True,
        )

    async def live(self) -> list[Member]:
        """The members whose heartbeat is within the lease, oldest first (this one included once it beat)."""
        since = utc_now() - self.lease
        members = [
            Member(
                id=str(doc["_id"]),
                started_at=doc["started_at"],
                seen_at=doc["seen_at"],
                consuming=frozenset(int(k) for k in doc.get("consuming", ())),
            )
            async for doc in self.collection.find({"seen_at": {"$gte": since}})
        ]
        return sorted(members, key=lambda m: (m.started_at, m.id))

    async def leave(self) -> None:
        await self.collection.delete_one({"_id": self.id})

    async def forget_expired(self) -> int:
        """Delete documents of members gone for ten leases (crashed pods leave theirs behind)."""
        done = await self.collection.delete_many({"seen_at": {"$lt": utc_now() - 10 * self.lease}})
        return done.deleted_count


def plan(
    members: Sequence[Member], me: str, partitions: int, consuming: set[int]
) -> tuple[set[int], set[int]]:
    """What to release and what to take now: release what is no longer this member's share; take what
    is, unless another live member still says it consumes it (it is releasing it)."""
    target = share([m.id for m in members], partitions, me)
    busy = {k for m in members if m.id != me for k in m.consuming}
    return consuming - target, (target - consuming) - busy
