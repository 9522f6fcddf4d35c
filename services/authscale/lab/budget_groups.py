"""The control groups that hold CPU budgets (:mod:`authscale.lab.budgets`), one per process.

Three ways to place a process (:func:`driver`): as root, a cgroup v2 group with the ``cpu``
controller (``cpu.max``) or a cgroup v1 ``cpu`` group (``cpu.cfs_quota_us``); without root, a
transient systemd scope (``systemd-run --user --scope -p CPUQuota=``). A process enters its
group before it executes its program, so every child and thread it makes is inside too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authscale.lab.budgets import HOW_TO_RUN, BudgetError, CpuBudgets

MOUNTS = Path("/proc/self/mounts")


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
