"""The fault experiment's results folder: per scenario a timeline plot and a table of targets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from authscale.lab import plots
from authscale.lab.faults import redis_comparison
from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.latency import PERCENTILES, LatencyHistory
from authscale.lab.faults.timeline import Timeline, describe
from authscale.lab.measure import machine

#: One panel per variant in every timeline plot.
PANELS = (("session", "session "), ("token", "token "))
FAILURE_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
#: p50, p95, p99; none of them red, the colour of the fault's marks.
LATENCY_COLOURS = ("#2ca02c", "#1f77b4", "#9467bd")


STACKS = {
    "local": "a fresh local stack (session x2, token x2, issuer x2, Redis, nginx on loopback)",
    "compose": (
        "a fresh compose project (session x2, token x2, issuer x2, Redis, nginx, a container "
        "each, the gateway published on 127.0.0.1; the abuse scenario runs on the local stack, "
        "see its notes)"
    ),
}


def write(out: Path, results: Sequence[ScenarioResult], config: FaultConfig) -> Path:
    figures = {}
    for result in results:
        if result.timeline is not None and result.timeline.rows:
            figures[result.name] = timeline_plot(out / f"{result.name}.png", result)
    (out / "summary.json").write_text(
        json.dumps(
            {
                "command": config.command,
                "backend": config.backend,
                "server": config.server,
                "cpu_budgets": budgets(config),
                "environment": machine.describe(),
                "scenarios": [
                    {
                        "name": r.name,
                        "title": r.title,
                        "backend": r.backend,
                        "met": r.met,
                        "checks": [c.__dict__ for c in r.checks],
                        "marks": [{"at": at, "label": label} for at, label in r.marks],
                        "notes": r.notes,
                        "figures": r.figures,
                    }
                    for r in results
                ],
            },
            indent=2,
        )
    )
    path = out / "report.md"
    path.write_text(markdown(results, config, figures))
    return path


def markdown(
    results: Sequence[ScenarioResult], config: FaultConfig, figures: dict[str, Path]
) -> str:
    lines = [
        "# Fault and abuse experiments",
        "",
        f"Reproduce with `{config.command}`.",
        "",
        f"Each scenario: {STACKS[config.backend]}, every replica on {config.server}, "
        f"{config.users} Locust users reading the "
        f"dashboard of both variants without think time ({config.seconds:g} s of load), the "
        f"fault {config.fault_at:g} s in (replica loss: later if the users' logins still run "
        "then; its marks say when). "
        "Failures are Locust's: an answer other than the one the contract promises.",
        "",
        f"CPU budgets: {budgets(config)}.",
        "",
        "| scenario | targets met |",
        "|---|---|",
    ]
    lines += [
        f"| [{r.title}](#{r.name}) | {'all' if r.met else 'NOT all'} "
        f"({sum(c.met for c in r.checks)}/{len(r.checks)}) |"
        for r in results
    ]
    lines += redis_comparison.table(results)
    for result in results:
        lines += ["", f'<a id="{result.name}"></a>', f"## {result.title}", ""]
        lines += ["| target | observed | met |", "|---|---|---|"]
        lines += [
            f"| {c.target}{' (measured)' if c.measured else ''} | {c.observed} | "
            f"{'yes' if c.met else '**no**'} |"
            for c in result.checks
        ]
        if result.timeline is not None:
            lines += ["", *failures_table(result)]
        if result.marks:
            start = result.marks[0][0]
            lines += [
                "",
                "Marks: " + "; ".join(f"{at - start:+.1f} s {lb}" for at, lb in result.marks),
            ]
        lines += ["", *result.notes] if result.notes else []
        if result.name in figures:
            lines += ["", f"![{result.title}]({figures[result.name].name})"]
    lines += ["", "## Environment", ""]
    lines += [f"- {key}: {value}" for key, value in machine.describe().items()]
    return "\n".join(lines) + "\n"


def budgets(config: FaultConfig) -> str:
    if config.cpu_budgets is None:
        return "none (every process shares the machine's cores)"
    return f"{config.cpu_budgets.describe()}; the load generator runs outside them"


def failures_table(result: ScenarioResult) -> list[str]:
    timeline = result.timeline
    assert timeline is not None
    names = sorted({row.name for row in timeline.rows})
    lines = ["| request | answers | failed | failed by status |", "|---|---|---|---|"]
    for name in names:
        rows = timeline.select(names=[name])
        lines.append(
            f"| {name} | {Timeline.total(rows):,} | {Timeline.failed(rows):,} | "
            f"{describe(Timeline.by_status(rows, failed_only=True))} |"
        )
    return lines


def timeline_plot(path: Path, result: ScenarioResult) -> Path:
    """Per variant, answers and failures per second (left) beside latency per second (right)."""
    plt = plots.pyplot()
    timeline = result.timeline
    assert timeline is not None
    figure, grid = plt.subplots(
        len(PANELS), 2, figsize=(13, 5.5), dpi=110, sharex=True, squeeze=False
    )
    start = timeline.first_second
    for (answers_axes, latency_axes), (variant, prefix) in zip(grid, PANELS, strict=True):
        seconds, answers, failures = timeline.per_second(prefix)
        # Steps: each count belongs to the whole second in which its requests started.
        answers_axes.step(seconds, answers, where="post", color="#1f77b4", label="answers/s")
        for (status, counts), colour in zip(failures.items(), FAILURE_COLOURS, strict=False):
            label = "connection error" if status == 0 else f"failed {status}"
            answers_axes.step(seconds, counts, where="post", color=colour, label=label)
        answers_axes.set_ylabel(f"{variant}: per second")
        answers_axes.set_ylim(bottom=0)
        latency_plot(latency_axes, timeline.latency, prefix, start)
        latency_axes.set_ylabel(f"{variant}: response time (ms)")
        for axes in (answers_axes, latency_axes):
            mark_faults(axes, result, start)
            axes.grid(alpha=0.3)
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize=7, loc="upper right")
    for axes in grid[-1]:
        axes.set_xlabel("seconds since the first answer")
    grid[0][0].set_title(result.title)
    grid[0][1].set_title("response time: Locust's percentiles over its last 10 s")
    return plots.save(figure, path)


def latency_plot(axes: Any, latency: LatencyHistory | None, prefix: str, start: int) -> None:
    series = latency.series(prefix, start) if latency is not None else None
    if series is None:
        axes.text(0.5, 0.5, "no latency history in this run", ha="center", transform=axes.transAxes)
        return
    for column, colour in zip(PERCENTILES, LATENCY_COLOURS, strict=True):
        label = f"{series.name} p{column.rstrip('%')}"
        axes.plot(series.seconds, series.milliseconds[column], color=colour, label=label)
    # From sub-millisecond reads to multi-second stalls in one panel, labelled 2, 50, 900 ms.
    axes.set_yscale("log")
    from matplotlib.ticker import StrMethodFormatter  # with pyplot: only when drawing

    for formatter in (axes.yaxis.set_major_formatter, axes.yaxis.set_minor_formatter):
        formatter(StrMethodFormatter("{x:g}"))


def mark_faults(axes: Any, result: ScenarioResult, start: int) -> None:
    for at, label in result.marks:
        if label in ("load starts", "load ends"):
            continue
        axes.axvline(at - start, color="#d62728", linestyle="--", alpha=0.7)
        axes.annotate(
            label, (at - start, 0), xycoords=("data", "axes fraction"), rotation=90,
            fontsize=7, va="bottom", ha="right",
        )  # fmt: skip
