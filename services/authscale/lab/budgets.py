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

Three ways to place a process (:func:`driver`): as root, a cgroup v2 group with the ``cpu``
controller (``cpu.max``) or a cgroup v1 ``cpu`` group (``cpu.cfs_quota_us``); without root, a
transient systemd scope (``systemd-run --user --scope -p CPUQuota=``). A process enters its
group before it executes its program, so every child and thread it makes is inside too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path


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
MOUNTS = Path("/proc/self/mounts")
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


@dataclass(frozen=True)
class Throttling:
    """What the kernel reports of one group: periods it ran in, and how many it was stalled."""

    periods: int = 0
    throttled: int = 0
    throttled_seconds: float = 0.0

    def minus(self, earlier: Throttling) -> Throttling:
        return Throttling(
            self.periods - earlier.periods,
            self.throttled - earlier.throttled,
            self.throttled_seconds - earlier.throttled_seconds,
        )

    def __add__(self, other: Throttling) -> Throttling:
        return Throttling(
            self.periods + other.periods,
            self.throttled + other.throttled,
            self.throttled_seconds + other.throttled_seconds,
        )


@dataclass
class Placement:
    """How one process enters its budget: a command line prefix, or a step before exec."""

    argv_prefix: Sequence[str] = ()
    enter: Callable[[], None] | None = None


@dataclass
class CgroupDriver:
    """Groups under ``parent`` of a v1 ``cpu`` hierarchy (``version`` 1) or a v2 one (2)."""

    parent: Path
    version: int
    name: str = field(init=False)
    made: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = f"cgroup v{self.version}"

    def place(self, process: str, cores: float, budgets: CpuBudgets) -> Placement:
        """The group of ``process`` with its quota set (again, for a process started again)."""
        group = self.parent / process
        try:
            group.mkdir(exist_ok=True)
            if group not in self.made:
                self.made.append(group)
            self._set_quota(group, budgets.quota_us(cores), budgets.period_us(cores))
        except OSError as error:
            # A group without its quota would let the process run unbounded: none at all.
            with contextlib.suppress(OSError):
                group.rmdir()
                self.made.remove(group)
            raise BudgetError(
                f"cannot give {process} its CPU budget in {group} ({self.name}): {error}; "
                f"{HOW_TO_RUN}"
            ) from error
        procs = str(group / "cgroup.procs")

        def enter() -> None:
            # In the child between fork and exec: the program and all it starts stay inside.
            with open(procs, "w") as file:
                file.write(str(os.getpid()))

        return Placement(enter=enter)

    def _set_quota(self, group: Path, quota_us: int, period_us: int) -> None:
        if self.version == 2:
            (group / "cpu.max").write_text(f"{quota_us} {period_us}")
            return
        # No quota while the period changes: the kernel refuses a quota above a new period.
        (group / "cpu.cfs_quota_us").write_text("-1")
        (group / "cpu.cfs_period_us").write_text(str(period_us))
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))

    def groups(self) -> list[Path]:
        """The groups made so far, then the parent: what :meth:`release` removes, in order."""
        return [*reversed(self.made), self.parent]

    def throttling(self, process: str) -> Throttling:
        try:
            text = (self.parent / process / "cpu.stat").read_text()
        except OSError:
            return Throttling()
        stat = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        if self.version == 2:
            seconds = int(stat.get("throttled_usec", 0)) / 1e6
        else:
            seconds = int(stat.get("throttled_time", 0)) / 1e9
        return Throttling(int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0)), seconds)

    def release(self) -> None:
        """Remove the groups (their processes have exited), then the parent."""
        remove_groups(self.groups())
        self.made.clear()


@dataclass
class SystemdDriver:
    """Transient user scopes: for a user without root on a systemd machine."""

    program: str
    name: str = "systemd-run --user --scope"

    def place(self, process: str, cores: float, budgets: CpuBudgets) -> Placement:
        return Placement(
            argv_prefix=(
                self.program,
                "--user",
                "--scope",
                "--quiet",
                "--collect",
                f"--unit=authscale-{os.getpid()}-{process}",
                f"--property=CPUQuota={cores * 100:g}%",
                f"--property=CPUQuotaPeriodSec={budgets.period_us(cores) // 1000}ms",
                "--",
            )
        )

    def throttling(self, process: str) -> Throttling:
        return Throttling()

    def groups(self) -> list[Path]:
        # systemd removes a scope (--collect) once its process has exited.
        return []

    def release(self) -> None:
        return None


Driver = CgroupDriver | SystemdDriver


#: How long removal waits for a group whose processes just exited. The kernel lets a task go
#: of its group only once its parent reaps it; a detached stack's children are reaped by init,
#: a moment after `authscale down` saw them stop.
RELEASE_SECONDS = 5.0


def remove_groups(groups: Sequence[Path]) -> None:
    """Remove each group once empty; one a process still holds after a few seconds stays."""
    deadline = time.monotonic() + RELEASE_SECONDS
    for group in groups:
        while True:
            try:
                group.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as error:
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    break
                time.sleep(0.05)


def driver(run_tag: str, mounts: str | None = None, euid: int | None = None) -> Driver:
    """The way this machine can hold budgets, with groups under ``authscale/<run_tag>``."""
    mounts = MOUNTS.read_text() if mounts is None else mounts
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        for point, version in _cpu_hierarchies(mounts):
            parent = point / "authscale" / run_tag
            if version == 2 and not _enable_cpu_v2(point, parent):
                continue
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            return CgroupDriver(parent, version)
    program = shutil.which("systemd-run")
    if program is not None and _user_systemd_answers():
        return SystemdDriver(program)
    raise BudgetError(f"CPU budgets need control groups this user can write; {HOW_TO_RUN}")


def _cpu_hierarchies(mounts: str) -> list[tuple[Path, int]]:
    """Mount points that can limit CPU: v2 first (the future), then v1's ``cpu`` controller."""
    found: list[tuple[Path, int]] = []
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        point, kind, options = Path(parts[1]), parts[2], parts[3].split(",")
        if kind == "cgroup2":
            found.insert(0, (point, 2))
        elif kind == "cgroup" and "cpu" in options:
            found.append((point, 1))
    return found


def _enable_cpu_v2(root: Path, parent: Path) -> bool:
    """Turn the cpu controller on from ``root`` down to ``parent``, so that the groups under
    ``parent`` have ``cpu.max``; False where it cannot be (the levels made here are removed).

    v2 hands a controller to a group's children only through ``cgroup.subtree_control`` of
    every level above them, and refuses to where a level holds processes of its own (the root
    of a container's namespace often does).
    """
    made: list[Path] = []
    try:
        if "cpu" not in (root / "cgroup.controllers").read_text().split():
            return False
        level = root
        for part in parent.relative_to(root).parts:
            # Enabling a controller that is on already changes nothing.
            (level / "cgroup.subtree_control").write_text("+cpu")
            level = level / part
            if not level.is_dir():
                level.mkdir()
                made.append(level)
        (level / "cgroup.subtree_control").write_text("+cpu")
    except OSError:
        remove_groups(made[::-1])
        return False
    return True


def _user_systemd_answers() -> bool:
    try:
        result = subprocess.run(
            ["systemctl", "--user", "is-system-running"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.stdout.strip() in (b"running", b"degraded")


def from_argument(text: str) -> CpuBudgets | None:
    """``--cpu-budgets``: :meth:`CpuBudgets.parse`, refused by argparse with its message."""
    try:
        return CpuBudgets.parse(text)
    except BudgetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
