"""CPU budgets: every component of a local stack in a control group of its own, with a fixed quota.

On two shared cores, replicas that all draw from the same pool cannot show what replicas on
their own machines do: adding one adds nothing, and killing one speeds the others up. With a
budget per component (each replica, the issuer, each Redis node, the gateway) a replica gets the
same CPU time whatever the others do, so N replicas can serve N times one, until a budget they
share (Redis's) is full. The load generator runs outside the budgets.

A budget is a share of one core with a period: ``0.1`` at ``20 ms`` lets a component run 2 ms of
every 20 ms. The kernel stalls a group that used its quota until the period ends, so the period
bounds the stall a request can meet: at the kernel's default 100 ms, a 0.1 budget would stall a
replica for 90 ms at a time, which shows up as tail latency rather than as a lower rate. Too
short a period costs too: a replica woken for 1 ms of every 10 ms served a third fewer requests
per CPU second than one with 3 ms of every 30 ms (docs/scaling.md).

The control groups that hold the budgets are :mod:`authscale.lab.budget_groups`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil


class BudgetError(Exception):
    """A CPU budget cannot be given or held; the message says what to do about it."""


#: Components that get a budget of their own, one per process: a replica role, ``redis`` for
#: each Redis node, ``gateway`` for nginx.
BUDGETED = ("session", "token", "issuer", "redis", "gateway")
#: The budgets a :class:`CpuBudgets` holds: one for every replica of either role, and one each.
COMPONENTS = ("replica", "issuer", "redis", "gateway")
#: redis.conf lines for a Redis under a budget. Redis's housekeeping (expiry sampling, client
#: timeouts, a cluster node's pings) runs ``hz`` times a second whatever the load: at the default
#: 10 it cost 2.2-2.7 ms of CPU a second idle on this machine, 3.3-3.9 ms as a cluster node, which a
#: Redis with a core never notices but is most of a 0.005-core budget. The scale model scales that
#: fixed cost down with the rest: at hz 1 it cost 0.25-0.3 ms a second. Keys still expire on
#: access; only the sampling of untouched ones is slower.
REDIS_LINES = ("hz 1",)
HOW_TO_RUN = (
    "run as root (cgroup v1 cpu or cgroup v2 with the cpu controller), or as a user of a systemd "
    "machine with `systemd-run --user`; or run without budgets (--cpu-budgets none)"
)


#: The kernel refuses a quota under 1 ms and a period over 1 s.
MIN_QUOTA_US = 1000
MAX_PERIOD_US = 1_000_000


@dataclass(frozen=True)
class CpuBudgets:
    """Cores per component (``0.1`` = a tenth of one core) and the period quotas refill in.

    ``period_ms`` is the shortest period: a budget too small for a 1 ms quota in it (the
    kernel's floor) gets the shortest period that holds one (0.01 cores: 100 ms). The defaults
    are the scaling experiment's, chosen in docs/scaling.md.
    """

    replica: float = 0.1
    issuer: float = 0.2
    redis: float = 0.005
    gateway: float = 0.3
    period_ms: float = 20.0

    def __post_init__(self) -> None:
        for name, cores in self.components().items():
            if not MIN_QUOTA_US / MAX_PERIOD_US <= cores <= 64:
                raise BudgetError(
                    f"the {name} budget must be 0.001 to 64 cores (a 1 ms quota per second at "
                    f"least), got {cores:g}"
                )
        if not 1 <= self.period_ms <= 1000:
            raise BudgetError(f"the budget period must be 1 to 1000 ms, got {self.period_ms:g}")

    def cores(self, role: str) -> float:
        """The budget of one process of ``role``."""
        if role in ("session", "token"):
            return self.replica
        if role not in BUDGETED:
            raise BudgetError(f"no CPU budget for {role!r}; budgeted: {', '.join(BUDGETED)}")
        return float(getattr(self, role))

    def period_us(self, cores: float) -> int:
        """The period of a budget of ``cores``: ``period_ms``, or longer to hold a 1 ms quota."""
        return min(MAX_PERIOD_US, max(round(self.period_ms * 1000), ceil(MIN_QUOTA_US / cores)))

    def quota_us(self, cores: float) -> int:
        return round(cores * self.period_us(cores))

    def total(self, processes: Mapping[str, int]) -> float:
        """Cores the budgets of ``processes`` (role -> count) add up to."""
        return sum(self.cores(role) * count for role, count in processes.items())

    def components(self) -> dict[str, float]:
        """Cores per budget: ``replica`` (each), ``issuer``, ``redis`` (each node), ``gateway``."""
        return {name: float(getattr(self, name)) for name in COMPONENTS}

    def budget(self, cores: float) -> str:
        """``0.1 core (2 ms per 20 ms)``: a budget of ``cores`` with its quota and period."""
        quota, period = self.quota_us(cores) / 1000, self.period_us(cores) / 1000
        return f"{cores:g} core ({quota:g} ms per {period:g} ms)"

    def describe(self) -> str:
        """``replica 0.1 core (2 ms per 20 ms), ...``: each budget with its quota and period."""
        return ", ".join(
            f"{'redis (each node)' if name == 'redis' else name} {self.budget(cores)}"
            for name, cores in self.components().items()
        )

    @classmethod
    def parse(cls, text: str) -> CpuBudgets | None:
        """``replica=0.1,redis=0.005,period=20`` (the rest default); ``default`` for the
        defaults, ``none`` for no budgets."""
        if text.strip().lower() == "none":
            return None
        if text.strip().lower() == "default":
            return cls()
        values: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, _, value = part.partition("=")
            key = "period_ms" if name == "period" else name
            if key not in (*COMPONENTS, "period_ms"):
                raise BudgetError(
                    f"budgets look like replica=0.1,issuer=0.2,redis=0.005,gateway=0.3,period=20 "
                    f"(cores; the shortest period, in ms), got {part!r}"
                )
            try:
                values[key] = float(value.removesuffix("ms"))
            except ValueError:
                raise BudgetError(f"budget {name} must be a number, got {value!r}") from None
        return cls(**values)


def from_argument(text: str) -> CpuBudgets | None:
    """``--cpu-budgets``: :meth:`CpuBudgets.parse`, refused by argparse with its message."""
    try:
        return CpuBudgets.parse(text)
    except BudgetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
