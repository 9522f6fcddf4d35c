"""What ``authscale bench`` prints: a row per measurement, the ratios, and what to distrust."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from authscale.lab.bench.measurement import Layout, Measurement

#: A replica using less of its core than this was not saturated: its rate says little.
SATURATED = 0.85

HEADER = (
    f"{'server':<16} {'mode':<15} {'route':<8} {'path':<19} {'#':>2} {'req/s':>7} {'p50 ms':>7} "
    f"{'p95 ms':>7} {'p99 ms':>7} {'µs CPU':>7} {'replica':>7} {'wrk':>5} {'nginx+redis':>11} "
    f"{'others':>6}"
)


def format_row(m: Measurement) -> str:
    r = m.result
    return (
        f"{m.server:<16} {m.mode:<15} {m.route:<8} {m.path:<19} {m.round:>2} {r.rate:>7.0f} "
        f"{r.p50_ms:>7.2f} {r.p95_ms:>7.2f} {r.p99_ms:>7.2f} "
        f"{m.replica_cpu_per_request * 1e6:>7.0f} {m.replica_cpu:>7.0%} {r.cpu_share:>5.0%} "
        f"{m.rest_cpu:>11.0%} {m.neighbours_cpu:>6.0%}"
    )


@dataclass(frozen=True)
class Ratio:
    server: str
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
    pairs: dict[tuple[str, str, str], list[tuple[Measurement, Measurement]]] = {}
    ping: dict[tuple[str, str, str, int], Measurement] = {}
    for m in measurements:
        key = (m.server, m.mode, m.route)
        if m.path.endswith("/ping"):
            ping[(*key, m.round)] = m
        elif (*key, m.round) in ping:
            pairs.setdefault(key, []).append((ping[(*key, m.round)], m))
    found = []
    for (server, mode, route), rounds in pairs.items():
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
                    server,
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
        what = f"{m.server} {m.mode} {m.route} {m.path} round {m.round}"
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
            f"  {ratio.server:<16} {ratio.mode:<15} {ratio.route:<8} "
            f"rate {ratio.rate:.2f}  CPU {ratio.cpu:.2f}" + verdict
        )
    if len({m.server for m in measurements}) > 1:
        lines += servers_side_by_side(measurements)
    found = warnings(measurements, layout)
    if found:
        lines += ["", "warnings:"] + [f"  - {warning}" for warning in found]
    return "\n".join(lines)


@dataclass(frozen=True)
class ServerFigures:
    """One server's medians over the rounds for one mode and route."""

    server: str
    mode: str
    route: str
    ping_rate: float
    dashboard_rate: float
    #: CPU seconds per dashboard request: replicas needed scale with it.
    dashboard_cpu: float


def server_figures(measurements: Sequence[Measurement]) -> list[ServerFigures]:
    groups: dict[tuple[str, str, str], dict[str, list[Measurement]]] = {}
    for m in measurements:
        page = "ping" if m.path.endswith("/ping") else "dashboard"
        groups.setdefault((m.server, m.mode, m.route), {}).setdefault(page, []).append(m)
    found = []
    for (server, mode, route), pages in groups.items():
        if not pages.get("ping") or not pages.get("dashboard"):
            continue
        found.append(
            ServerFigures(
                server,
                mode,
                route,
                ping_rate=statistics.median(m.result.rate for m in pages["ping"]),
                dashboard_rate=statistics.median(m.result.rate for m in pages["dashboard"]),
                dashboard_cpu=statistics.median(
                    m.replica_cpu_per_request for m in pages["dashboard"]
                ),
            )
        )
    return found


def servers_side_by_side(measurements: Sequence[Measurement]) -> list[str]:
    """Each server against the first one measured (Hypercorn, by default): rates per process,
    and the replicas a load needs, which scale with the CPU each dashboard request costs."""
    figures = server_figures(measurements)
    if not figures:
        return []
    baseline = figures[0].server
    lines = [
        "",
        f"servers side by side (medians; x{baseline}: the dashboard rate per process against "
        f"{baseline}'s,",
        "measured and from CPU per request; replicas: what a load needing 10 replicas on "
        f"{baseline} needs):",
    ]
    base = {(f.mode, f.route): f for f in figures if f.server == baseline}
    for f in figures:
        reference = base.get((f.mode, f.route))
        if reference is None:
            continue
        by_rate = f.dashboard_rate / reference.dashboard_rate if reference.dashboard_rate else 0
        by_cpu = reference.dashboard_cpu / f.dashboard_cpu if f.dashboard_cpu else 0
        replicas = 10 * f.dashboard_cpu / reference.dashboard_cpu if reference.dashboard_cpu else 0
        lines.append(
            f"  {f.server:<16} {f.mode:<15} {f.route:<8} ping {f.ping_rate:>6.0f}  dashboard "
            f"{f.dashboard_rate:>6.0f} req/s  {f.dashboard_cpu * 1e6:>4.0f} µs CPU  "
            f"x{baseline} {by_rate:.2f} (CPU {by_cpu:.2f})  replicas {replicas:.1f}"
        )
    return lines
