"""The pace probe: a fixed unit of work whose CPU time tracks the machine's speed."""

from __future__ import annotations

import time

import pytest

from authscale.lab.measure import pace


def test_the_pace_is_the_median_unit_inside_the_window() -> None:
    text = "\n".join(f"{100 + i * 0.1:.6f} {2_000_000 + (i % 3) * 1_000_000}" for i in range(60))
    readings = pace.parse(text + "\nnot a reading\n")
    assert len(readings) == 60
    # Units at 101.0-104.9: their CPU times cycle 2, 3, 4 ms.
    assert pace.pace(readings, 101.0, 104.95) == pytest.approx(3e-3)


def test_too_few_units_give_no_pace() -> None:
    readings = [pace.Reading(100 + i, 2e-3) for i in range(pace.MIN_UNITS - 1)]
    assert pace.pace(readings, 0, 1e9) is None


def test_the_probe_measures_units_while_it_runs() -> None:
    began = time.time()
    with pace.Probe(seconds=30) as probe:
        time.sleep(3)
    # Terminated after 3 s, well before its 30 s: about 25 units of a few milliseconds each.
    assert 10 <= len(probe.readings) <= 40
    assert all(began <= r.at <= time.time() for r in probe.readings)
    assert all(0 < r.cpu_seconds < 0.5 for r in probe.readings)


def test_a_unit_is_the_same_work_every_time() -> None:
    assert pace.unit() == pace.unit()


@pytest.mark.parametrize(
    ("window", "interval"),
    [(None, pace.INTERVAL), (30.0, pace.INTERVAL), (2.0, 0.05), (0.1, pace.MIN_INTERVAL)],
)
def test_a_short_window_runs_units_more_often(window: float | None, interval: float) -> None:
    assert pace.interval_for(window) == pytest.approx(interval)


def test_a_two_second_window_has_a_pace() -> None:
    # A test's calibration runs for 2 s: at one unit per 100 ms it would fall short of MIN_UNITS.
    began = time.time()
    with pace.Probe(seconds=30, window=2) as probe:
        time.sleep(2.5)
    assert pace.pace(probe.readings, began, time.time()) is not None
