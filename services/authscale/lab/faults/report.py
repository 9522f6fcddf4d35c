"""The fault experiment's results folder: per scenario a timeline plot and a table of targets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from authscale.lab import plots
from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.timeline import Timeline, describe
from authscale.lab.measure import machine

#: One panel per variant in every timeline plot.
PANELS = (("session", "session "), ("token", "token "))
FAILURE_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


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
        f"fault {config.fault_at:g} s in. "
        "Failures are Locust's: an answer other than the one the contract promises.",
        "",
        "| scenario | targets met |",
        "|---|---|",
    ]
    lines += [
        f"| [{r.title}](#{r.name}) | {'all' if r.met else 'NOT all'} "
        f"({sum(c.met for c in r.checks)}/{len(r.checks)}) |"
        for r in results
    ]
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
    plt = plots.pyplot()
    timeline = result.timeline
    assert timeline is not None
    figure, panels = plt.subplots(len(PANELS), 1, figsize=(8, 5.5), dpi=110, sharex=True)
    start = timeline.first_second
    for axes, (variant, prefix) in zip(panels, PANELS, strict=True):
        seconds, answers, failures = timeline.per_second(prefix)
        # Steps: each count belongs to the whole second in which its requests started.
        axes.step(seconds, answers, where="post", color="#1f77b4", label="answers/s")
        for (status, counts), colour in zip(failures.items(), FAILURE_COLOURS, strict=False):
            label = "connection error" if status == 0 else f"failed {status}"
            axes.step(seconds, counts, where="post", color=colour, label=label)
        for at, label in result.marks:
            if label in ("load starts", "load ends"):
                continue
            axes.axvline(at - start, color="#d62728", linestyle="--", alpha=0.7)
            axes.annotate(label, (at - start, 0), rotation=90, fontsize=7, va="bottom", ha="right")
        axes.set_ylabel(f"{variant}: per second")
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="upper right")
    panels[-1].set_xlabel("seconds since the first answer")
    panels[0].set_title(result.title)
    return plots.save(figure, path)
