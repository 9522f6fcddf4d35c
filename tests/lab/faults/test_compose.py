"""The fault scenarios on compose: the Redis outage and the replica loss, short and bounded.

Containers this time: Redis is ``docker stop``-ed and started again (its append-only volume must
keep the sessions), one session and one token container are ``docker kill -s KILL``-ed and
started again. The targets asserted are the ones that hold at any speed, as in
tests/lab/faults/test_runner.py. Like the other compose tests it skips without a Docker
engine, except under CI, where it fails. Project names (``authscale-faults-test-<scenario>``)
are this test's own, so it never meets another run on the same engine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from authscale.cli import main
from authscale.lab.compose import engine as docker_engine
from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.runner import run_faults
from authscale.lab.faults.scenarios import SCENARIOS
from tests.lab.compose.test_backend import in_ci
from tests.lab.faults.test_runner import SHORT, assert_targets_met

PROJECT = "authscale-faults-test"
CHOSEN = ("redis-outage", "replica-loss")


@pytest.fixture(scope="module")
def compose_faults(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, ScenarioResult]]:
    problem = docker_engine.missing_engine()
    if problem is not None:
        if in_ci():
            pytest.fail(f"CI must run the fault scenarios on compose, but {problem}")
        pytest.skip(problem)
    results: dict[str, ScenarioResult] = {}
    config = FaultConfig(
        **{
            **SHORT.__dict__,
            "scenarios": CHOSEN,
            "backend": "compose",
            "project": PROJECT,
            "results_dir": tmp_path_factory.mktemp("compose-faults"),
        }
    )
    out = run_faults(config, SCENARIOS, progress=lambda line: None, collect=results)
    return out, results


@pytest.mark.compose
@pytest.mark.parametrize("name", CHOSEN)
def test_every_target_is_met_on_compose(
    name: str, compose_faults: tuple[Path, dict[str, ScenarioResult]]
) -> None:
    result = compose_faults[1][name]
    assert result.backend == "compose"
    assert_targets_met(result)


@pytest.mark.compose
def test_the_report_says_compose_and_nothing_is_left(
    compose_faults: tuple[Path, dict[str, ScenarioResult]],
) -> None:
    out, _ = compose_faults
    assert "a fresh compose project" in (out / "report.md").read_text()
    for name in CHOSEN:
        assert (out / "stacks" / name / "compose.log").is_file()
        label = f"label=com.docker.compose.project={PROJECT}-{name}"
        for listing in (["ps", "-aq"], ["volume", "ls", "-q"], ["network", "ls", "-q"]):
            left = subprocess.run(
                ["docker", *listing, "--filter", label],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            assert left.stdout.split() == [], (name, listing)


def test_without_docker_the_fault_scenarios_say_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, no docker-compose
    argv = ["experiment", "redis-outage", "--backend", "compose", "--results-dir", str(tmp_path)]
    assert main(argv) == 1
    assert "the compose backend needs Docker: no docker command" in capsys.readouterr().err
