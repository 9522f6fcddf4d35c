"""The state-growth report: bytes per signed-in user, and the lookup's latency by store size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from authscale.lab.experiment.growth_results import (
    LATENCY_DRIFT_TARGET,
    SESSION_BYTES_TARGET,
    GrowthConfig,
    SizeResult,
)
from authscale.lab.measure import machine
from authscale.lab.plots import pyplot, save


def deployment(shards: int) -> str:
    return "one Redis" if shards == 0 else f"Redis Cluster, {shards} masters"


def targets(results: Sequence[SizeResult]) -> list[tuple[str, str, bool]]:
    """(target, observed, met) per deployment: bytes per session, and the p50's drift."""
    rows = []
    for shards in sorted({r.shards for r in results}):
        cells = sorted((r for r in results if r.shards == shards), key=lambda r: r.size)
        largest = cells[-1]
        rows.append(
            (
                f"{deployment(shards)}: a session with its index entry <= {SESSION_BYTES_TARGET} B",
                f"{largest.bytes_per_extra_session:,.0f} B at {largest.size:,} users",
                largest.bytes_per_extra_session <= SESSION_BYTES_TARGET,
            )
        )
        if len(cells) > 1:
            # The ratio, not the p50: both routes are measured side by side, so a change of the
            # machine's speed between sizes (other tenants, the fill) cancels out of it.
            drift = largest.ratio / cells[0].ratio - 1
            rows.append(
                (
                    f"{deployment(shards)}: the lookup's cost within "
                    f"{LATENCY_DRIFT_TARGET:.0%} from {cells[0].size:,} to {largest.size:,} users "
                    "(dashboard/ping ratio)",
                    f"{cells[0].ratio:.2f} -> {largest.ratio:.2f} ({drift:+.1%}); p50 "
                    f"{cells[0].dashboard.p50_ms:.2f} -> {largest.dashboard.p50_ms:.2f} ms",
                    abs(drift) <= LATENCY_DRIFT_TARGET,
                )
            )
    return rows


def write_report(out: Path, config: GrowthConfig, results: Sequence[SizeResult]) -> Path:
    lines = [
        "# State growth: Redis memory per signed-in user, and the session lookup by store size",
        "",
        f"Command: `{config.command}`  ",
        "",
        "Each signed-in user holds one session (session variant) or one refresh family (token "
        "variant), written by the product's own scripts: *per user* is that session or family "
        "with the user's index of them (what a signed-in user costs); *one more* is a second "
        "session or family of up to 1,000 of those users: its key and what its index grew by, "
        "summed from `MEMORY USAGE` (exact, where a delta of `used_memory` this small would "
        "be swamped by the main dictionary's rehashing). Per user: `used_memory` deltas "
        "(`INFO memory`, summed over the masters; a replica holds a copy of its master's). "
        f"Latency: {config.requests:,} requests per route and size through the gateway, "
        f"{config.concurrency} at a time, in {config.rounds} alternating rounds of dashboard "
        "and ping; the ratio is dashboard over ping throughput, measured side by side.",
        "",
        "| deployment | users | session B per user / one more | family B per user / one more "
        "| dashboard p50 / p99 ms | ping p50 / p99 ms | dashboard/ping | keys per master |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        lines.append(
            f"| {deployment(r.shards)} | {r.size:,} | {r.bytes_per_session:,.0f} / "
            f"{r.bytes_per_extra_session:,.0f} | {r.bytes_per_family:,.0f} / "
            f"{r.bytes_per_extra_family:,.0f} | "
            f"{r.dashboard.p50_ms:.2f} / {r.dashboard.p99_ms:.2f} | "
            f"{r.ping.p50_ms:.2f} / {r.ping.p99_ms:.2f} | {r.ratio:.2f} | "
            f"{', '.join(f'{n:,}' for n in r.keys_per_master)} |"
        )
    lines += ["", "| target | observed | met |", "| --- | --- | --- |"]
    lines += [f"| {t} | {o} | {'yes' if met else 'no'} |" for t, o, met in targets(results)]
    figure = _figure(out / "state_growth.png", results)
    lines += ["", f"![dashboard p50 and bytes per user by store size]({figure.name})", ""]
    lines += ["## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine.describe().items()]
    lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _figure(path: Path, results: Sequence[SizeResult]) -> Path:
    plt = pyplot()
    figure, (latency, memory) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for shards in sorted({r.shards for r in results}):
        cells = sorted((r for r in results if r.shards == shards), key=lambda r: r.size)
        sizes = [r.size for r in cells]
        label = deployment(shards)
        latency.plot(sizes, [r.dashboard.p50_ms for r in cells], "o-", label=f"{label} p50")
        latency.plot(sizes, [r.dashboard.p99_ms for r in cells], "x--", label=f"{label} p99")
        memory.plot(sizes, [r.bytes_per_session for r in cells], "o-", label=f"{label} session")
        memory.plot(sizes, [r.bytes_per_family for r in cells], "s--", label=f"{label} family")
        memory.plot(
            sizes,
            [r.bytes_per_extra_session for r in cells],
            "^:",
            label=f"{label} one more session",
        )
    latency.set(xscale="log", xlabel="signed-in users", ylabel="dashboard ms", ylim=(0, None))
    memory.set(xscale="log", xlabel="signed-in users", ylabel="bytes per user", ylim=(0, None))
    latency.legend(fontsize=7)
    memory.legend(fontsize=7)
    return save(figure, path)
