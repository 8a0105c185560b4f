"""The broker traffic a phase made, read from every back-end process's /metrics before and after it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from contracts import topology
from contracts.base import Timer
from service_runtime.launcher import ARCHIVER, Platform

# Not caused by orders but by the clock: health probes and the outbox's periodic sweep.
PERIODIC = {"Ping", "SweepOutbox"}
WRITES = {c.TYPE for commands in topology.COMMANDS.values() for c in commands if c.WRITE}


class Traffic:
    """Counts by label: events published by type, messages each service took from its event queue by
    type (acked), and commands each service answered by type (reads on its RPC queue, writes queued)."""

    def __init__(self) -> None:
        self.published: Counter[str] = Counter()
        self.handled: Counter[tuple[str, str]] = Counter()
        self.answered: Counter[tuple[str, str]] = Counter()

    def __sub__(self, before: Traffic) -> Traffic:
        diff = Traffic()
        diff.published = self.published - before.published
        diff.handled = self.handled - before.handled
        diff.answered = self.answered - before.answered
        return diff

    def reads(self) -> Counter[tuple[str, str]]:
        """The RPC round trips on RPC queues: commands answered that do not write, clock-driven left out."""
        return Counter({k: n for k, n in self.answered.items() if k[1] not in WRITES | PERIODIC})

    def writes(self) -> Counter[tuple[str, str]]:
        """Write commands, queued on the owner's event queue."""
        return Counter({k: n for k, n in self.answered.items() if k[1] in WRITES})

    def taken(self) -> Counter[str]:
        """Messages each service took from its event queue (events, queued writes), by service."""
        counts: Counter[str] = Counter()
        for (service, kind), n in self.handled.items():
            if kind not in PERIODIC:
                counts[service] += n
        return counts

    def journalled(self) -> int:
        """The journal's copies: every event published but timers (the archiver serves no metrics)."""
        return sum(n for kind, n in self.published.items() if kind not in _TIMERS)


# Timers wait in their timer queue and are not journalled.
_TIMERS = {e.TYPE for events in topology.PUBLISHES.values() for e in events if issubclass(e, Timer)}


def _add(traffic: Traffic, text: str) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            count = int(sample.value)
            if sample.name == "pharmacy_events_published_total":
                traffic.published[labels["type"]] += count
            elif sample.name == "pharmacy_messages_handled_total" and labels["outcome"] == "acked":
                traffic.handled[(labels["service"], labels["type"])] += count
            elif sample.name == "pharmacy_commands_answered_total":
                traffic.answered[(labels["service"], labels["type"])] += count


async def scrape(http: httpx.AsyncClient, urls: Iterable[str]) -> Traffic:
    """The platform's counters so far, summed over its processes (replicas add up)."""
    traffic = Traffic()
    for url in urls:
        answer = await http.get(url)
        answer.raise_for_status()
        _add(traffic, answer.text)
    return traffic


def metrics_urls(platform: Platform) -> list[str]:
    """Where each back-end process serves /metrics (the archiver serves none, the gateway no events)."""
    names = platform.process_names()
    return [platform.metrics_url(name) for name in names if name not in (ARCHIVER, "user_service")]
