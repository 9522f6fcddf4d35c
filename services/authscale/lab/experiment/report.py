"""The results folder of an experiment: summary CSV and JSON, a Markdown report, and plots."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment import capacity, scale_model, scale_report, server_table
from authscale.lab.experiment.calibration import Calibration
from authscale.lab.experiment.cells import COMPONENTS, CellResult
from authscale.lab.measure import machine

#: Rates the report sizes a deployment for.
PLANNED_RATES = (1_000, 10_000, 50_000)


def write(
    out: Path,
    results: Sequence[CellResult],
    settings: Mapping[str, str],
    command: str,
    *,
    plots: bool = True,
    budgets: CpuBudgets | None = None,
    calibration: Calibration | None = None,
    environment: Mapping[str, str] | None = None,
) -> Path:
    """Write the folder; ``environment`` is the machine's (:func:`machine.describe`) unless an
    earlier run's is given."""
    out.mkdir(parents=True, exist_ok=True)
    costs = capacity.fit(results)
    checks = capacity.check(results, costs)
    scale_costs = scale_model.fit(results) if budgets else {}
    scale_checks = scale_model.check(results, scale_costs, budgets) if budgets else []
    environment = dict(environment) if environment is not None else machine.describe()
    rows = [summary_row(result) for result in results]
    _write_csv(out / "summary.csv", rows)
    (out / "summary.json").write_text(
        json.dumps(
            {
                "command": command,
                "settings": dict(settings),
                "environment": environment,
                "cells": rows,
                "costs": {name: _costs_dict(c) for name, c in costs.items()},
                "model_check": [{**check.__dict__, "error": check.error} for check in checks],
                "budgets": budgets.describe() if budgets else None,
                "calibration": _calibration_dict(calibration),
                "scale_costs_us_per_request": {
                    name: {group: round(v * 1e6, 1) for group, v in c.as_dict().items()}
                    for name, c in scale_costs.items()
                },
                "scale_model_check": [
                    {**check.__dict__, "error": check.error} for check in scale_checks
                ],
                "scale_model_largest_error": scale_model.largest_error(scale_checks),
            },
            indent=2,
        )
    )
    figures = []
    if plots:
        from authscale.lab.experiment import figures as drawing

        if budgets:
            figures = [
                scale_report.rate_plot(out / "rps_vs_replicas.png", results, scale_costs, budgets),
                drawing.p95_vs_replicas(out / "p95_vs_replicas.png", results),
            ]
        else:
            figures = drawing.write_all(out, results, costs)
    path = out / "report.md"
    text = markdown(results, costs, checks, settings, environment, command, figures)
    if budgets:
        # The budgeted model replaces the shared-machine one: its sections go before the plots.
        scale = scale_report.sections(results, budgets, calibration, scale_costs, scale_checks)
        head, _, tail = text.partition("\n## Capacity model")
        plots_at = tail.find("\n## Plots")
        text = head + "\n".join(scale) + ("\n" + tail[plots_at:] if plots_at >= 0 else "\n")
    path.write_text(text)
    return path


def _calibration_dict(calibration: Calibration | None) -> dict[str, object] | None:
    if calibration is None:
        return None
    at_one_pace = calibration.spread_at_one_pace
    return {
        "start_rps": round(calibration.start.rate, 1),
        "end_rps": round(calibration.end.rate, 1),
        "start_at": calibration.start.at,
        "end_at": calibration.end.at,
        "cpu_us_per_ping": round(calibration.cpu_per_request * 1e6, 1),
        # Each end's own: whether the rate moved with the CPU a ping took (the host's speed).
        "start_cpu_us_per_ping": round(calibration.start.cpu_per_request * 1e6, 1),
        "end_cpu_us_per_ping": round(calibration.end.cpu_per_request * 1e6, 1),
        "spread": round(calibration.spread, 4),
        "start_pace_ms_per_unit": _ms(calibration.start.pace),
        "end_pace_ms_per_unit": _ms(calibration.end.pace),
        "spread_at_one_pace": at_one_pace if at_one_pace is None else round(at_one_pace, 4),
        "steady": calibration.steady,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 4)


