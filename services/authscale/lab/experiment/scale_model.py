"""The scale model's capacity model: CPU per request against fixed budgets, calibrated.

With every component under a budget (:mod:`authscale.lab.budgets`), a cell serves at most
the smallest of these rates, each a budget over a cost per request:

- replicas: ``n x (replica budget - idle) / replica CPU per request``;
- Redis: ``(node budget - idle) / the busiest master's CPU per request``. The users' keys never
  spread evenly over the shards, so the busiest shard fills first and holds the rest back;
- the gateway and the issuer: their budget, less idle, over their cost.

*Idle* is what a process spends with no load (Redis's cron and cluster bus), measured in each
cell before its load; the cost per request is what the group spends above it.

**Costs are in the machine's pace.** This virtual machine's CPU does more or less work per second
as its host's load moves: a replica's CPU per request moved by a fifth between two cells of one
series. Each cell's window therefore carries its pace, the CPU time of a fixed unit of work run
beside the load (:mod:`authscale.lab.measure.pace`). Costs are fitted at the run's median pace
(each cell's scaled by median pace / its pace) and each cell is predicted at its own.

**Redis's cost falls as more users wait on it.** Under a budget of a few milliseconds a second,
Redis's work per wake-up (the event loop's turn, the append-only file's write, the replication
stream) is most of its cost, and it is shared by however many requests arrived while it was
throttled: with every simulated user keeping one request in flight, about as many as there are
users. So Redis's cost per request is ``fixed + shared / users``, fitted by least squares of the
relative residuals over the series' cells where Redis's budget was full (a constant where they
hold one user count).
The curve is read only over the user counts it was fitted on: below the fewest, ``shared /
users`` would grow without bound where Redis was never seen full, so a cell with fewer users
takes the cost at the fewest (and one with more, at the most).

A cost is fitted over the series' cells (a variant at one shard count) that a budget bounded
(the others are marked and left out): a replica's client for four Redis masters spends more per
request than for one. Of those cells it takes the ones where that group's budget alone was full;
where the series has none, the variant's such cells at any shard count; then the series' cells
where the group's budget was one of the full ones; then all of them. A group whose budget was
never full in any of the variant's cells gets no ceiling: its cost was only ever measured away
from one (the token variant's Redis, which serves its refreshes, is the case). Each cost is also
given as a multiple of the run's reference, one ping's CPU on one token replica
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
    less what they spend idle; Redis's busiest node), at the run's median pace, and the cores
    each group's busiest process spends idle."""

    series: str
    variant: str
    replicas: float
    #: Redis's cost per request is ``redis + redis_shared / users``.
    redis: float
    redis_shared: float
    gateway: float
    issuer: float
    #: How many budget-bound cells of the series there are.
    cells: int
    idle: Mapping[str, float]
    #: The groups whose budget was full in one of the variant's cells: those that get a ceiling.
    limits: frozenset[str]
    #: The pace the costs are at (CPU seconds per probe unit); None in a run without one.
    pace: float | None
    #: The fewest and the most users of the cells Redis's curve was fitted on.
    redis_users: tuple[int, int]

    def as_dict(self) -> dict[str, float]:
        return {
            "replicas": self.replicas,
            "redis": self.redis,
            "gateway": self.gateway,
            "issuer": self.issuer,
        }

    def redis_per_request(self, users: int) -> float:
        fewest, most = self.redis_users
        return self.redis + self.redis_shared / min(max(users, fewest, 1), max(most, 1))


def fit(results: Sequence[CellResult]) -> dict[str, ScaleCosts]:
    """Per series, each group's cost over the cells that group limited, at the median pace."""
    by_variant: dict[str, list[CellResult]] = {}
    by_series: dict[str, list[CellResult]] = {}
    for result in results:
        if result.requests and result.budget_bound:
            by_variant.setdefault(result.variant, []).append(result)
            by_series.setdefault(result.series, []).append(result)
    bound = [cell for cells in by_series.values() for cell in cells]
    paces = [cell.pace for cell in bound if cell.pace]
    pace = statistics.median(paces) if bound and len(paces) == len(bound) else None
    costs = {}
    for series, cells in by_series.items():
        variant = by_variant[cells[0].variant]
        # Redis's curve needs the series' own cells where it was full, whatever else was.
        redis_full = [cell for cell in cells if "redis" in cell.full_budgets()]
        redis_cells = redis_full or limited_by("redis", cells, variant)
        fixed, shared = _fixed_and_shared(
            [(cell.users, _at_pace("redis", cell, pace)) for cell in redis_cells]
        )
        costs[series] = ScaleCosts(
            series=series,
            variant=cells[0].variant,
            replicas=_median_cost("replicas", cells, variant, pace),
            redis=fixed,
            redis_shared=shared,
            gateway=_median_cost("gateway", cells, variant, pace),
            issuer=_median_cost("issuer", cells, variant, pace),
            cells=len(cells),
            idle={
                group: statistics.median(cell.idle_cores_of(group) for cell in cells)
                for group in GROUPS
            },
            limits=frozenset(group for cell in variant for group in cell.full_budgets()),
            pace=pace,
            redis_users=(
                min(cell.users for cell in redis_cells),
                max(cell.users for cell in redis_cells),
            ),
        )
    return costs


