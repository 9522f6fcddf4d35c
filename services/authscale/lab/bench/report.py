"""What ``authscale bench`` prints: a row per measurement, the ratios, and what to distrust."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from authscale.lab.bench.measurement import Layout, Measurement

#: A replica using less of its core than this was not saturated: its rate says little.
SATURATED = 0.85

HEADER = (
    f"{'mode':<15} {'route':<8} {'path':<19} {'#':>2} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
    f"{'p99 ms':>7} {'µs CPU':>7} {'replica':>7} {'wrk':>5} {'nginx+redis':>11} {'others':>6}"
)


def format_row(m: Measurement) -> str:
    r = m.result
    return (
        f"{m.mode:<15} {m.route:<8} {m.path:<19} {m.round:>2} {r.rate:>7.0f} {r.p50_ms:>7.2f} "
        f"{r.p95_ms:>7.2f} {r.p99_ms:>7.2f} {m.replica_cpu_per_request * 1e6:>7.0f} "
        f"{m.replica_cpu:>7.0%} {r.cpu_share:>5.0%} {m.rest_cpu:>11.0%} {m.neighbours_cpu:>6.0%}"
    )


@dataclass(frozen=True)
class Ratio:
    mode: str
    route: str
    #: Median over rounds of dashboard rate / ping rate, measured back to back.
    rate: float
    #: Median over rounds of ping CPU per request / dashboard CPU per request: the rate ratio
    #: of a replica that had its core to itself.
    cpu: float
    target: float | None
    #: Every measurement of the pair had the replica saturated: the rate ratio is then the
    #: figure; otherwise a neighbour or the generator interfered and the CPU ratio is.
    saturated: bool

    @property
    def judged(self) -> float:
        return self.rate if self.saturated else self.cpu

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.judged >= self.target


def ratios(measurements: Sequence[Measurement], targets: Mapping[str, float | None]) -> list[Ratio]:
    pairs: dict[tuple[str, str], list[tuple[Measurement, Measurement]]] = {}
    ping: dict[tuple[str, str, int], Measurement] = {}
    for m in measurements:
        key = (m.mode, m.route)
        if m.path.endswith("/ping"):
            ping[(*key, m.round)] = m
        elif (*key, m.round) in ping:
            pairs.setdefault(key, []).append((ping[(*key, m.round)], m))
    found = []
    for (mode, route), rounds in pairs.items():
        rate = [d.result.rate / p.result.rate for p, d in rounds if p.result.rate]
        cost = [
            p.replica_cpu_per_request / d.replica_cpu_per_request
            for p, d in rounds
            if d.replica_cpu_per_request
        ]
        saturated = all(m.replica_cpu >= SATURATED for pair in rounds for m in pair)
        if rate and cost:
            found.append(
                Ratio(
                    mode,
                    route,
                    rate=statistics.median(rate),
                    cpu=statistics.median(cost),
                    target=targets.get(mode),
                    saturated=saturated,
                )
            )
    return found


def warnings(measurements: Sequence[Measurement], layout: Layout) -> list[str]:
    found = []
    for m in measurements:
        what = f"{m.mode} {m.route} {m.path} round {m.round}"
        if m.result.bad_status or m.result.socket_errors:
            found.append(
                f"{what}: {m.result.bad_status} answers were not 2xx and "
                f"{m.result.socket_errors} sockets failed: the rate counts failures"
            )
        beside = m.rest_cpu if layout.rest == layout.generator else 0.0
        generator_busy = m.result.cpu_share + beside
        if m.replica_cpu >= SATURATED:
            continue
        if generator_busy >= SATURATED * len(layout.generator):
            found.append(
                f"{what}: the load generator's core was the bottleneck (wrk "
                f"{m.result.cpu_share:.0%}, nginx+redis {beside:.0%}) while the replica used "
                f"{m.replica_cpu:.0%} of its core: this rate understates the replica"
            )
        elif m.neighbours_cpu > 1 - SATURATED:
            found.append(
                f"{what}: other processes on this machine took {m.neighbours_cpu:.0%} of the "
                f"replica's core (it got {m.replica_cpu:.0%}): the CPU ratio is the one to trust"
            )
        else:
            found.append(
                f"{what}: the replica used only {m.replica_cpu:.0%} of its core: it was not "
                "saturated (too few connections?)"
            )
    return found


def summary(
    measurements: Sequence[Measurement], layout: Layout, targets: Mapping[str, float | None]
) -> str:
    lines = [
        "",
        "dashboard/ping, median of the rounds (rate: measured; CPU: per request, the rate of a",
        "replica with its core to itself):",
    ]
    for ratio in ratios(measurements, targets):
        verdict = ""
        if ratio.target is not None:
            basis = "rate" if ratio.saturated else "CPU, the replica was not always saturated"
            outcome = "met" if ratio.met else "MISSED"
            verdict = f"  target >= {ratio.target:.2f}: {outcome} (judged on {basis})"
        lines.append(
            f"  {ratio.mode:<15} {ratio.route:<8} rate {ratio.rate:.2f}  CPU {ratio.cpu:.2f}"
            + verdict
        )
    found = warnings(measurements, layout)
    if found:
        lines += ["", "warnings:"] + [f"  - {warning}" for warning in found]
    return "\n".join(lines)