def summary_row(result: CellResult) -> dict[str, object]:
    row: dict[str, object] = {
        "variant": result.variant,
        "replicas": result.replicas,
        "users": result.users,
        "seconds": round(result.seconds, 2),
        "requests": result.requests,
        "failures": result.failures,
        "rps": round(result.rate, 1),
        "p50_ms": result.p50_ms,
        "p95_ms": result.p95_ms,
        "p99_ms": result.p99_ms,
    }
    for component in (*COMPONENTS, "others"):
        if component in ("session", "token"):
            continue
        row[f"cpu_us_per_request_{component}"] = round(result.cpu_per_request(component) * 1e6, 1)
    row["cpu_us_per_request_replicas"] = round(result.cpu_per_request(result.role) * 1e6, 1)
    row["cpu_us_per_request_total"] = round(result.cpu_per_request_total * 1e6, 1)
    row["machine_busy_share"] = (
        round(result.machine_busy_seconds / (result.cores * result.seconds), 3)
        if result.cores and result.seconds
        else 0.0
    )
    row["redis_calls_per_request"] = round(result.redis_calls_per_request, 3)
    row["redis_calls"] = " ".join(f"{k}={v}" for k, v in sorted(result.redis_calls.items()))
    row["server"] = result.server
    row["shards"] = result.shards
    row["machine_idle_share"] = round(result.idle_share, 3)
    row["pace_ms_per_unit"] = _ms(result.pace)
    for group, share in sorted(result.budget_shares().items()):
        row[f"budget_share_{group}"] = round(share, 3)
    row["bound"] = result.bound
    return row


