"""A capacity model from CPU per request: what a rate costs, and where each variant hits a wall.

Each component's CPU seconds per request is taken as a constant of the variant (the median over
its cells). A stack then serves at most the smallest of these rates:

- replicas: each replica is one Python process, so at most one core each: ``n / c_replica``;
- Redis: single-threaded, one core: ``1 / c_redis``;
- gateway and issuer: the same, per process;
- the machine: its cores, less what other tenants took, shared by *every* component including
  the load generator: ``cores / sum(c)``.

On a machine of its own the load generator is elsewhere and the last term loses its Locust share;
:func:`plan` sizes a deployment that way. :func:`check` predicts every measured cell and reports
the error, which says how far the per-request figures can be trusted to travel.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from authscale.lab.experiment.cells import CellResult

#: How busy a planned process may run: headroom for bursts, as capacity planners keep.
UTILISATION = 0.7
LOAD_GENERATOR = "locust"


@dataclass(frozen=True)
class Costs:
    """A variant's CPU seconds per request by component, and Redis commands per request."""

    variant: str
    role: str
    cpu: Mapping[str, float]
    redis_calls: float

    @property
    def replica(self) -> float:
        return self.cpu.get(self.role, 0.0)

    def total(self, *, with_generator: bool) -> float:
        return sum(
            seconds
            for component, seconds in self.cpu.items()
            if with_generator or component != LOAD_GENERATOR
        )

    @property
    def redis_ceiling(self) -> float | None:
        """Requests/s at which Redis's one core is full, or None if Redis is not on the path."""
        seconds = self.cpu.get("redis", 0.0)
        return 1 / seconds if seconds > 1e-9 and self.redis_calls >= 0.01 else None


def fit(results: Sequence[CellResult]) -> dict[str, Costs]:
    by_variant: dict[str, list[CellResult]] = {}
    for result in results:
        if result.requests:
            by_variant.setdefault(result.series, []).append(result)
    costs = {}
    for variant, cells in by_variant.items():
        components = {name for cell in cells for name in cell.cpu_seconds if name != "others"}
        costs[variant] = Costs(
            variant=variant,
            role=cells[0].role,
            cpu={
                name: statistics.median(cell.cpu_per_request(name) for cell in cells)
                for name in sorted(components)
            },
            redis_calls=statistics.median(cell.redis_calls_per_request for cell in cells),
        )
    return costs


@dataclass(frozen=True)
class Prediction:
    rate: float
    bound: str


def predict(costs: Costs, replicas: int, cores: float, issuers: int = 1) -> Prediction:
    """The rate the model expects on ``cores`` free cores, load generator included."""
    limits = {"machine": cores / costs.total(with_generator=True)}
    if costs.replica > 0:
        limits[f"{replicas} {costs.role} replica(s)"] = replicas / costs.replica
    for single, count in (("redis", 1), ("gateway", 1), ("issuer", issuers)):
        seconds = costs.cpu.get(single, 0.0)
        if seconds > 0:
            limits[single] = count / seconds
    bound = min(limits, key=lambda name: limits[name])
    return Prediction(limits[bound], bound)


@dataclass(frozen=True)
class Check:
    variant: str
    replicas: int
    measured: float
    predicted: float
    bound: str

    @property
    def error(self) -> float:
        return (self.predicted - self.measured) / self.measured if self.measured else math.inf


def check(results: Sequence[CellResult], costs: Mapping[str, Costs]) -> list[Check]:
    """Each measured cell against the model, given the cores other tenants left free in it."""
    checks = []
    for result in results:
        if result.series not in costs or not result.seconds:
            continue
        free = result.cores - result.cpu_seconds.get("others", 0.0) / result.seconds
        prediction = predict(costs[result.series], result.replicas, free)
        checks.append(
            Check(result.series, result.replicas, result.rate, prediction.rate, prediction.bound)
        )
    return checks


@dataclass(frozen=True)
class Plan:
    variant: str
    rate: float
    replicas: int
    redis_cores: float
    gateway_cores: float
    issuer_cores: float
    #: The rate at which one Redis (one core) is full; None where Redis is not per request.
    redis_ceiling: float | None


def plan(costs: Costs, rate: float, utilisation: float = UTILISATION) -> Plan:
    """What serving ``rate`` requests/s of this mix takes, the load generator elsewhere."""
    return Plan(
        variant=costs.variant,
        rate=rate,
        replicas=max(1, math.ceil(rate * costs.replica / utilisation)),
        redis_cores=rate * costs.cpu.get("redis", 0.0) / utilisation,
        gateway_cores=rate * costs.cpu.get("gateway", 0.0) / utilisation,
        issuer_cores=rate * costs.cpu.get("issuer", 0.0) / utilisation,
        redis_ceiling=costs.redis_ceiling,
    )
