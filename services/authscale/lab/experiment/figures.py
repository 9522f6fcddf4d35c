"""The scaling experiment's figures: rate, p95 and CPU per request against replicas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from authscale.lab.experiment.capacity import Costs, predict
from authscale.lab.experiment.cells import COMPONENTS, CellResult
from authscale.lab.plots import pyplot, save

COLOURS = {
    "session": "#1f77b4",
    "token": "#ff7f0e",
    "token-denylist": "#2ca02c",
    "issuer": "#9467bd",
    "redis": "#d62728",
    "gateway": "#8c564b",
    "locust": "#7f7f7f",
}


def write_all(out: Path, results: Sequence[CellResult], costs: Mapping[str, Costs]) -> list[Path]:
    return [
        rate_vs_replicas(out / "rps_vs_replicas.png", results, costs),
        p95_vs_replicas(out / "p95_vs_replicas.png", results),
        cpu_per_request(out / "cpu_per_request.png", results),
    ]


def _by_variant(results: Sequence[CellResult]) -> dict[str, list[CellResult]]:
    grouped: dict[str, list[CellResult]] = {}
    for result in results:
        grouped.setdefault(result.series, []).append(result)
    return {name: sorted(cells, key=lambda c: c.replicas) for name, cells in grouped.items()}


def rate_vs_replicas(path: Path, results: Sequence[CellResult], costs: Mapping[str, Costs]) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for variant, cells in _by_variant(results).items():
        counts = [c.replicas for c in cells]
        colour = COLOURS.get(variant)
        axes.plot(counts, [c.rate for c in cells], "o-", color=colour, label=f"{variant} measured")
        if variant in costs:
            replica_only = [n / costs[variant].replica for n in counts if costs[variant].replica]
            if len(replica_only) == len(counts):
                axes.plot(
                    counts,
                    replica_only,
                    ":",
                    color=colour,
                    label=f"{variant}: replicas alone (model)",
                )
            predicted = [
                predict(
                    costs[variant], c.replicas, c.cores - c.cpu_seconds.get("others", 0) / c.seconds
                ).rate
                for c in cells
            ]
            axes.plot(
                counts,
                predicted,
                "x--",
                color=colour,
                alpha=0.6,
                label=f"{variant} model, this machine",
            )
    axes.set_xlabel("replicas")
    axes.set_ylabel("requests/s")
    axes.set_title("Throughput vs replicas (load generator on the same machine)")
    axes.set_xticks(sorted({r.replicas for r in results}))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    return save(figure, path)


def p95_vs_replicas(path: Path, results: Sequence[CellResult]) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for variant, cells in _by_variant(results).items():
        axes.plot(
            [c.replicas for c in cells],
            [c.p95_ms for c in cells],
            "o-",
            color=COLOURS.get(variant),
            label=variant,
        )
    axes.set_xlabel("replicas")
    axes.set_ylabel("p95 latency (ms)")
    axes.set_title("p95 latency vs replicas (fixed number of users, no think time)")
    axes.set_xticks(sorted({r.replicas for r in results}))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return save(figure, path)


def cpu_per_request(path: Path, results: Sequence[CellResult]) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(max(7, 0.8 * len(results) + 2), 4.8), dpi=120)
    labels = [f"{r.series}\nx{r.replicas}" for r in results]
    bottoms = [0.0] * len(results)
    for component in COMPONENTS:
        heights = [r.cpu_per_request(component) * 1e6 for r in results]
        if not any(heights):
            continue
        colour = COLOURS.get(component) if component not in ("session", "token") else "#4c72b0"
        name = "replicas" if component in ("session", "token") else component
        axes.bar(labels, heights, bottom=bottoms, color=colour, label=name, width=0.6)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    handles, names = axes.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), fontsize=8)
    axes.set_ylabel("CPU µs per request")
    axes.set_title("CPU per request by component")
    axes.tick_params(axis="x", labelsize=7)
    axes.grid(axis="y", alpha=0.3)
    return save(figure, path)
