"""The Redis Cluster failover in a short form: one master of three killed under a few seconds of
load, the same targets as the committed run.

Durations are reported, not asserted (how long a promotion takes on a busy machine says nothing
about the code); what is asserted holds at any speed: the failed shard's users get 503s, never
401 or 500, and succeed again without a restart of any replica; the other shards' users never
fail; sessions and families made well before the kill survive; and the last second before the
kill is counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.runner import run_faults
from authscale.lab.faults.scenarios import SCENARIOS
from tests.lab.faults.test_runner import SHORT, assert_targets_met

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def failover(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScenarioResult]:
    results: dict[str, ScenarioResult] = {}
    config = FaultConfig(
        **{
            **SHORT.__dict__,
            "scenarios": ("redis-failover",),
            "results_dir": tmp_path_factory.mktemp("failover"),
        }
    )
    out = run_faults(config, SCENARIOS, progress=lambda line: None, collect=results)
    return out, results["redis-failover"]


def test_every_target_is_met(failover: tuple[Path, ScenarioResult]) -> None:
    assert_targets_met(failover[1])


def test_the_failed_shard_was_down_then_back(failover: tuple[Path, ScenarioResult]) -> None:
    figures = failover[1].figures
    assert figures["promotion_s"] is not None
    for request in ("session_dashboard", "token_refresh"):
        # The readers of the killed shard did see it fail, and saw it come back.
        assert figures[f"{request}_503"], request
        assert figures[f"{request}_401"] == 0, request
        assert figures[f"{request}_back_after_s"] is not None, request


def test_the_last_second_before_the_kill_is_counted(
    failover: tuple[Path, ScenarioResult],
) -> None:
    figures = failover[1].figures
    made = figures["last_second_session_made"], figures["last_second_token_made"]
    lost = figures["last_second_session_lost"], figures["last_second_token_lost"]
    assert all(isinstance(n, int) for n in (*made, *lost))
    assert sum(made) > 0, "no login was answered in the last second before the kill"


def test_the_report_says_what_each_shard_saw(failover: tuple[Path, ScenarioResult]) -> None:
    out, result = failover
    report = (out / "report.md").read_text()
    assert f"## {result.title}" in report
    assert "| s after the kill | failed: session dashboard | failed: token refresh |" in report
    assert "killed node back, as a replica" in report
    assert (out / "redis-failover.png").stat().st_size > 0
