"""Locust's command line and the reading of its output, on files shaped like Locust's."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from authscale.lab import load
from authscale.lab.stack.processes import StackError


def plan(tmp_path: Path) -> load.LocustPlan:
    return load.LocustPlan(
        host="http://127.0.0.1:1",
        variant="session",
        users=4,
        warm_up=2,
        seconds=5,
        output_prefix=tmp_path / "locust",
        weights={"dashboard": 10, "refresh": 1},
    )


def test_the_command_line_runs_headless_with_the_window_and_weights(tmp_path: Path) -> None:
    argv = plan(tmp_path).argv()
    assert argv[1:3] == ["-m", "locust"] and "--headless" in argv
    assert argv[argv.index("--run-time") + 1] == "9s"
    assert argv[argv.index("--dashboard-weight") + 1] == "10"
    assert argv[argv.index("--accounts") + 1] == "4"


def test_figures_come_from_the_marked_window_and_the_histograms(tmp_path: Path) -> None:
    run = plan(tmp_path)
    run.log_file.write_text(
        "x INFO authscale: measuring from 100.000000\nx INFO authscale: measuring until 104.0\n"
    )
    entries = [
        {
            "name": "dashboard",
            "num_requests": 90,
            "num_failures": 1,
            "response_times": {"10": 50, "20": 40},
        },
        {
            "name": "refresh",
            "num_requests": 10,
            "num_failures": 0,
            "response_times": {"40": 9, "300": 1},
        },
    ]
    (tmp_path / "locust.json").write_text(json.dumps(entries))
    figures = load.read_figures(run)
    assert figures.seconds == 4 and figures.rate == 25
    assert figures.requests == 100 and figures.failures == 1
    assert figures.p50_ms == 10 and figures.p95_ms == 40 and figures.p99_ms == 40
    assert figures.by_name["refresh"] == (10, 0)


def test_a_run_without_marks_is_an_error_that_points_at_the_log(tmp_path: Path) -> None:
    run = plan(tmp_path)
    run.log_file.write_text("Traceback: something broke\n")
    with pytest.raises(StackError, match=r"locust\.log"):
        load.read_figures(run)


def test_percentile_of_an_empty_histogram_is_zero() -> None:
    assert load.percentile({}, 0.95) == 0.0


RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


@pytest.mark.parametrize(
    "cell", sorted(RESULTS.glob("scaling-*/raw/*")), ids=lambda cell: cell.name
)
def test_the_committed_scaling_cells_still_read(cell: Path) -> None:
    committed = dataclasses.replace(plan(cell), output_prefix=cell / "locust")
    figures = load.read_figures(committed)
    assert figures.requests > 0 and figures.seconds > 0


def test_a_real_locust_is_stopped_cleanly_and_checked(tmp_path: Path) -> None:
    # Nobody listens on port 1: every login fails at once, which is all this needs.
    run = load.LocustPlan(
        host="http://127.0.0.1:1",
        variant="session",
        users=1,
        warm_up=0,
        seconds=60,
        output_prefix=tmp_path / "locust",
    )
    with load.Locust(run) as locust:
        # Stopped once its users run: a SIGTERM before Locust set up its handlers just kills it.
        deadline = time.monotonic() + 60
        while "All users spawned" not in run.log_file.read_text() and locust.running():
            assert time.monotonic() < deadline, "Locust never started its users"
            locust.wait(time.monotonic() + 0.2)
        assert locust.running()
        locust.stop()
    locust.check(tmp_path / "locust.json")
    with pytest.raises(StackError, match=r"without .*missing\.csv; read .*locust\.log"):
        locust.check(tmp_path / "missing.csv")


def test_a_locust_left_running_is_killed_on_leaving(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), load.Locust(plan(tmp_path)) as locust:
        raise RuntimeError("the scenario failed")
    assert not locust.running()
