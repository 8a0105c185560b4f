"""The benchmark's plain-text tables: throughput and latency, broker traffic per order, CPU per order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from benchmarks.ceiling import Chain
from benchmarks.load import Results, percentile
from benchmarks.traffic import Traffic


@dataclass
class Phase:
    """One measured phase: its orders' results, each process's CPU seconds, the platform's traffic."""

    label: str
    results: Results
    cpu: dict[str, float] = field(default_factory=dict)
    traffic: Traffic | None = None
    ceiling: Results | None = None  # the ceiling at the same concurrency, for a closed loop


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the first left-aligned, the others right-aligned."""
    lines = [list(header), *(list(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"  # NaN: nothing finished


def throughput_table(phases: Sequence[Phase]) -> str:
    rows = []
    for phase in phases:
        r = phase.results
        ratio = "-"
        if phase.ceiling is not None and phase.ceiling.throughput:
            ratio = f"{100 * r.throughput / phase.ceiling.throughput:.1f}%"
        done = len(r.saga_ms)
        rows.append(
            [
                phase.label,
                str(r.orders),
                str(done),
                f"{r.throughput:.1f}",
                ratio,
                _ms(percentile(r.saga_ms, 50)),
                _ms(percentile(r.saga_ms, 95)),
                _ms(percentile(r.saga_ms, 99)),
                str(r.late),
                str(r.unfinished),
                " ".join(f"{n}x{status}" for status, n in sorted(r.refused.items())) or "0",
            ]
        )
    header = ["phase", "orders", "ended", "orders/s", "of ceiling", "p50 ms", "p95 ms", "p99 ms"]
    return table([*header, "late", "unfinished", "refused"], rows)


def traffic_table(measured: Traffic, orders: int, chain: Chain, ceiling: Counter[str], sagas: int) -> str:
    """Per order: what the platform's /metrics counted, beside what the ceiling made."""
    chain_published: Counter[str] = Counter()
    for step in chain.steps:
        chain_published[step.publishes] += step.copies
    reads: Counter[str] = Counter(f"{s} {k}" for s, k in chain.reads)
    rows = []
    for kind in sorted(set(measured.published) | set(chain_published)):
        rows.append(
            [f"published {kind}", f"{measured.published[kind] / orders:.2f}", str(chain_published[kind])]
        )
    taken = measured.taken()
    for service in sorted(set(taken) | (set(ceiling) - {"journal"})):
        rows.append(
            [f"taken from {service} events", _per(taken[service], orders), _per(ceiling[service], sagas)]
        )
    rows.append(
        ["taken by the journal", _per(measured.journalled(), orders), _per(ceiling["journal"], sagas)]
    )
    for (service, kind), n in sorted(measured.reads().items()):
        rows.append([f"round trip {service} {kind}", f"{n / orders:.2f}", str(reads[f"{service} {kind}"])])
    for (service, kind), n in sorted(measured.writes().items()):
        rows.append(
            [
                f"queued write {service} {kind}",
                f"{n / orders:.2f}",
                "1" if (service, kind) == chain.write else "0",
            ]
        )
    return table(["per order", "saga", "ceiling"], rows)


def _per(n: int, orders: int) -> str:
    return f"{n / orders:.2f}" if orders else "-"


def cpu_table(run: str, phases: Sequence[Phase]) -> str:
    """CPU milliseconds per ended order of each process, one column per phase of a run."""
    names = list(dict.fromkeys(name for phase in phases for name in phase.cpu))
    rows = []
    for name in names:
        row = [name]
        for phase in phases:
            done = len(phase.results.saga_ms)
            row.append(f"{1000 * phase.cpu[name] / done:.1f}" if name in phase.cpu and done else "-")
        rows.append(row)
    totals = ["all"]
    for phase in phases:
        done = len(phase.results.saga_ms)
        totals.append(f"{1000 * sum(phase.cpu.values()) / done:.1f}" if done else "-")
    rows.append(totals)
    columns = [p.label.removeprefix(run).replace(", ", " ").strip() for p in phases]
    return table([f"CPU ms per ended order, {run}", *columns], rows)
