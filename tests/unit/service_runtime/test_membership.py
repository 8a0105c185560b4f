"""How unnumbered replicas share a service's partitions (service_runtime/membership.py), as pure rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service_runtime.membership import Member, plan, share

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def member(name: str, consuming: set[int] | None = None) -> Member:
    return Member(id=name, started_at=T0, seen_at=T0, consuming=frozenset(consuming or ()))


@pytest.mark.parametrize(("members", "partitions"), [(1, 4), (2, 4), (3, 4), (3, 8), (5, 4), (4, 64)])
def test_every_partition_has_one_owner_and_shares_differ_by_one_at_most(
    members: int, partitions: int
) -> None:
    names = [f"m{i}" for i in range(members)]
    shares = [share(names, partitions, name) for name in names]

    owned = [k for s in shares for k in s]
    assert sorted(owned) == list(range(partitions))
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1


def test_the_oldest_member_keeps_partition_0_when_one_joins_and_a_stranger_owns_none() -> None:
    assert share(["a"], 4, "a") == {0, 1, 2, 3}
    assert share(["a", "b"], 4, "a") == {0, 2}
    assert share(["a", "b"], 4, "b") == {1, 3}
    assert share(["a", "b"], 4, "c") == set()


def test_a_lone_member_takes_every_partition_at_once() -> None:
    assert plan([member("a")], "a", 4, set()) == (set(), {0, 1, 2, 3})


def test_a_member_joining_takes_nothing_the_old_one_still_consumes() -> None:
    members = [member("a", {0, 1, 2, 3}), member("b")]

    assert plan(members, "b", 4, set()) == (set(), set())
    assert plan(members, "a", 4, {0, 1, 2, 3}) == ({1, 3}, set())


def test_once_released_the_joining_member_takes_its_share() -> None:
    members = [member("a", {0, 2}), member("b")]

    assert plan(members, "b", 4, set()) == (set(), {1, 3})
    assert plan(members, "a", 4, {0, 2}) == (set(), set())


def test_the_survivor_takes_the_partitions_of_a_member_that_left() -> None:
    # "b" is gone from the live list (left cleanly, or its lease ran out): its claims no longer count.
    assert plan([member("a", {0, 2})], "a", 4, {0, 2}) == (set(), {1, 3})