def _at_pace(group: str, cell: CellResult, pace: float | None) -> float:
    """The cell's cost for ``group`` as it would have been at ``pace``."""
    cost = cell.marginal_cpu_per_request(group)
    return cost * pace / cell.pace if pace and cell.pace else cost


def _median_cost(
    group: str, cells: Sequence[CellResult], variant: Sequence[CellResult], pace: float | None
) -> float:
    chosen = limited_by(group, cells, variant)
    return statistics.median(_at_pace(group, cell, pace) for cell in chosen)


def _fixed_and_shared(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """``fixed`` and ``shared`` of ``cost = fixed + shared / users`` by least squares of the
    *relative* residuals over (users, cost) points; neither below zero, and ``shared`` 0 for a
    single user count.

    Relative, because the model is judged by its relative error: a plain fit lets the dearest
    point (fewest users, several times the cost of the cheapest) set the slope, and leaves the
    cheapest, where Redis serves the most, a fifth off.
    """
    if len({users for users, _ in points}) < 2:
        return statistics.median(cost for _, cost in points), 0.0
    # Minimise sum(((fixed + shared / u) - y) / y)^2: regress 1 on (1 / y, 1 / (u y)).
    rows = [(1 / cost, 1 / (users * cost)) for users, cost in points if cost > 0]
    if len(rows) < 2:
        return statistics.median(cost for _, cost in points), 0.0
    s11 = sum(a * a for a, _ in rows)
    s12 = sum(a * b for a, b in rows)
    s22 = sum(b * b for _, b in rows)
    t1 = sum(a for a, _ in rows)
    t2 = sum(b for _, b in rows)
    det = s11 * s22 - s12 * s12
    if not det:
        return statistics.median(cost for _, cost in points), 0.0
    fixed = (t1 * s22 - t2 * s12) / det
    shared = (s11 * t2 - s12 * t1) / det
    if shared < 0:
        return statistics.median(cost for _, cost in points), 0.0
    if fixed < 0:
        # Through the origin: all of the cost is shared.
        return 0.0, t2 / s22
    return fixed, shared


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
    costs: ScaleCosts,
    budgets: CpuBudgets,
    replicas: int,
    users: int,
    pace: float | None = None,
    issuers: int = 1,
) -> Prediction:
    """The rate ``replicas`` replicas serve to ``users`` users at ``pace`` (the costs' own pace
    when not given)."""
    slower = pace / costs.pace if pace and costs.pace else 1.0
    limits: dict[str, float] = {}
    for group, count, cores, cost in (
        ("replicas", replicas, budgets.replica, costs.replicas),
        ("redis", 1, budgets.redis, costs.redis_per_request(users)),
        ("gateway", 1, budgets.gateway, costs.gateway),
        ("issuer", issuers, budgets.issuer, costs.issuer),
    ):
        if cost > NEGLIGIBLE and group in costs.limits:
            limits[group] = count * max(0.0, cores - costs.idle.get(group, 0.0)) / (cost * slower)
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
        prediction = predict(
            costs[result.series], budgets, result.replicas, result.users, result.pace
        )
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


def efficiency(
    results: Sequence[CellResult], at_one_pace: bool = False
) -> dict[tuple[str, int], float]:
    """(series, replicas) -> rate at n replicas / (n x rate at the series' fewest replicas).

    ``at_one_pace``: each rate first taken to one pace (times the cell's pace: a cell on a
    machine a fifth slower served a fifth less), so that the host's moves between two cells do
    not read as scaling; cells without a pace are left out."""

    def rate(cell: CellResult) -> float | None:
        if not at_one_pace:
            return cell.rate
        return cell.rate * cell.pace if cell.pace else None

    base: dict[str, CellResult] = {}
    for result in results:
        if result.series not in base or result.replicas < base[result.series].replicas:
            base[result.series] = result
    found = {}
    for result in results:
        first = base[result.series]
        first_rate, this_rate = rate(first), rate(result)
        if first_rate and this_rate is not None and first.replicas:
            per_replica = first_rate / first.replicas
            found[(result.series, result.replicas)] = this_rate / (result.replicas * per_replica)
    return found
