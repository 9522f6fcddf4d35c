"""Locust's per-second percentiles: reading a history file, and plotting them in the report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from authscale.lab.faults import latency
from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.latency import LatencyHistory
from authscale.lab.faults.report import timeline_plot
from authscale.lab.faults.timeline import Timeline

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size\n"
)


def row(second: int, name: str, p50: str, p95: str, p99: str, total: int) -> str:
    kind = "" if name == "Aggregated" else "GET"
    return (
        f"{second},10,{kind},{name},0,0,{p50},{p50},{p50},{p50},{p95},{p95},{p99},{p99},"
        f"{p99},{p99},{p99},{total},0,{p50},1.0,0.5,{p99},40\n"
    )


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "load_stats_history.csv"
    path.write_text(
        HEADER
        + row(100, "session dashboard", "N/A", "N/A", "N/A", 0)
        + row(100, "session login", "40", "80", "90", 5)
        + row(100, "Aggregated", "2", "40", "80", 5)
        + row(101, "session dashboard", "2", "5", "9", 300)
        + row(101, "token dashboard", "1", "2", "3", 400)
        + row(102, "session dashboard", "3", "900", "1500", 600)
        + row(102, "token dashboard", "1", "2", "4", 800)
    )
    return path


def test_a_variant_is_its_busiest_request_in_seconds_since_the_start(history: Path) -> None:
    latency = LatencyHistory.read(history)
    assert latency.busiest("session ") == "session dashboard"
    session = latency.series("session ", start=100)
    assert session is not None
    assert session.name == "session dashboard"
    assert session.seconds == [0, 1, 2]
    # N/A (no answer yet) is a gap in the line, never a zero.
    assert math.isnan(session.milliseconds["50%"][0])
    assert session.milliseconds["95%"][1:] == [5.0, 900.0]
    assert session.milliseconds["99%"][2] == 1500.0
    token = latency.series("token ", start=100)
    assert token is not None and token.seconds == [1, 2]


def test_a_history_without_per_name_rows_gives_the_aggregate(tmp_path: Path) -> None:
    path = tmp_path / "load_stats_history.csv"
    path.write_text(HEADER + row(100, "Aggregated", "2", "40", "80", 5))
    series = LatencyHistory.read(path).series("session ", start=100)
    assert series is not None and series.name == "all requests since the start"
    assert LatencyHistory.read(path).busiest("session ") is None


def test_the_report_plots_latency_beside_the_answers(history: Path, tmp_path: Path) -> None:
    timeline_path = tmp_path / "load-timeline.csv"
    timeline_path.write_text(
        "second,name,status,outcome,count\n"
        "100,session dashboard,200,ok,50\n"
        "101,session dashboard,503,failed,7\n"
        "101,token dashboard,200,ok,60\n"
    )
    timeline = Timeline(Timeline.read(timeline_path).rows, LatencyHistory.read(history))
    result = ScenarioResult(
        "replica-loss", "Replica loss", marks=[(100.0, "load starts"), (101.5, "kill")]
    )
    result.timeline = timeline
    path = timeline_plot(tmp_path / "replica-loss.png", result)
    assert path.read_bytes().startswith(b"\x89PNG")
    # Without a history the answers are still drawn, the latency panels say why they are empty.
    result.timeline = Timeline(timeline.rows)
    assert timeline_plot(tmp_path / "no-history.png", result).stat().st_size > 0


def test_quiet_for_counts_the_seconds_since_the_last_login_answered(tmp_path: Path) -> None:
    path = tmp_path / "load_stats_history.csv"
    assert latency.quiet_for(path, "login") is None  # Locust has not written it yet
    path.write_text(HEADER + row(100, "session dashboard", "2", "5", "9", 10))
    assert latency.quiet_for(path, "login") is None  # no login yet
    rows = [
        row(100, "session login", "40", "80", "90", 5),
        row(101, "token login", "40", "80", "90", 3),
        row(102, "session login", "40", "80", "90", 8),
        row(103, "token login", "40", "80", "90", 3),
        row(105, "session login", "40", "80", "90", 8),
        row(106, "session dashboard", "2", "5", "9", 300),
    ]
    path.write_text(HEADER + "".join(rows))
    # The last login total to move was session's at 102; the history reaches 106.
    assert latency.quiet_for(path, "login") == 4
    # A line Locust is still writing is left out, whatever it holds.
    path.write_text(HEADER + "".join(rows) + "107,10,POST,session login,0,0,4")
    assert latency.quiet_for(path, "login") == 4
