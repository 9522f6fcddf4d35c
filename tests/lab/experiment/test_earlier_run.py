"""Reporting an earlier run again from its results folder: the committed run read back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from authscale.cli import main
from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment import earlier_run
from authscale.lab.stack.processes import StackError

COMMITTED = Path(__file__).parents[3] / "docs" / "results" / "scaling-2026-11-30"


def measurements_of(run: Path, into: Path) -> Path:
    """What a run measured (its summary and each cell's processes and Locust files), copied."""
    into.mkdir()
    shutil.copy(run / "summary.json", into)
    for cell in (run / "raw").iterdir():
        (into / "raw" / cell.name).mkdir(parents=True)
        for name in ("processes.csv", "locust.json"):
            shutil.copy(cell / name, into / "raw" / cell.name)
    return into


def test_the_committed_run_reads_back_cell_by_cell(tmp_path: Path) -> None:
    folder = measurements_of(COMMITTED, tmp_path / "run")
    before = json.loads((folder / "summary.json").read_text())
    run = earlier_run.load(folder)
    assert run.budgets == CpuBudgets()
    assert run.calibration is not None and run.calibration.start.rate == pytest.approx(55.4)
    # A run from before each end's CPU per ping was recorded: both ends get the mean.
    assert run.calibration.start.cpu_per_request == run.calibration.end.cpu_per_request == 1960e-6
    assert len(run.results) == len(before["cells"]) == 28
    for result, row in zip(run.results, before["cells"], strict=True):
        assert (result.variant, result.replicas, result.shards) == (
            row["variant"],
            row["replicas"],
            row["shards"],
        )
        assert result.rate == pytest.approx(row["rps"], rel=2e-3)  # seconds rounded to 0.01
        assert result.bound == row["bound"]
        assert result.idle_share == pytest.approx(row["machine_idle_share"], abs=1e-3)
    assert {r.series for r in run.results} >= {"session, 2 shards", "token, 1 shard"}


def test_reporting_again_rewrites_the_summary_and_report_with_this_model(tmp_path: Path) -> None:
    folder = measurements_of(COMMITTED, tmp_path / "run")
    assert main(["experiment", "--report-from", str(folder)]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["environment"]["cores usable"] == "2"  # the run's machine, not this one
    checks = summary["scale_model_check"]
    assert len(checks) == 28 and sum(check["marked"] for check in checks) == 1
    assert 0 < summary["scale_model_largest_error"] < 1
    report = (folder / "report.md").read_text()
    assert "redis shared" in report and "## The model" in report
    assert (folder / "rps_vs_replicas.png").is_file()


def test_a_run_without_processes_csv_cannot_be_reported_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = measurements_of(COMMITTED, tmp_path / "run")
    (folder / "raw" / "token-8-1shards" / "processes.csv").unlink()
    with pytest.raises(StackError, match=r"processes\.csv is missing"):
        earlier_run.load(folder)
    assert main(["experiment", "--report-from", str(tmp_path / "nowhere")]) == 1
    assert "no readable summary.json" in capsys.readouterr().err


def test_report_from_runs_no_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "faults", "--report-from", "."]) == 1
    assert "name no scenario" in capsys.readouterr().err
