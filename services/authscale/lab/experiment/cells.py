"""A cell of an experiment (a variant at a replica count, on a server) and what it measured."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from authscale.core.servers import DEFAULT_SERVER
from authscale.lab.load import LocustFigures
from authscale.lab.measure import commandstats
from authscale.lab.measure.cpu import CpuSample

#: Components in the order plots stack them: the replicas first, the load generator last.
COMPONENTS = ("session", "token", "issuer", "redis", "gateway", "locust")


@dataclass(frozen=True)
class Variant:
    """What the experiment compares: a name, the replica role serving it, and its settings."""

    name: str
    role: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    variant: Variant
    replicas: int
    server: str = DEFAULT_SERVER
    #: Whether the run measures more than one server, so names must tell the servers apart.
    named_server: bool = False

    @property
    def series(self) -> str:
        """What the capacity model and the plots group by: the variant, on its server if several."""
        return f"{self.variant.name} on {self.server}" if self.named_server else self.variant.name

    @property
    def label(self) -> str:
        return f"{self.series} x{self.replicas}"

    @property
    def slug(self) -> str:
        suffix = f"-{self.server}" if self.named_server else ""
        return f"{self.variant.name}-{self.replicas}{suffix}"

    def stack_replicas(self, issuers: int) -> dict[str, int]:
        if self.variant.role == "token":
            return {"token": self.replicas, "issuer": issuers}
        return {self.variant.role: self.replicas}


def grid(
    variants: Sequence[Variant], replicas: Sequence[int], servers: Sequence[str]
) -> list[Cell]:
    """Every variant at every replica count on every server, servers innermost so that the
    servers' cells of one variant and count run back to back, under the same machine load."""
    named = len(servers) > 1
    return [
        Cell(variant, count, server, named)
        for variant in variants
        for count in replicas
        for server in servers
    ]


@dataclass(frozen=True)
class CellResult:
    variant: str
    role: str
    replicas: int
    users: int
    seconds: float
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    #: CPU seconds per component over the window; "others" is what the machine spent on
    #: processes that are not ours (other tenants of a shared machine).
    cpu_seconds: Mapping[str, float]
    machine_busy_seconds: float
    cores: float
    redis_calls: Mapping[str, int]
    by_name: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    server: str = DEFAULT_SERVER
    #: The cell's :attr:`Cell.series`: the variant, with its server when several were measured.
    series: str = ""

    def __post_init__(self) -> None:
        if not self.series:
            object.__setattr__(self, "series", self.variant)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def cpu_per_request(self, component: str) -> float:
        return self.cpu_seconds.get(component, 0.0) / self.requests if self.requests else 0.0

    @property
    def cpu_per_request_total(self) -> float:
        ours = sum(v for k, v in self.cpu_seconds.items() if k != "others")
        return ours / self.requests if self.requests else 0.0

    @property
    def redis_calls_per_request(self) -> float:
        return sum(self.redis_calls.values()) / self.requests if self.requests else 0.0

    @classmethod
    def from_window(
        cls,
        cell: Cell,
        users: int,
        figures: LocustFigures,
        samples: Sequence[tuple[CpuSample, dict[str, int]]],
    ) -> CellResult:
        start = _at(samples, figures.started)
        stop = _at(samples, figures.stopped)
        usage = stop[0].minus(start[0])
        cpu_seconds = dict(usage.components)
        cpu_seconds["others"] = max(0.0, usage.machine_busy - sum(usage.components.values()))
        seconds = figures.seconds
        return cls(
            variant=cell.variant.name,
            role=cell.variant.role,
            replicas=cell.replicas,
            users=users,
            seconds=seconds,
            requests=figures.requests,
            failures=figures.failures,
            p50_ms=figures.p50_ms,
            p95_ms=figures.p95_ms,
            p99_ms=figures.p99_ms,
            cpu_seconds=cpu_seconds,
            machine_busy_seconds=usage.machine_busy,
            cores=usage.machine_total / seconds if seconds > 0 else 0.0,
            redis_calls=commandstats.delta(start[1], stop[1]),
            by_name=figures.by_name,
            server=cell.server,
            series=cell.series,
        )


def _at(
    samples: Sequence[tuple[CpuSample, dict[str, int]]], moment: float
) -> tuple[CpuSample, dict[str, int]]:
    """The readings at ``moment``, interpolated linearly between the two samples around it."""
    if not samples:
        raise ValueError("no samples were taken during the run")
    before = max((s for s in samples if s[0].at <= moment), key=lambda s: s[0].at, default=None)
    after = min((s for s in samples if s[0].at >= moment), key=lambda s: s[0].at, default=None)
    if before is None or after is None or after[0].at == before[0].at:
        return before or after  # type: ignore[return-value]
    share = (moment - before[0].at) / (after[0].at - before[0].at)

    def between(a: float, b: float) -> float:
        return a + (b - a) * share

    usage = CpuSample(
        at=moment,
        components={
            name: between(before[0].components[name], after[0].components.get(name, 0.0))
            for name in before[0].components
        },
        machine_busy=between(before[0].machine_busy, after[0].machine_busy),
        machine_total=between(before[0].machine_total, after[0].machine_total),
    )
    calls = {
        name: round(between(before[1].get(name, 0), after[1].get(name, 0)))
        for name in set(before[1]) | set(after[1])
    }
    return usage, calls
