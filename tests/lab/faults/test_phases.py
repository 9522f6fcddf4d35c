"""The per-phase rates of a fault run: whole seconds only, successes only, and their check."""

from __future__ import annotations

from authscale.lab.faults import phases
from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.timeline import Row, Timeline

NAMES = ("session dashboard", "token dashboard")


def steady(first: int, last: int, per_second: dict[str, int]) -> list[Row]:
    return [
        Row(second, name, 200, False, count)
        for second in range(first, last)
        for name, count in per_second.items()
    ]


#: Logins in second 100; 80/s each before a kill at 110.5, 40/s while away, 80/s once back.
TIMELINE = Timeline(
    [
        Row(100, "session login", 200, False, 24),
        Row(100, "token login", 503, True, 3),
        *steady(101, 111, {"session dashboard": 80, "token dashboard": 80}),
        Row(110, "token dashboard", 200, True, 1),
        *steady(111, 121, {"session dashboard": 40, "token dashboard": 40}),
        *steady(121, 131, {"session dashboard": 80, "token dashboard": 80}),
    ]
)
PERIODS = [
    phases.Phase("before the kill", 101.0, 110.5),
    phases.Phase("while away", 110.6, 120.2),
    phases.Phase("back in rotation", 121.0, 131.0),
]


def test_a_rate_counts_successes_in_whole_seconds_only() -> None:
    rows = TIMELINE.select(names=["token dashboard"])
    # 110 is cut by the kill: seconds 101 to 109 count, 80 answers each.
    assert phases.rate(rows, 101.0, 110.5) == 80.0
    # Second 110, were it whole, holds 80 answers and 1 failure: the failure does not count.
    assert phases.rate(rows, 110.0, 111.0) == 80.0
    assert phases.rate(rows, 110.2, 110.9) is None


def test_the_steady_load_begins_after_the_last_login() -> None:
    assert phases.after_logins(TIMELINE, before=110.5) == 101.0
    assert phases.after_logins(Timeline(steady(5, 8, {"token dashboard": 1})), before=9.0) == 6.0


def test_rates_per_name_and_phase() -> None:
    found = phases.rates(TIMELINE, NAMES, PERIODS)
    assert found["session dashboard"] == {
        "before the kill": 80.0,
        "while away": 40.0,
        "back in rotation": 80.0,
    }


def test_under_budgets_the_table_the_figures_and_the_check_are_recorded() -> None:
    result = ScenarioResult("replica-loss", "Replica loss")
    phases.record(result, TIMELINE, NAMES, PERIODS, budgeted=True)
    (check,) = result.checks
    assert check.met and check.measured
    assert "session dashboard: 80.0/s before, 40.0/s away" in check.observed
    assert "| session dashboard | 80.0 | 40.0 | 80.0 |" in result.notes
    assert result.figures["token_dashboard/s_while_away"] == 40.0


def test_survivors_that_absorb_the_share_miss_the_target() -> None:
    found = {"session dashboard": {"before": 50.0, "away": 50.0}}
    assert not phases.survivors_check(found, "before", "away").met
    assert not phases.survivors_check({"x": {"before": 50.0, "away": None}}, "before", "away").met


def test_without_budgets_the_rates_are_reported_without_a_target() -> None:
    result = ScenarioResult("replica-loss", "Replica loss")
    phases.record(result, TIMELINE, NAMES, PERIODS, budgeted=False)
    assert result.checks == []
    assert "no CPU budgets" in result.notes[0]
