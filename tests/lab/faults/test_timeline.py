"""Locust's per-second answers by name and status: counting them, and the committed runs' files."""

from __future__ import annotations

from pathlib import Path

import pytest

from authscale.lab.faults.timeline import Timeline, describe

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results"
COMMITTED = sorted(RESULTS.glob("faults-*/**/raw/*/*timeline.csv"))


def test_the_timeline_counts_by_status(tmp_path: Path) -> None:
    path = tmp_path / "timeline.csv"
    path.write_text(
        "second,name,status,outcome,count\n"
        "100,session dashboard,200,ok,50\n"
        "101,session dashboard,503,failed,7\n"
        "101,token dashboard,200,ok,60\n"
        "102,session dashboard,0,failed,1\n"
    )
    timeline = Timeline.read(path)
    session = timeline.select(prefix="session ")
    assert Timeline.total(session) == 58
    assert Timeline.by_status(session, failed_only=True) == {0: 1, 503: 7}
    assert describe({0: 1, 503: 7}) == "1 x connection error, 7 x 503"
    seconds, answers, failures = timeline.per_second("session ")
    assert seconds == [0, 1, 2] and answers == [50, 7, 1] and failures[503] == [0, 7, 0]
    assert timeline.select(prefix="session ", start=101, stop=102)[0].status == 503


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: str(path.relative_to(RESULTS)))
def test_the_committed_fault_runs_still_read(path: Path) -> None:
    timeline = Timeline.read(path)
    assert Timeline.total(timeline.select()) > 0
