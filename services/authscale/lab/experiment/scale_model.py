"""The scale model's capacity model: CPU per request against fixed budgets, calibrated.

With every component under a budget (:mod:`authscale.lab.budgets`), a cell serves at most
the smallest of these rates, each a budget over a cost per request:

- replicas: ``n x (replica budget - idle) / replica CPU per request``;
- Redis: ``shards x (node budget - idle) / Redis CPU per request``. Every simulated user keeps
  one request in flight, so under a full Redis every shard is full, whatever the users' spread;
- the gateway and the issuer: their budget, less idle, over their cost.

*Idle* is what a process spends with no load (Redis's cron and cluster bus), measured in each
cell before its load; the cost per request is what the group spends above it. Redis's cost is
its masters': a shard's replica applies the replication stream in a budget of its own.

A cost is a median over the series' cells (a variant at one shard count) that a budget bounded
(the others are marked and left out): a replica's client for four Redis masters spends more per
request than for one. Of those cells it takes the ones where that group's budget alone was full;
where the series has none, the variant's such cells at any shard count; then the series' cells
where the group's budget was one of the full ones; then all of them. A cost per request is not a
constant where the budget is not what stops the cell: Redis under light load wakes up for each
request and pays its per-wake-up work (the append-only file's write, the cluster's housekeeping)
every time, enough to fill a tiny budget at a fraction of the rate it serves once it is the
limit and answers many requests per wake-up. For the same reason a group whose budget was never full
in any of the variant's cells gets no ceiling: its cost was only ever measured away from one
(the token variant's Redis, which serves its refreshes, is the case). Each cost is also given
as a multiple of the run's reference, one ping's CPU on one token replica
(:mod:`.calibration`): the form that travels to another day's CPU speed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment.cells import CellResult

GROUPS = ("replicas", "redis", "gateway", "issuer")
#: Below this many CPU seconds per request a component is not on the request path.
NEGLIGIBLE = 1e-7


@dataclass(frozen=True)
class ScaleCosts:
    """A series' CPU seconds per request on each budgeted group (all its processes summed,
    less what they spend idle), and the cores each group's busiest process spends idle."""

    series: str
    variant: str
    replicas: float
    redis: float
    gateway: float
    issuer: float
    #: How many budget-bound cells of the series there are.
    cells: int
    idle: Mapping[str, float]
    #: The groups whose budget was full in one of the variant's cells: those that get a ceiling.
    limits: frozenset[str]

    def as_dict(self) -> dict[str, float]:
        return {
            "replicas": self.replicas,
            "redis": self.redis,
            "gateway": self.gateway,
            "issuer": self.issuer,
        }


def fit(results: Sequence[CellResult]) -> dict[str, ScaleCosts]:
    """Per series, the median cost of each group over the cells that group limited."""
    by_variant: dict[str, list[CellResult]] = {}
    by_series: dict[str, list[CellResult]] = {}
    for result in results:
        if result.requests and result.budget_bound:
            by_variant.setdefault(result.variant, []).append(result)
            by_series.setdefault(result.series, []).append(result)
    costs = {}
    for series, cells in by_series.items():
        variant = by_variant[cells[0].variant]
        costs[series] = ScaleCosts(
            series=series,
            variant=cells[0].variant,
            **{
                group: statistics.median(
                    cell.marginal_cpu_per_request(group)
                    for cell in limited_by(group, cells, variant)
                )
                for group in GROUPS
            },
            cells=len(cells),
            idle={
                group: statistics.median(cell.idle_cores_of(group) for cell in cells)
                for group in GROUPS
            },
            limits=frozenset(group for cell in variant for group in cell.full_budgets()),
        )
    return costs


def limited_by(
    group: str, cells: Sequence[CellResult], variant: Sequence[CellResult] = ()
) -> Sequence[CellResult]:
    """The series' cells whose only full budget was ``group``'s; else the variant's such cells;
    else the series' cells where it was one of the full ones; else all of them."""
    for pool in (cells, variant):
        alone = [cell for cell in pool if cell.full_budgets() == {group}]
        if alone:
            return alone
    return [cell for cell in cells if group in cell.full_budgets()] or cells


@dataclass(frozen=True)
class Prediction:
    rate: float
    bound: str


def predict(
    costs: ScaleCosts, budgets: CpuBudgets, replicas: int, shards: int, issuers: int = 1
) -> Prediction:
    limits: dict[str, float] = {}
    for group, count, cores, cost in (
        ("replicas", replicas, budgets.replica, costs.replicas),
        ("redis", max(1, shards), budgets.redis, costs.redis),
        ("gateway", 1, budgets.gateway, costs.gateway),
        ("issuer", issuers, budgets.issuer, costs.issuer),
    ):
        if cost > NEGLIGIBLE and group in costs.limits:
            limits[group] = count * max(0.0, cores - costs.idle.get(group, 0.0)) / cost
    if not limits:
        return Prediction(math.inf, "none")
    bound = min(limits, key=lambda group: limits[group])
    return Prediction(limits[bound], bound)


@dataclass(frozen=True)
class Check:
    series: str
    variant: str
    replicas: int
    shards: int
    measured: float
    predicted: float
    #: What the model says bounds the cell, and what the measurement says (the fullest budget).
    model_bound: str
    measured_bound: str
    #: Left out of the fit: the machine or the load generator, not a budget, was the limit.
    marked: bool

    @property
    def error(self) -> float:
        return (self.predicted - self.measured) / self.measured if self.measured else math.inf


def check(
    results: Sequence[CellResult], costs: Mapping[str, ScaleCosts], budgets: CpuBudgets
) -> list[Check]:
    checks = []
    for result in results:
        if result.series not in costs:
            continue
        prediction = predict(costs[result.series], budgets, result.replicas, result.shards)
        checks.append(
            Check(
                series=result.series,
                variant=result.variant,
                replicas=result.replicas,
                shards=result.shards,
                measured=result.rate,
                predicted=prediction.rate,
                model_bound=prediction.bound,
                measured_bound=result.bound,
                marked=not result.budget_bound,
            )
        )
    return checks


def largest_error(checks: Sequence[Check]) -> float | None:
    """The largest error over the unmarked cells: the figure the model is judged by."""
    errors = [abs(c.error) for c in checks if not c.marked]
    return max(errors) if errors else None


def efficiency(results: Sequence[CellResult]) -> dict[tuple[str, int], float]:
    """(series, replicas) -> rate at n replicas / (n x rate at the series' fewest replicas)."""
    base: dict[str, CellResult] = {}
    for result in results:
        if result.series not in base or result.replicas < base[result.series].replicas:
            base[result.series] = result
    found = {}
    for result in results:
        first = base[result.series]
        per_replica = first.rate / first.replicas if first.replicas else 0.0
        if per_replica > 0:
            found[(result.series, result.replicas)] = result.rate / (result.replicas * per_replica)
    return found
