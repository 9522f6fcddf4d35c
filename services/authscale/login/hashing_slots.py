"""How many passwords this process may hash at once: the container's share, not the host's.

``os.cpu_count()`` names the host's CPUs: on a 16-CPU node a pod limited to one CPU and 384 MiB
would run 16 argon2id hashes of 19 MiB each at once. Here the count is the smallest of the CPUs
this process may run on, its cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
``cpu.cfs_period_us``) rounded up, and as many hashes as fit in half its cgroup memory limit (v2
``memory.max``, v1 ``memory.limit_in_bytes``); the other half is the process's own.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: v1 reports "no limit" as a huge number (a page-rounded 2**63 - 1); anything above is none.
UNLIMITED_BYTES = 2**60


def hashing_workers(hash_bytes: int, root: Path = CGROUP_ROOT) -> int:
    """Hashes to run at once: at least one, at most what the CPUs, quota and memory allow."""
    limits = [_cpus_available()]
    quota = cpu_quota(root)
    if quota is not None:
        limits.append(math.ceil(quota))
    memory = memory_limit(root)
    if memory is not None:
        limits.append(memory // 2 // max(1, hash_bytes))
    return max(1, min(limits))


def cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time per period the cgroup may use; ``None`` when unlimited or unknown."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else _ratio(quota, period)
    v1_quota, v1_period = _read_v1(root, "cpu.cfs_quota_us"), _read_v1(root, "cpu.cfs_period_us")
    if v1_quota is None or v1_period is None or v1_quota.startswith("-"):
        return None
    return _ratio(v1_quota, v1_period)


def memory_limit(root: Path = CGROUP_ROOT) -> int | None:
    """The cgroup's memory limit in bytes; ``None`` when unlimited or unknown."""
    value = _read(root / "memory.max") or _read(root / "memory" / "memory.limit_in_bytes")
    if value is None or value == "max":
        return None
    try:
        limit = int(value)
    except ValueError:
        return None
    return None if limit >= UNLIMITED_BYTES else limit


def _cpus_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _ratio(quota: str, period: str) -> float | None:
    try:
        value = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _read_v1(root: Path, name: str) -> str | None:
    # The v1 CPU controller is mounted as cpu/ or, joined with cpuacct, as cpu,cpuacct/.
    return _read(root / "cpu" / name) or _read(root / "cpu,cpuacct" / name)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
