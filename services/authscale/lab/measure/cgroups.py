"""CPU seconds of a container, from its control group: what the kernel charged to all of it.

A container's processes (nginx's reloaded workers, Hypercorn's children, a ``docker exec``) all
live in one control group, so its CPU counter misses nothing that /proc's process trees would
have to chase. Both hierarchies are read: cgroup v2 (``cpu.stat``'s ``usage_usec``) and v1
(``cpuacct.usage`` in nanoseconds), the group found from a process of the container through
``/proc/PID/cgroup`` and the mount table. The paths in ``/proc/PID/cgroup`` are relative to the
*reader's* cgroup namespace, which on the host is the root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Compose services whose containers the experiment measures, as components (cells.COMPONENTS).
MEASURED_SERVICES = frozenset({"session", "token", "issuer", "redis", "gateway"})
#: The label Compose (v1 and v2 alike) puts on each container it creates.
SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class CpuCounter:
    """One container's CPU counter file, and how to turn its content into seconds."""

    path: Path
    #: ``usage_usec`` line of a v2 ``cpu.stat``, or a v1 ``cpuacct.usage`` in nanoseconds.
    version: int

    def seconds(self) -> float:
        """CPU seconds so far, 0 if the group has gone (the container stopped)."""
        text = _read(self.path)
        return 0.0 if text is None else parse_usage(text, self.version)


def parse_usage(text: str, version: int) -> float:
    if version == 1:
        return int(text.strip()) / 1e9
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "usage_usec":
            return int(value) / 1e6
    raise ValueError("cpu.stat has no usage_usec line")


def counter(proc_cgroup: str, mounts: str) -> CpuCounter:
    """The CPU counter of the group a process is in.

    ``proc_cgroup`` is the text of ``/proc/PID/cgroup``, ``mounts`` that of ``/proc/self/mounts``.
    A v1 ``cpuacct`` line wins over a v2 ``0::`` line: on a hybrid host the unified hierarchy
    has no CPU controller.
    """
    group, version = _group(proc_cgroup, mounts, "cpuacct")
    return CpuCounter(group / ("cpuacct.usage" if version == 1 else "cpu.stat"), version)


def _group(proc_cgroup: str, mounts: str, controller: str) -> tuple[Path, int]:
    """The directory of a process's group for ``controller``, and the hierarchy's version."""
    unified = None
    for line in proc_cgroup.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            unified = path
        elif controller in controllers.split(","):
            return Path(_mount_point(mounts, "cgroup", controller)) / path.lstrip("/"), 1
    if unified is None:
        raise ValueError(f"no {controller} or unified cgroup line in {proc_cgroup!r}")
    return Path(_mount_point(mounts, "cgroup2", None)) / unified.lstrip("/"), 2


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _mount_point(mounts: str, kind: str, option: str | None) -> str:
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != kind:
            continue
        if option is None or option in fields[3].split(","):
            return fields[1]
    wanted = f"{kind} mount" + (f" with {option}" if option else "")
    raise ValueError(f"no {wanted} in the mount table")


def process_counter(pid: int, proc: Path = Path("/proc")) -> CpuCounter:
    """The CPU counter of the group ``pid`` (on this host) belongs to."""
    return counter((proc / str(pid) / "cgroup").read_text(), (proc / "self" / "mounts").read_text())


def component_of(labels: Mapping[str, str] | None) -> str | None:
    """The component a container counts towards, by its compose service; None if not measured."""
    service = (labels or {}).get(SERVICE_LABEL)
    return service if service in MEASURED_SERVICES else None


@dataclass(frozen=True)
class MemoryCounter:
    """One container's ``memory.stat``: its anonymous resident memory, what a leak grows.

    Not the group's whole usage: that counts the page cache too (Redis's append-only file,
    log files), which grows with every write and the kernel gives back under pressure.
    """

    path: Path
    version: int

    def bytes(self) -> int:
        """Resident anonymous bytes now, 0 if the group has gone (the container stopped)."""
        text = _read(self.path)
        return 0 if text is None else parse_resident(text, self.version)


def parse_resident(text: str, version: int) -> int:
    # v1 counts the group and its children as total_rss; v2's anon already covers the subtree.
    wanted = "total_rss" if version == 1 else "anon"
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == wanted:
            return int(value)
    raise ValueError(f"memory.stat has no {wanted} line")


def memory_counter(proc_cgroup: str, mounts: str) -> MemoryCounter:
    """The memory counter of the group a process is in (v1 ``memory`` controller, else v2)."""
    group, version = _group(proc_cgroup, mounts, "memory")
    return MemoryCounter(group / "memory.stat", version)


def process_memory(pid: int, proc: Path = Path("/proc")) -> MemoryCounter:
    """The memory counter of the group ``pid`` (on this host) belongs to."""
    return memory_counter(
        (proc / str(pid) / "cgroup").read_text(), (proc / "self" / "mounts").read_text()
    )
