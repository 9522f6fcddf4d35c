"""``authscale experiment --backend compose``: one tiny cell on compose.yaml, and clear refusals.

The real cell needs a Docker engine and `docker compose` or `docker-compose` (on a machine like
CI's, deploy/prepare-docker.sh first); like tests/test_compose.py it skips without one, except
under CI, where it fails. It reuses the image tag the compose test builds, so the build is cached.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from authscale.cli import main
from authscale.lab.compose import backend as compose_backend
from authscale.lab.compose import engine as docker_engine
from authscale.lab.experiment import runner as experiment
from authscale.lab.stack.processes import StackError

PROJECT = "authscale-exp-test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


def test_without_docker_the_compose_backend_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, no docker-compose
    argv = ["experiment", "--backend", "compose", "--variants", "session", "--replicas", "1"]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 1
    assert "the compose backend needs Docker: no docker command" in capsys.readouterr().err


def test_settings_compose_would_drop_are_refused() -> None:
    # Refused before anything runs: the setting would silently not reach a replica.
    backend = compose_backend.ComposeBackend(project=PROJECT)
    with pytest.raises(StackError, match="does not pass AUTHSCALE_SESSION_IDLE_TIMEOUT"):
        backend.prepare({"AUTHSCALE_SESSION_IDLE_TIMEOUT": "60"})


@pytest.mark.compose
def test_one_tiny_compose_cell_writes_a_complete_results_folder(tmp_path: Path) -> None:
    problem = docker_engine.missing_engine()
    if problem is not None:
        if in_ci():
            pytest.fail(f"CI must run the compose experiment, but {problem}")
        pytest.skip(problem)
    config = experiment.ExperimentConfig(
        variants=("session",),
        replicas=(2,),
        users=2,
        warm_up=1,
        seconds=2,
        results_dir=tmp_path,
        backend="compose",
        # The shared-machine shape of a cell: one Redis, no budgets (compose's healthchecks do
        # not fit the default budgets, docs/deploy.md), no calibration, users as given.
        shards=(0,),
        cpu_budgets=None,
        calibration_seconds=0,
        users_per_replica=0,
    )
    backend = compose_backend.ComposeBackend(project=PROJECT)
    lines: list[str] = []
    try:
        out = experiment.run_experiment(config, lines.append, backend)
    finally:
        backend.close()
    assert lines[0].startswith("cell 1/1: session x2")
    for name in ("report.md", "summary.csv", "summary.json", "cpu_per_request.png"):
        assert (out / name).is_file(), name
    assert (out / "raw" / "session-2" / "locust_stats.csv").is_file()
    summary = (out / "summary.csv").read_text().splitlines()
    header = summary[0].split(",")
    row = dict(zip(header, summary[1].split(","), strict=True))
    assert row["variant"] == "session" and row["replicas"] == "2" and row["failures"] == "0"
    assert int(row["requests"]) > 0
    # Every component was measured from its containers, and Redis counted its commands.
    for component in ("replicas", "redis", "gateway", "locust"):
        assert float(row[f"cpu_us_per_request_{component}"]) > 0, (component, header)
    # One GETEX per dashboard read; the window's edges are interpolated, hence not exactly 1.
    assert 0.8 <= float(row["redis_calls_per_request"]) <= 1.2
    report = (out / "report.md").read_text()
    assert "| backend | compose |" in report
    assert (out / "stacks" / "session-2" / "compose.log").is_file()
    # Nothing of the variant's project is left: no container, no volume.
    label = f"label=com.docker.compose.project={PROJECT}-session"
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", label],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert left.stdout.split() == []
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", label],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert volumes.stdout.split() == []
