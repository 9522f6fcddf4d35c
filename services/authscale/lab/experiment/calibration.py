"""Calibration: a fixed reference measured at a run's start and end, so its figures travel.

This machine's CPU speed moves with its host's load: the same replica's cost per request has
differed 5x between two days. Budgets fix how much CPU time a component gets, not how much work a
millisecond of it does. So a run measures one reference, one token replica's ``/token/ping``
under its budget, hit directly with wrk, before the first cell and after the last, and reports
its figures against it: throughput as scaling efficiency, costs as multiples of one ping. Two
references more than :data:`MAX_SPREAD` apart say the machine changed speed during the run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from authscale.lab.backend import Backend, StackPlan
from authscale.lab.bench import wrk
from authscale.lab.budgets import CpuBudgets
from authscale.lab.measure import pace

#: Two references further apart than this (relative to the first) mark the run.
MAX_SPREAD = 0.10
ROUTE = "/token/ping"
#: Enough connections to keep one throttled replica's queue full, few enough for wrk's one core.
CONNECTIONS = 8
#: Seconds the pace probe may outlive wrk's run (it is stopped when wrk returns).
PROBE_GRACE = 30.0


@dataclass(frozen=True)
class Reference:
    """One measurement of the reference: its rate, and the replica's CPU per ping."""

    at: str
    rate: float
    cpu_per_request: float
    #: The machine's pace meanwhile (:mod:`authscale.lab.measure.pace`); None if not measured.
    pace: float | None = None


@dataclass(frozen=True)
class Calibration:
    start: Reference
    end: Reference
    budgets: CpuBudgets | None

    @property
    def rate(self) -> float:
        """The reference rate the run's figures are divided by: the mean of the two."""
        return (self.start.rate + self.end.rate) / 2

    @property
    def cpu_per_request(self) -> float:
        return (self.start.cpu_per_request + self.end.cpu_per_request) / 2

    @property
    def spread(self) -> float:
        """How far the end moved from the start, as a share of the start."""
        return abs(self.end.rate - self.start.rate) / self.start.rate if self.start.rate else 1.0

    @property
    def steady(self) -> bool:
        return self.spread <= MAX_SPREAD

    @property
    def spread_at_one_pace(self) -> float | None:
        """The spread once the end's rate is taken back to the start's pace: how much of the
        move the pace probe accounts for. None without a pace at both ends."""
        if not (self.start.pace and self.end.pace and self.start.rate):
            return None
        end = self.end.rate * self.end.pace / self.start.pace
        return abs(end - self.start.rate) / self.start.rate

    def describe(self) -> str:
        budget = (
            f"under its budget of {self.budgets.replica:g} core" if self.budgets else "no budget"
        )
        return (
            f"one token replica's {ROUTE} ({budget}), hit directly by wrk with {CONNECTIONS} "
            f"connections: {self.start.rate:,.1f} req/s at the start ({self.start.at}), "
            f"{self.end.rate:,.1f} req/s at the end ({self.end.at}); spread "
            f"{self.spread:.1%} ({'within' if self.steady else 'OVER'} {MAX_SPREAD:.0%})"
            + self._cpu()
            + self._paces()
        )

    def _cpu(self) -> str:
        start, end = self.start.cpu_per_request, self.end.cpu_per_request
        if not (start and end) or start == end:
            return ""
        return f"; CPU per ping {start * 1e6:,.0f} then {end * 1e6:,.0f} µs"

    def _paces(self) -> str:
        at_one_pace = self.spread_at_one_pace
        if at_one_pace is None or self.start.pace is None or self.end.pace is None:
            return ""
        return (
            f"; pace {self.start.pace * 1e3:.2f} then {self.end.pace * 1e3:.2f} ms per unit, "
            f"so at the start's pace the spread would be {at_one_pace:.1%}"
        )


def measure(
    backend: Backend,
    run_dir: Path,
    seconds: float,
    budgets: CpuBudgets | None,
    server: str,
    env: dict[str, str],
) -> Reference:
    """One reference: a stack of one token replica and its issuer, the replica loaded alone."""
    plan = StackPlan(
        label="calibration",
        replicas={"token": 1, "issuer": 1},
        run_dir=run_dir,
        env=env,
        family="calibration",
        server=server,
        cpu_budgets=budgets,
    )
    with backend.stack(plan) as stack:
        (url,) = stack.replicas("token").values()
        # A short warm-up: the first requests import and allocate.
        wrk.run(url + ROUTE, seconds=2, connections=CONNECTIONS)
        before = stack.sample(os.getpid())[0]
        with pace.Probe(seconds + PROBE_GRACE, window=seconds) as probe:
            result = wrk.run(url + ROUTE, seconds=seconds, connections=CONNECTIONS)
        after = stack.sample(os.getpid())[0]
    used = after.minus(before).processes.get("token-1", 0.0)
    return Reference(
        at=time.strftime("%H:%M:%S UTC", time.gmtime()),
        rate=result.rate,
        cpu_per_request=used / result.requests if result.requests else 0.0,
        pace=pace.pace(probe.readings, 0.0, math.inf),
    )
