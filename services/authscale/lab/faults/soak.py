"""Soak: constant load for a long while, resident memory of every process sampled.

A leak shows as memory that keeps growing after the caches have filled, so growth is measured
from the end of a warm-up (a fifth of the soak, at least the fault delay) to the last sample.
Locally, each process's RSS includes its children (nginx's worker under its master); on compose,
each container's resident anonymous memory comes from its control group (page cache left out).
"""

from __future__ import annotations

import time
from pathlib import Path

from authscale.lab import plots
from authscale.lab.faults.checks import Check, ScenarioResult
from authscale.lab.faults.runner import FaultRun
from authscale.lab.faults.timeline import Timeline, describe

SAMPLE_EVERY = 2.0
MEASURE = {
    "local": "RSS per process (its children included)",
    "compose": "Resident anonymous memory per container (its control group's)",
}
#: Growth after warm-up that counts as a leak.
LIMIT = 0.10


def soak(run: FaultRun) -> ScenarioResult:
    config = run.config
    result = ScenarioResult("soak", f"Soak: {config.soak:g} s of constant load, memory sampled")
    samples: list[tuple[float, dict[str, int]]] = []
    began = time.monotonic()

    def sample_until_the_end() -> None:
        run.mark("sampling")
        deadline = began + config.soak - SAMPLE_EVERY
        for _ in range(100_000):  # bounded in count as well as in time
            samples.append((time.monotonic() - began, run.stack.memory()))
            if time.monotonic() >= deadline:
                break
            time.sleep(SAMPLE_EVERY)

    result.timeline = run.under_load(sample_until_the_end, seconds=config.soak)
    warm = max(config.soak / 5, config.fault_at)
    start = next((s for s in samples if s[0] >= warm), samples[-1] if samples else None)
    end = samples[-1] if samples else None
    growth = {}
    if start is not None and end is not None:
        for name, first in start[1].items():
            if first:
                growth[name] = (end[1].get(name, 0) - first) / first
    everything = result.timeline.select()
    worst = max(growth.items(), key=lambda item: item[1], default=("-", 0.0))
    result.checks = [
        Check(
            f"memory growth after warm-up under {LIMIT:.0%} for every process",
            f"largest: {worst[0]} {worst[1]:+.1%}",
            bool(growth) and worst[1] < LIMIT,
            measured=True,
        ),
        Check(
            "0 failures",
            f"{Timeline.failed(everything)} of {Timeline.total(everything):,} failed "
            f"({describe(Timeline.by_status(everything, failed_only=True))})",
            Timeline.failed(everything) == 0,
        ),
    ]
    if start is not None and end is not None:
        result.notes.append(
            f"{MEASURE[run.stack.backend]} from {start[0]:.0f} s (end of warm-up) to "
            f"{end[0]:.0f} s:"
        )
        result.notes += [
            f"- {name}: {start[1][name] / 2**20:.1f} MiB -> {end[1].get(name, 0) / 2**20:.1f} MiB "
            f"({growth.get(name, 0.0):+.1%})"
            for name in sorted(start[1])
        ]
        result.notes.append("")
        result.notes.append(
            f"![resident memory over time]({rss_plot(run.out, samples, warm).name})"
        )
    return result


def rss_plot(out: Path, samples: list[tuple[float, dict[str, int]]], warm: float) -> Path:
    plt = plots.pyplot()
    path = out / "soak-rss.png"
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    names = sorted({name for _, by_name in samples for name in by_name})
    for name in names:
        axes.plot(
            [at for at, _ in samples],
            [by_name.get(name, 0) / 2**20 for _, by_name in samples],
            label=name,
        )
    axes.axvline(warm, color="#d62728", linestyle="--", alpha=0.7)
    axes.annotate("end of warm-up", (warm, 0), rotation=90, fontsize=7, va="bottom", ha="right")
    axes.set_xlabel("seconds since the load started")
    axes.set_ylabel("resident memory (MiB)")
    axes.set_title("Soak: resident memory per process")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    return plots.save(figure, path)
