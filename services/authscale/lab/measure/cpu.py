"""CPU: which cores a process may use, and how many CPU seconds a process tree has spent.

Everything here reads Linux's /proc, the same numbers ``top`` shows. A process tree is a pid and
its descendants at the time of reading: Hypercorn serves from a child process, nginx from worker
children, ``locust --processes`` from forked workers, and all of their time counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def usable_cpus() -> list[int]:
    """The cores this process may run on (a container or taskset may allow fewer than exist)."""
    return sorted(os.sched_getaffinity(0))


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents first; empty if ``pid`` has exited."""
    tree: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        if not (PROC / str(current)).exists():
            continue
        tree.append(current)
        pending.extend(_children(current))
    return tree


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return children
    for task in tasks:
        try:
            children.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def pin(pid: int, cpus: Iterable[int]) -> None:
    """Confine ``pid``, its descendants and all their threads to ``cpus``.

    ``sched_setaffinity`` applies to one thread; threads and children created later inherit it.
    """
    allowed = set(cpus)
    for process in descendants(pid):
        try:
            threads = [int(task.name) for task in (PROC / str(process) / "task").iterdir()]
        except OSError:
            continue
        for thread in threads:
            try:
                os.sched_setaffinity(thread, allowed)
            except (ProcessLookupError, PermissionError):
                continue


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` alone (all its threads), 0 if it has exited.

    From the scheduler's nanosecond count of each thread (``schedstat``) where the kernel keeps
    it: /proc's user and system times count in clock ticks (10 ms), too coarse for a process
    under a budget of a hundredth of a core, whose whole budget is one tick a second.
    """
    precise = _schedstat_seconds(pid)
    if precise is not None:
        return precise
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses; the fields after the last ')' do not.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _schedstat_seconds(pid: int) -> float | None:
    """The sum over ``pid``'s live threads of their run time, or None without schedstat."""
    total = 0
    try:
        threads = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return None
    for thread in threads:
        try:
            total += int((thread / "schedstat").read_text().split()[0])
        except FileNotFoundError:
            # Without CONFIG_SCHED_INFO no thread has one; a thread that just exited neither.
            if not (thread / "stat").exists():
                continue
            return None
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(process) for process in descendants(pid))


def machine_busy_seconds(core: int | None = None) -> tuple[float, float]:
    """(busy, total) CPU seconds since boot of one core, or of the machine (all cores summed).

    Busy excludes idle and iowait; what our processes did not use of it, something else did.
    """
    label = "cpu" if core is None else f"cpu{core}"
    for line in (PROC / "stat").read_text().splitlines():
        name, *values = line.split()
        if name == label:
            fields = [int(value) for value in values]
            total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
            idle = fields[3] + fields[4]
            return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS
    raise ValueError(f"no {label} line in /proc/stat")


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds spent so far by each component, and by the machine, at one moment."""

    at: float
    components: Mapping[str, float]
    machine_busy: float
    machine_total: float
    #: Each process of the stack on its own (``session-1``, ``redis-7001``), where the backend
    #: tells them apart: what a CPU budget per process is compared with.
    processes: Mapping[str, float] = field(default_factory=dict)

    def minus(self, earlier: CpuSample) -> CpuSample:
        return CpuSample(
            at=self.at - earlier.at,
            components=_minus(self.components, earlier.components),
            machine_busy=self.machine_busy - earlier.machine_busy,
            machine_total=self.machine_total - earlier.machine_total,
            processes=_minus(self.processes, earlier.processes),
        )


def _minus(later: Mapping[str, float], earlier: Mapping[str, float]) -> dict[str, float]:
    return {name: later[name] - earlier.get(name, 0.0) for name in later}


def sample(
    components: Mapping[str, Iterable[int]],
    at: float,
    processes: Mapping[str, tuple[str, int]] | None = None,
) -> CpuSample:
    """CPU seconds of each component, given the root pids of its process trees; ``processes``
    (name -> component, root pid) are read one by one and added to their components."""
    busy, total = machine_busy_seconds()
    each = {name: tree_cpu_seconds(pid) for name, (_, pid) in (processes or {}).items()}
    totals = {name: sum(tree_cpu_seconds(pid) for pid in pids) for name, pids in components.items()}
    for name, (component, _) in (processes or {}).items():
        totals[component] = totals.get(component, 0.0) + each[name]
    return CpuSample(
        at=at, components=totals, machine_busy=busy, machine_total=total, processes=each
    )
