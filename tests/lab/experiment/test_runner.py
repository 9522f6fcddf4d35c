"""``authscale experiment``: one tiny cell on a real local stack, and clear refusals."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from authscale.cli import main
from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment import runner as experiment
from authscale.lab.stack.processes import StackError

REPO = Path(__file__).resolve().parents[3]


def tiny_config(tmp_path: Path, **overrides: Any) -> experiment.ExperimentConfig:
    """One session cell of two users for two seconds on one Redis, with cheap password hashing,
    sharing the machine (no budgets, no calibration)."""
    settings: dict[str, Any] = {
        "variants": ("session",),
        "replicas": (1,),
        "shards": (0,),
        "cpu_budgets": None,
        "calibration_seconds": 0,
        "users_per_replica": 0,
        "users": 2,
        "warm_up": 1,
        "seconds": 2,
        "results_dir": tmp_path,
        "env": {"AUTHSCALE_ARGON2_MEMORY_KIB": "1024", "AUTHSCALE_ARGON2_TIME_COST": "1"},
    }
    return experiment.ExperimentConfig(**{**settings, **overrides})


@pytest.mark.lab
def test_one_tiny_cell_writes_a_complete_results_folder(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    lines: list[str] = []
    out = experiment.run_experiment(config, lines.append)
    assert lines[0].startswith("cell 1/1: session x1")
    assert "elapsed" in lines[0] and "left" in lines[0]
    for name in (
        "report.md",
        "summary.csv",
        "summary.json",
        "rps_vs_replicas.png",
        "p95_vs_replicas.png",
        "cpu_per_request.png",
    ):
        assert (out / name).is_file(), name
    raw = out / "raw" / "session-1"
    assert (raw / "locust_stats.csv").is_file() and (raw / "cpu_timeline.csv").is_file()
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[1].startswith("session,1,2,")
    assert ",0," in summary[1]  # no failures
    report = (out / "report.md").read_text()
    assert "| session | 1 |" in report
    # The cell's stack left its logs, and took its Redis data and password with it.
    stack = out / "stacks" / "session-1"
    assert (stack / "logs" / "session-1.log").is_file()
    assert not (stack / "redis").exists() and not (stack / "keys").exists()


@pytest.mark.lab
def test_two_servers_are_measured_side_by_side_in_one_run(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, servers=("hypercorn", "uvicorn"))
    lines: list[str] = []
    out = experiment.run_experiment(config, lines.append)
    assert lines[0].startswith("cell 1/2: session on hypercorn x1")
    assert any(line.startswith("cell 2/2: session on uvicorn x1") for line in lines)
    with (out / "summary.csv").open() as file:
        assert [row["server"] for row in csv.DictReader(file)] == ["hypercorn", "uvicorn"]
    report = (out / "report.md").read_text()
    assert "## Servers side by side" in report
    assert "| session | 1 | uvicorn |" in report
    # Each server's replica logged under its own cell.
    assert (out / "stacks" / "session-1-uvicorn" / "logs" / "session-1.log").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variants", "session,cookies"], "unknown variant cookies; variants are session"),
        (["outage"], "unknown scenario outage; scenarios are scaling"),
        (["scaling", "redis-outage"], "scaling runs alone; name it without other scenarios"),
        (["--variants", "session", "--replicas", "1,0"], "replica counts must be 1 or more"),
        (["--redis-shards", "1,-2"], "shard counts must be 0 (one Redis) or more"),
        (["--users-per-replica", "-1"], "users per replica must be 0"),
        (["--calibration-seconds", "-1"], "calibration seconds must be 0 or more"),
        (
            ["--backend", "compose", "--redis-shards", "1"],
            "the compose backend runs one Redis: pass --redis-shards 0",
        ),
        (
            ["--variants", "session", "--backend", "podman"],
            "unknown backend podman; backends are local, compose",
        ),
        (
            ["--variants", "session", "--locustfile", "/nonexistent/locustfile.py"],
            "no locustfile at /nonexistent/locustfile.py",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["experiment", *argv, "--results-dir", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err


def test_a_stack_that_never_gets_ready_names_its_log(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path, users=1, seconds=1, env={"AUTHSCALE_REDIS_TIMEOUT": "not-a-number"}
    )
    with pytest.raises(StackError, match=r"session x1: the stack never got ready.*session-1\.log"):
        experiment.run_experiment(config, lambda line: None)


def test_a_python_without_locust_is_told_how_to_install_it() -> None:
    # The system's Python has no Locust: the check runs there, on this checkout's source.
    code = (
        "import sys; sys.path.insert(0, 'services')\n"
        "from authscale.lab import load\n"
        "try:\n    load.check_installed(load.DEFAULT_LOCUSTFILE)\n"
        "except Exception as error:\n    print(error)\n"
    )
    done = subprocess.run(
        ["/usr/bin/python3", "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert "Locust is not installed" in done.stdout, done.stdout + done.stderr
    assert "pip install -e '.[loadtest]'" in done.stdout


@pytest.mark.lab
def test_a_budgeted_run_is_calibrated_and_models_every_cell(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path,
        variants=("session", "token"),
        shards=(1,),
        cpu_budgets=CpuBudgets(),
        calibration_seconds=2,
        users_per_replica=2,
        env={},
        warm_up=4,
    )
    lines: list[str] = []
    out = experiment.run_experiment(config, lines.append)
    assert lines[0].startswith("calibration (start): ")
    assert any(line.startswith("calibration (end): ") for line in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budgets"] == CpuBudgets().describe()
    assert summary["calibration"]["start_rps"] > 0 and summary["calibration"]["end_rps"] > 0
    for row in summary["cells"]:
        assert row["shards"] == 1 and row["failures"] == 0
        assert row["budget_share_replicas"] > 0 and 0 <= row["machine_idle_share"] <= 1
        assert row["bound"]
    assert {check["variant"] for check in summary["scale_model_check"]} <= {"session", "token"}
    report = (out / "report.md").read_text()
    assert "## Budgets and calibration" in report and "## The model" in report
    assert "| session, 1 shard | 1 |" not in report  # one shard count: no shard in the name
    assert (out / "rps_vs_replicas.png").is_file()
    # Every window and both calibrations carry the machine's pace.
    assert all(row["pace_ms_per_unit"] > 0 for row in summary["cells"])
    assert summary["calibration"]["start_pace_ms_per_unit"] > 0
    assert summary["calibration"]["spread_at_one_pace"] is not None
    # Read back from its folder, the run gives the same model.
    assert main(["experiment", "--report-from", str(out)]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert [c["predicted"] for c in again["scale_model_check"]] == pytest.approx(
        [c["predicted"] for c in summary["scale_model_check"]], rel=0.01
    )


def test_every_cell_runs_on_the_chosen_server(tmp_path: Path) -> None:
    config = experiment.ExperimentConfig(variants=("session", "token"), server="granian")
    for cell in config.cells():
        assert config.stack_plan(cell, tmp_path).server == "granian"
    with pytest.raises(StackError, match="unknown server gunicorn; servers are hypercorn"):
        experiment.ExperimentConfig(server="gunicorn")
