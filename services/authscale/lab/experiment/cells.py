"""A cell of an experiment (a variant at a replica count, on a server) and what it measured."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from authscale.core.servers import DEFAULT_SERVER
from authscale.lab.backend import role_of
from authscale.lab.budgets import BUDGETED, CpuBudgets
from authscale.lab.load import LocustFigures
from authscale.lab.measure import commandstats
from authscale.lab.measure.cpu import CpuSample

#: Components in the order plots stack them: the replicas first, the load generator last.
COMPONENTS = ("session", "token", "issuer", "redis", "gateway", "locust")
#: A budget used this much of its quota over the window was the limit: the kernel throttles
#: a group slightly before its quota is spent, and a full one reads 0.95-1.0.
FULL_BUDGET = 0.9
#: Under this share of the machine idle, the machine (not a budget) may have been the limit.
IDLE_FLOOR = 0.25
#: A cell whose measured window still held logins: its warm-up was too short.
LOGINS_IN_WINDOW = "logins in window"


@dataclass(frozen=True)
class Variant:
    """What the experiment compares: a name, the replica role serving it, and its settings."""

    name: str
    role: str
    env: Mapping[str, str] = field(default_factory=dict)
    #: Whether every request reaches Redis (sessions, the denylist): the shard count matters.
    redis_per_request: bool = True


@dataclass(frozen=True)
class Cell:
    variant: Variant
    replicas: int
    server: str = DEFAULT_SERVER
    #: Whether the run measures more than one server, so names must tell the servers apart.
    named_server: bool = False
    #: 0: one Redis; N: a Redis Cluster of N masters (:mod:`authscale.lab.stack.cluster`).
    shards: int = 0
    #: Whether the run measures more than one shard count, so names must tell them apart.
    named_shards: bool = False

    @property
    def series(self) -> str:
        """What the capacity model and the plots group by: the variant, on its server if several,
        with its shard count if several."""
        series = self.variant.name
        if self.named_shards:
            series += f", {self.shards} shard{'s' if self.shards != 1 else ''}"
        return f"{series} on {self.server}" if self.named_server else series

    @property
    def label(self) -> str:
        return f"{self.series} x{self.replicas}"

    @property
    def slug(self) -> str:
        suffix = f"-{self.server}" if self.named_server else ""
        shards = f"-{self.shards}shards" if self.named_shards else ""
        return f"{self.variant.name}-{self.replicas}{shards}{suffix}"

    def stack_replicas(self, issuers: int) -> dict[str, int]:
        if self.variant.role == "token":
            return {"token": self.replicas, "issuer": issuers}
        return {self.variant.role: self.replicas}


def grid(
    variants: Sequence[Variant],
    replicas: Sequence[int],
    servers: Sequence[str],
    shards: Sequence[int] = (0,),
) -> list[Cell]:
    """Every variant at every replica count on every server, servers innermost so that the
    servers' cells of one variant and count run back to back, under the same machine load.

    A variant that touches Redis per request runs at every shard count; one that does not (the
    plain token variant: its replicas never call Redis) at the first only."""
    named_servers = len(servers) > 1
    named_shards = len(shards) > 1
    return [
        Cell(variant, count, server, named_servers, shard_count, named_shards)
        for variant in variants
        for shard_count in (shards if variant.redis_per_request else shards[:1])
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
    shards: int = 0
    #: CPU seconds of each process over the window (``token-3``, ``redis-7001``, ``gateway``).
    process_cpu_seconds: Mapping[str, float] = field(default_factory=dict)
    #: Each budgeted process's budget in cores; empty in a run without budgets.
    budgets: Mapping[str, float] = field(default_factory=dict)
    #: Each process's CPU per second before the load (cores): what it spends on its own.
    idle_cores: Mapping[str, float] = field(default_factory=dict)
    #: The machine's pace over the window: CPU seconds per unit of the probe
    #: (:mod:`authscale.lab.measure.pace`); None where it was not measured.
    pace: float | None = None

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

    def marginal_cpu_per_request(self, group: str) -> float:
        """CPU per request of a group's processes, less what they spend idle (``replicas``,
        ``redis``, ``gateway``, ``issuer``); of Redis, its busiest node's alone."""
        if not self.requests:
            return 0.0
        names = self.serving(group)
        used = sum(self.process_cpu_seconds[name] for name in names)
        idle = sum(self.idle_cores.get(name, 0.0) for name in names) * self.seconds
        return max(0.0, used - idle) / self.requests

    def serving(self, group: str) -> list[str]:
        """The group's processes whose budgets bound it: all of them, but of Redis only the
        busiest node, a master. The users' keys never spread evenly over the shards, so the
        busiest shard fills first and holds the others back; its replica applies the
        replication stream in a budget of its own. Taking the busiest follows a failover."""
        names = [name for name in self.process_cpu_seconds if _group_of(name) == group]
        if group == "redis" and names:
            return [max(names, key=lambda name: self.process_cpu_seconds[name])]
        return names

    def full_budgets(self) -> set[str]:
        """The groups whose budget was full over the window."""
        return {group for group, share in self.budget_shares().items() if share >= FULL_BUDGET}

    def idle_cores_of(self, group: str) -> float:
        """The idle cores of the group's busiest process (what its budget loses to itself)."""
        found = [cores for name, cores in self.idle_cores.items() if _group_of(name) == group]
        return max(found, default=0.0)

    @property
    def idle_share(self) -> float:
        """The share of the machine's CPU nobody used over the window."""
        total = self.cores * self.seconds
        return max(0.0, 1 - self.machine_busy_seconds / total) if total > 0 else 0.0

    def budget_shares(self) -> dict[str, float]:
        """Each budgeted group's share of its budget over the window: the replicas' mean (the
        gateway spreads requests evenly), the busiest Redis node, the gateway, the issuer."""
        shares: dict[str, list[float]] = {}
        for name, cores in self.budgets.items():
            used = self.process_cpu_seconds.get(name, 0.0) / self.seconds if self.seconds else 0.0
            shares.setdefault(_group_of(name), []).append(used / cores)
        return {
            group: (statistics.fmean(values) if group == "replicas" else max(values))
            for group, values in shares.items()
        }

    @property
    def logins_in_window(self) -> int:
        """Logins answered in the measured window: users were still signing in after the
        warm-up, so the window did not measure the steady mix."""
        return sum(count for name, (count, _) in self.by_name.items() if name.endswith(" login"))

    @property
    def bound(self) -> str:
        """What limited the cell: ``logins in window`` when the warm-up was too short; else a
        full budget (``replicas``, ``redis``, ...); else ``machine`` when under a quarter of it
        was idle, else ``load generator``."""
        if self.logins_in_window:
            return LOGINS_IN_WINDOW
        shares = self.budget_shares()
        if shares:
            fullest = max(shares, key=lambda group: shares[group])
            if shares[fullest] >= FULL_BUDGET:
                return fullest
        return "machine" if self.idle_share < IDLE_FLOOR else "load generator"

    @property
    def budget_bound(self) -> bool:
        """True when a budget, not the machine, the load generator or unfinished logins, was
        the limit."""
        return self.bound not in ("machine", "load generator", LOGINS_IN_WINDOW)

    @classmethod
    def from_window(
        cls,
        cell: Cell,
        users: int,
        figures: LocustFigures,
        samples: Sequence[tuple[CpuSample, dict[str, int]]],
        budgets: CpuBudgets | None = None,
        idle_cores: Mapping[str, float] | None = None,
        pace: float | None = None,
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
            shards=cell.shards,
            process_cpu_seconds=dict(usage.processes),
            budgets={
                name: budgets.cores(role_of(name))
                for name in usage.processes
                if role_of(name) in BUDGETED
            }
            if budgets is not None
            else {},
            idle_cores=dict(idle_cores or {}),
            pace=pace,
        )


def _group_of(process: str) -> str:
    role = role_of(process)
    return "replicas" if role in ("session", "token") else role


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
        processes={
            name: between(before[0].processes[name], after[0].processes.get(name, 0.0))
            for name in before[0].processes
        },
    )
    calls = {
        name: round(between(before[1].get(name, 0), after[1].get(name, 0)))
        for name in set(before[1]) | set(after[1])
    }
    return usage, calls