def _write_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    with path.open("w", newline="") as file:
        # Cells differ in their budgeted groups (only token stacks have an issuer).
        names = list(dict.fromkeys(name for row in rows for name in row))
        writer = csv.DictWriter(file, fieldnames=names, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _costs_dict(costs: capacity.Costs) -> dict[str, object]:
    return {
        "role": costs.role,
        "cpu_us_per_request": {k: round(v * 1e6, 1) for k, v in costs.cpu.items()},
        "redis_calls_per_request": round(costs.redis_calls, 3),
        "redis_ceiling_rps": costs.redis_ceiling,
    }


def markdown(
    results: Sequence[CellResult],
    costs: Mapping[str, capacity.Costs],
    checks: Sequence[capacity.Check],
    settings: Mapping[str, str],
    environment: Mapping[str, str],
    command: str,
    figures: Sequence[Path],
) -> str:
    lines = [
        "# Replica-scaling experiment",
        "",
        f"Reproduce with `{command}` (or `make experiment`).",
        "",
        "## Measured cells",
        "",
    ]
    lines += scale_report.table(
        [
            "variant",
            "replicas",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "failures",
            "Redis cmds/req",
            "CPU µs/req (ours)",
            "machine busy",
        ],
        [
            [
                r.series,
                r.replicas,
                f"{r.rate:,.0f}",
                f"{r.p50_ms:g}",
                f"{r.p95_ms:g}",
                f"{r.p99_ms:g}",
                f"{r.failures} / {r.requests:,}",
                f"{r.redis_calls_per_request:.2f}",
                f"{r.cpu_per_request_total * 1e6:,.0f}",
                f"{r.machine_busy_seconds / (r.cores * r.seconds):.0%}" if r.cores else "?",
            ]
            for r in results
        ],
    )
    lines += ["", "### CPU per request by component (µs)", ""]
    shown = [
        c
        for c in ("issuer", "redis", "gateway", "locust", "others")
        if any(r.cpu_per_request(c) for r in results)
    ]
    lines += scale_report.table(
        ["variant", "replicas", "replicas' CPU", *shown],
        [
            [
                r.series,
                r.replicas,
                f"{r.cpu_per_request(r.role) * 1e6:,.0f}",
                *[f"{r.cpu_per_request(c) * 1e6:,.0f}" for c in shown],
            ]
            for r in results
        ],
    )
    lines += [
        "",
        "`others` is CPU the machine spent on processes that are not part of the experiment",
        "(other tenants of a shared machine); it is reported, and the model subtracts it from",
        "the cores, but it is not a cost of either variant.",
    ]
    lines += server_table.section(results)
    lines += _model_section(results, costs, checks)
    if figures:
        lines += ["", "## Plots", ""]
        lines += [f"![{path.stem}]({path.name})" for path in figures]
    lines += ["", "## Environment", ""]
    lines += scale_report.table(["", ""], [[k, v] for k, v in environment.items()])
    lines += ["", "## Settings", ""]
    lines += scale_report.table(["", ""], [[k, v] for k, v in settings.items()])
    return "\n".join(lines) + "\n"


def _model_section(
    results: Sequence[CellResult],
    costs: Mapping[str, capacity.Costs],
    checks: Sequence[capacity.Check],
) -> list[str]:
    lines = ["", "## Capacity model", "", capacity.__doc__.strip().split("\n\n")[0], ""]
    lines += scale_report.table(
        [
            "variant",
            "replica µs/req",
            "Redis µs/req",
            "gateway µs/req",
            "issuer µs/req",
            "Locust µs/req",
            "Redis cmds/req",
            "one replica alone, req/s",
            "Redis ceiling, req/s",
        ],
        [
            [
                c.variant,
                f"{c.replica * 1e6:,.0f}",
                f"{c.cpu.get('redis', 0) * 1e6:,.0f}",
                f"{c.cpu.get('gateway', 0) * 1e6:,.0f}",
                f"{c.cpu.get('issuer', 0) * 1e6:,.0f}",
                f"{c.cpu.get('locust', 0) * 1e6:,.0f}",
                f"{c.redis_calls:.2f}",
                f"{1 / c.replica:,.0f}" if c.replica else "-",
                f"{c.redis_ceiling:,.0f}" if c.redis_ceiling else "not on the request path",
            ]
            for c in costs.values()
        ],
    )
    lines += [
        "",
        "**The model against the measured cells** (each cell predicted from the variant's",
        "median costs and the cores other tenants left free during that cell):",
        "",
    ]
    lines += scale_report.table(
        ["variant", "replicas", "measured req/s", "model req/s", "error", "bound by"],
        [
            [
                c.variant,
                c.replicas,
                f"{c.measured:,.0f}",
                f"{c.predicted:,.0f}",
                f"{c.error:+.0%}",
                c.bound,
            ]
            for c in checks
        ],
    )
    if checks:
        worst = max(abs(c.error) for c in checks)
        lines += ["", f"Largest error: {worst:.0%}."]
    lines += [
        "",
        "**The load generator shares the machine.** Locust runs on the same cores as the stack,",
        "and its CPU per request is measured like every other component's. The model's machine",
        "term counts it, which is why the measured rate stops growing once the cores are full",
        "whatever the replica count. The sizing below leaves it out: in production the clients",
        "are elsewhere, and each replica, Redis and nginx get the cores the model gives them.",
        "",
        f"**Sizing** at {capacity.UTILISATION:.0%} utilisation per process, the load generator"
        " elsewhere. Redis runs commands on one core: more than one Redis core means as many",
        "Redis Cluster shards (sessions and token families shard by key).",
        "",
    ]
    rows = []
    for cost in costs.values():
        for rate in PLANNED_RATES:
            p = capacity.plan(cost, rate)
            rows.append(
                [
                    cost.variant,
                    f"{rate:,}",
                    p.replicas,
                    f"{p.redis_cores:.2f}",
                    f"{p.gateway_cores:.2f}",
                    f"{p.issuer_cores:.2f}",
                ]
            )
    lines += scale_report.table(
        [
            "variant",
            "target req/s",
            "replicas (1 core each)",
            "Redis cores",
            "nginx cores",
            "issuer cores",
        ],
        rows,
    )
    session, token, denylist = (costs.get(n) for n in ("session", "token", "token-denylist"))
    if session and session.redis_ceiling:
        lines += [
            "",
            f"Redis becomes the ceiling for `session` at about "
            f"{session.redis_ceiling:,.0f} req/s on one Redis core (more needs sharding, "
            "Redis Cluster: each request's GETEX writes, which read replicas refuse).",
        ]
    if token and denylist and token.replica and denylist.replica:
        extra = (denylist.replica - token.replica) * 1e6
        lines += [
            "",
            f"Denylist mode costs {extra:+,.0f} µs of replica CPU per request and "
            f"{denylist.redis_calls:.2f} Redis commands per request "
            f"({denylist.cpu.get('redis', 0) * 1e6:,.0f} µs of Redis CPU).",
        ]
    return lines
