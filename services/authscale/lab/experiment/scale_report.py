"""The report of a budgeted run: calibration, scaling efficiency, budget shares, the model beside
the measurement, and the headline plot (measured req/s against replicas, model dashed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment import scale_model
from authscale.lab.experiment.calibration import Calibration
from authscale.lab.experiment.cells import FULL_BUDGET, IDLE_FLOOR, CellResult

GROUPS = ("replicas", "redis", "gateway", "issuer")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def sections(
    results: Sequence[CellResult],
    budgets: CpuBudgets,
    calibration: Calibration | None,
    costs: Mapping[str, scale_model.ScaleCosts],
    checks: Sequence[scale_model.Check],
) -> list[str]:
    lines = ["", "## Budgets and calibration", "", f"Budgets: {budgets.describe()}.", ""]
    if calibration is not None:
        lines += [f"Calibration: {calibration.describe()}.", ""]
        if not calibration.steady:
            lines += [
                f"**The two calibrations differ by {calibration.spread:.0%}, more than "
                "10 %: the machine's CPU speed moved during the run; compare its cells with "
                "care.**",
                "",
            ]
    lines += _cells_section(results, calibration)
    lines += _model_section(costs, checks, calibration)
    return lines


def _cells_section(results: Sequence[CellResult], calibration: Calibration | None) -> list[str]:
    efficiency = scale_model.efficiency(results)
    at_one_pace = scale_model.efficiency(results, at_one_pace=True)
    lines = [
        "## Cells",
        "",
        "Efficiency: the rate at n replicas over n times the rate at the series' fewest. "
        f"Shares: CPU used over the window against the budget (replicas: their mean; redis: the "
        f"busiest node). Bound: the fullest budget when it is at least {FULL_BUDGET:.0%} used; "
        f"otherwise `machine` when under {IDLE_FLOOR:.0%} of the machine was idle, else `load "
        "generator`; and `logins in window` when users were still logging in after the warm-up. "
        "Such cells are marked (*) and left out of the model's fit. Pace: the CPU time of the "
        "fixed unit of work run beside the load (higher: a slower machine); efficiency at one "
        "pace takes each cell's rate to one pace first (rate x pace), so that the host's moves "
        "between two cells do not read as scaling.",
        "",
    ]
    header = ["series", "replicas", "req/s", "vs reference", "efficiency", "at one pace"]
    header += [f"{group} share" for group in GROUPS]
    header += ["machine idle", "pace ms/unit", "p95 ms", "failed", "bound"]
    rows = []
    for result in results:
        shares = result.budget_shares()
        relative = f"{result.rate / calibration.rate:.2f}x" if calibration else "-"
        rows.append(
            [
                result.series,
                result.replicas,
                f"{result.rate:,.0f}",
                relative,
                f"{efficiency.get((result.series, result.replicas), 0):.2f}",
                _two_places(at_one_pace.get((result.series, result.replicas))),
                *(f"{shares[group]:.0%}" if group in shares else "-" for group in GROUPS),
                f"{result.idle_share:.0%}",
                f"{result.pace * 1e3:.2f}" if result.pace else "-",
                f"{result.p95_ms:g}",
                f"{result.failures} / {result.requests:,}",
                result.bound + ("" if result.budget_bound else " *"),
            ]
        )
    return lines + table(header, rows) + [""]


def _two_places(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _model_section(
    costs: Mapping[str, scale_model.ScaleCosts],
    checks: Sequence[scale_model.Check],
    calibration: Calibration | None,
) -> list[str]:
    lines = ["## The model", "", (scale_model.__doc__ or "").strip(), ""]
    reference = calibration.cpu_per_request if calibration else 0.0
    rows = []
    for cost in costs.values():
        cells = []
        for group, seconds in cost.as_dict().items():
            relative = f" ({seconds / reference:.2f} pings)" if reference else ""
            cells.append(f"{seconds * 1e6:,.0f}{relative}" if group else "")
        never = sorted(set(GROUPS) - cost.limits)
        shared = f"{cost.redis_shared * 1e6:,.0f}"
        fewest, most = cost.redis_users
        users = f"{fewest}" if fewest == most else f"{fewest}-{most}"
        rows.append([cost.series, cost.cells, *cells, shared, users, ", ".join(never) or "-"])
    median_pace = next((cost.pace for cost in costs.values() if cost.pace), None)
    pace = f" at the run's median pace, {median_pace * 1e3:.2f} ms per unit" if median_pace else ""
    lines += [
        f"CPU µs per request by group{pace} (in pings of the reference); Redis's is "
        "`redis + redis shared / users`, with users held to the counts it was fitted on:",
        "",
    ]
    lines += table(
        [
            "series",
            "cells fitted",
            *GROUPS,
            "redis shared (µs x users)",
            "redis fitted on users",
            "never full: no ceiling",
        ],
        rows,
    )
    lines += ["", "The model against every cell:", ""]
    lines += table(
        ["series", "replicas", "measured req/s", "model req/s", "error", "model: bound by"],
        [
            [
                c.series,
                c.replicas,
                f"{c.measured:,.0f}",
                f"{c.predicted:,.0f}",
                f"{c.error:+.0%}" + (" *" if c.marked else ""),
                c.model_bound,
            ]
            for c in checks
        ],
    )
    worst = scale_model.largest_error(checks)
    if worst is not None:
        lines += ["", f"Largest error over the unmarked cells: {worst:.1%}.", ""]
    return lines


def rate_plot(
    path: Path,
    results: Sequence[CellResult],
    costs: Mapping[str, scale_model.ScaleCosts],
    budgets: CpuBudgets,
) -> Path:
    """Measured req/s against replicas per series (marked cells hollow), the model dashed."""
    from authscale.lab import plots

    pyplot = plots.pyplot()
    figure, axes = pyplot.subplots(figsize=(8, 5))
    by_series: dict[str, list[CellResult]] = {}
    for result in results:
        by_series.setdefault(result.series, []).append(result)
    for index, (series, cells) in enumerate(by_series.items()):
        colour = f"C{index}"
        cells.sort(key=lambda cell: cell.replicas)
        counts = [cell.replicas for cell in cells]
        axes.plot(counts, [cell.rate for cell in cells], "-", color=colour, label=series)
        for cell in cells:
            axes.plot(
                cell.replicas,
                cell.rate,
                "o",
                color=colour,
                markerfacecolor=colour if cell.budget_bound else "none",
            )
        cost = costs.get(series)
        if cost is not None:
            modelled = [
                scale_model.predict(cost, budgets, cell.replicas, cell.users, cell.pace).rate
                for cell in cells
            ]
            axes.plot(counts, modelled, "--", color=colour, alpha=0.6)
    axes.set_xlabel("replicas")
    axes.set_ylabel("req/s (measured: solid; model: dashed; hollow: marked)")
    axes.set_xticks(sorted({r.replicas for r in results}))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title("Throughput against replicas, every component under its CPU budget")
    return plots.save(figure, path)
