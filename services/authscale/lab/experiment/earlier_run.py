"""An earlier scaling run read back from its results folder, to be reported again.

``authscale experiment --report-from DIR`` runs the analysis (the models, the report, the plots)
again on a run's measurements without making them again, so that a change to the model can be
checked against the runs already committed. It reads what the run wrote: ``summary.json`` (the
cells, the settings, the budgets and the calibration) and, per cell, ``raw/<cell>/processes.csv``
(each process's CPU, budget and idle CPU) and ``raw/<cell>/locust.json`` (the window's requests
by name, which tell a window that still held logins). A run from before ``processes.csv`` was
written cannot be read back, and says so.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from authscale.core.servers import DEFAULT_SERVER
from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment import report
from authscale.lab.experiment.calibration import Calibration, Reference
from authscale.lab.experiment.cells import COMPONENTS, Cell, CellResult
from authscale.lab.experiment.runner import VARIANTS
from authscale.lab.stack.processes import StackError

#: ``replica 0.1 core (2 ms per 20 ms)``: one budget as :meth:`CpuBudgets.describe` writes it.
_BUDGET = re.compile(r"(replica|issuer|redis \(each node\)|gateway) ([\d.]+) core \(([\d.]+) ms")


@dataclass(frozen=True)
class EarlierRun:
    folder: Path
    results: list[CellResult]
    settings: Mapping[str, str]
    environment: Mapping[str, str]
    command: str
    budgets: CpuBudgets | None
    calibration: Calibration | None

    def report_again(self) -> Path:
        """Rewrite the folder's summary, report and plots from its measurements."""
        return report.write(
            self.folder,
            self.results,
            self.settings,
            command=self.command,
            budgets=self.budgets,
            calibration=self.calibration,
            environment=self.environment,
        )


def load(folder: Path) -> EarlierRun:
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError) as error:
        raise StackError(f"{folder} holds no readable summary.json: {error}") from error
    rows = summary["cells"]
    named_shards = len({row.get("shards", 0) for row in rows}) > 1
    named_server = len({row.get("server", DEFAULT_SERVER) for row in rows}) > 1
    cores = float(summary.get("environment", {}).get("cores usable", 2))
    results = [_cell(folder, row, named_shards, named_server, cores) for row in rows]
    budgets = _budgets(summary.get("budgets"))
    return EarlierRun(
        folder=folder,
        results=results,
        settings=summary["settings"],
        environment=summary.get("environment", {}),
        command=summary["command"],
        budgets=budgets,
        calibration=_calibration(summary.get("calibration"), budgets),
    )


def _cell(
    folder: Path, row: Mapping[str, object], named_shards: bool, named_server: bool, cores: float
) -> CellResult:
    name = str(row["variant"])
    if name not in VARIANTS:
        raise StackError(f"{name!r} is not a variant of this checkout: {', '.join(VARIANTS)}")
    role = VARIANTS[name].role
    cell = Cell(
        VARIANTS[name],
        int(str(row["replicas"])),
        str(row.get("server", DEFAULT_SERVER)),
        named_server,
        int(str(row.get("shards", 0))),
        named_shards,
    )
    raw = folder / "raw" / cell.slug
    processes = _processes(raw / "processes.csv")
    requests = int(str(row["requests"]))
    seconds = float(str(row["seconds"]))
    per_request = {
        component: float(str(row.get(f"cpu_us_per_request_{component}", 0))) * 1e-6
        for component in (*COMPONENTS, "others")
        if component not in ("session", "token")
    }
    per_request[role] = float(str(row["cpu_us_per_request_replicas"])) * 1e-6
    pace = row.get("pace_ms_per_unit")
    return CellResult(
        variant=name,
        role=role,
        replicas=cell.replicas,
        users=int(str(row["users"])),
        seconds=seconds,
        requests=requests,
        failures=int(str(row["failures"])),
        p50_ms=float(str(row["p50_ms"])),
        p95_ms=float(str(row["p95_ms"])),
        p99_ms=float(str(row["p99_ms"])),
        cpu_seconds={component: cost * requests for component, cost in per_request.items()},
        machine_busy_seconds=float(str(row["machine_busy_share"])) * cores * seconds,
        cores=cores,
        redis_calls=_calls(str(row.get("redis_calls", ""))),
        by_name=_by_name(raw / "locust.json"),
        server=cell.server,
        series=cell.series,
        shards=cell.shards,
        process_cpu_seconds={name: used for name, (used, _, _) in processes.items()},
        budgets={name: budget for name, (_, budget, _) in processes.items() if budget is not None},
        idle_cores={name: idle for name, (_, _, idle) in processes.items() if idle is not None},
        pace=float(str(pace)) / 1e3 if pace not in (None, "") else None,
    )


def _processes(path: Path) -> dict[str, tuple[float, float | None, float | None]]:
    try:
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
    except OSError as error:
        raise StackError(
            f"{path} is missing: only runs that wrote each cell's processes.csv can be "
            f"reported again ({error.strerror})"
        ) from error
    return {
        row["process"]: (
            float(row["cpu_seconds"]),
            float(row["budget_cores"]) if row["budget_cores"] else None,
            float(row["idle_cores"]) if row["idle_cores"] else None,
        )
        for row in rows
    }


def _by_name(path: Path) -> dict[str, tuple[int, int]]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StackError(f"{path} holds no readable Locust statistics: {error}") from error
    return {
        entry["name"]: (int(entry["num_requests"]), int(entry["num_failures"])) for entry in entries
    }


def _calls(text: str) -> dict[str, int]:
    calls = {}
    for part in text.split():
        name, _, count = part.partition("=")
        calls[name] = int(count)
    return calls


def _budgets(text: object) -> CpuBudgets | None:
    """The budgets back from :meth:`CpuBudgets.describe`'s words; None for a run without."""
    if not text:
        return None
    found = {name.split()[0]: float(cores) for name, cores, _ in _BUDGET.findall(str(text))}
    periods = [float(period) for period in re.findall(r"ms per ([\d.]+) ms", str(text))]
    if set(found) != {"replica", "issuer", "redis", "gateway"}:
        raise StackError(f"cannot read the budgets back from {text!r}")
    return CpuBudgets(**found, period_ms=min(periods))


def _calibration(data: object, budgets: CpuBudgets | None) -> Calibration | None:
    if not isinstance(data, dict):
        return None
    both = float(data["cpu_us_per_ping"]) * 1e-6

    def pace(key: str) -> float | None:
        value = data.get(key)
        return float(value) / 1e3 if value else None

    def cpu(key: str) -> float:
        # Runs before each end's own was recorded have only the two's mean.
        value = data.get(key)
        return float(value) * 1e-6 if value else both

    start = Reference(
        str(data["start_at"]),
        float(data["start_rps"]),
        cpu("start_cpu_us_per_ping"),
        pace("start_pace_ms_per_unit"),
    )
    end = Reference(
        str(data["end_at"]),
        float(data["end_rps"]),
        cpu("end_cpu_us_per_ping"),
        pace("end_pace_ms_per_unit"),
    )
    return Calibration(start, end, budgets)
