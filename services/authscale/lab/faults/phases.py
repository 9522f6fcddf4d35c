"""Answers per second in the phases of a fault: before it, while it lasts, after the repair.

Under CPU budgets a replica's capacity is its own: when one is killed, its share goes with it
and the survivors' rate drops until it is back, as on machines of their own. Without budgets
the survivors take the freed cores and the rate hardly moves, so only a budgeted run has a
target for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from authscale.lab.faults.checks import Check, ScenarioResult
from authscale.lab.faults.timeline import Row, Timeline

#: Rates by request name, then by phase label; None where a phase holds no whole second.
Rates = Mapping[str, Mapping[str, float | None]]


@dataclass(frozen=True)
class Phase:
    """A stretch of a run, from ``start`` to ``stop`` (epoch seconds)."""

    label: str
    start: float
    stop: float


def rate(rows: Iterable[Row], start: float, stop: float) -> float | None:
    """Successful answers per second over the whole seconds from ``start`` to ``stop``.

    Locust counts a request in the second it began, so a second that a boundary cuts holds
    requests of both sides: it is left out. None: not one whole second between the two.
    """
    first, last = math.ceil(start), math.floor(stop)
    if last <= first:
        return None
    answered = sum(row.count for row in rows if not row.failed and first <= row.second < last)
    return answered / (last - first)


def rates(timeline: Timeline, names: Sequence[str], phases: Sequence[Phase]) -> Rates:
    return {
        name: {
            phase.label: rate(timeline.select(names=[name]), phase.start, phase.stop)
            for phase in phases
        }
        for name in names
    }


def after_logins(timeline: Timeline, before: float) -> float:
    """The first second after the load's users last logged in before ``before``: they log in as
    they start, and a login costs far more than a read, so the steady rate begins after."""
    seconds = [row.second for row in timeline.rows if "login" in row.name and row.second < before]
    return float(max(seconds, default=timeline.first_second) + 1)


def record(
    result: ScenarioResult,
    timeline: Timeline,
    names: Sequence[str],
    periods: Sequence[Phase],
    budgeted: bool,
) -> None:
    """Add the rates of ``names`` in ``periods`` to ``result``: a table in its notes, figures,
    and, under budgets, the check that the rate of the second period is below the first's."""
    found = rates(timeline, names, periods)
    if budgeted:
        result.checks.append(survivors_check(found, periods[0].label, periods[1].label))
    unbudgeted = "" if budgeted else " (no CPU budgets: the survivors take the freed cores)"
    result.notes += [
        f"Successful answers per second, whole seconds only{unbudgeted}:",
        "",
        *table(found, periods),
    ]
    result.figures.update(
        {
            f"{name}/s {phase.label}".replace(" ", "_"): found[name][phase.label]
            for name in names
            for phase in periods
        }
    )


def table(found: Rates, phases: Sequence[Phase]) -> list[str]:
    """Markdown: a row per request name, a column per phase, answers per second."""
    lines = [
        "| answers/s | " + " | ".join(phase.label for phase in phases) + " |",
        "|---|" + "---:|" * len(phases),
    ]
    for name, by_phase in found.items():
        cells = [_figure(by_phase[phase.label]) for phase in phases]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def survivors_check(found: Rates, before: str, away: str) -> Check:
    """Under budgets, each request's rate while replicas are away is below its rate before.

    Measured, not asserted by the test suite: a rate is a speed, which its short runs on a
    shared machine say little about.
    """
    pairs = {name: (by_phase[before], by_phase[away]) for name, by_phase in found.items()}
    return Check(
        "under CPU budgets, the survivors answer fewer per second while the killed replicas "
        "are away than all did before: they cannot absorb the lost share",
        "; ".join(
            f"{name}: {_figure(was)}/s before, {_figure(now)}/s away"
            for name, (was, now) in pairs.items()
        ),
        bool(pairs)
        and all(was is not None and now is not None and now < was for was, now in pairs.values()),
        measured=True,
    )


def _figure(value: float | None) -> str:
    return "no whole second" if value is None else f"{value:.1f}"
