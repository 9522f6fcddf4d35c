"""Container CPU from control groups: parsing both hierarchies, and this host's real counter."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from authscale.lab.measure import cgroups

HYBRID_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
COMBINED_MOUNTS = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n"
UNIFIED_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
DOCKER = "/docker/3f2a9c"


def test_a_v1_container_is_read_from_cpuacct_usage_in_nanoseconds() -> None:
    proc = f"4:memory:{DOCKER}\n2:cpuacct:{DOCKER}\n1:cpu:{DOCKER}\n0::/\n"
    counter = cgroups.counter(proc, HYBRID_MOUNTS)
    assert counter == cgroups.CpuCounter(
        Path("/sys/fs/cgroup/cpuacct/docker/3f2a9c/cpuacct.usage"), 1
    )
    combined = cgroups.counter(f"3:cpu,cpuacct:{DOCKER}\n", COMBINED_MOUNTS)
    assert combined.path == Path("/sys/fs/cgroup/cpu,cpuacct/docker/3f2a9c/cpuacct.usage")
    assert cgroups.parse_usage("2500000000\n", 1) == 2.5


def test_a_v2_container_is_read_from_cpu_stat_usage_usec() -> None:
    counter = cgroups.counter("0::/system.slice/docker-3f2a9c.scope\n", UNIFIED_MOUNTS)
    assert counter.path == Path("/sys/fs/cgroup/system.slice/docker-3f2a9c.scope/cpu.stat")
    assert counter.version == 2
    stat = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
    assert cgroups.parse_usage(stat, 2) == 1.5


def test_a_missing_hierarchy_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="no cgroup2 mount"):
        cgroups.counter("0::/docker/x\n", HYBRID_MOUNTS.replace("cgroup2", "tmpfs"))
    with pytest.raises(ValueError, match="no cpuacct or unified cgroup line"):
        cgroups.counter("4:memory:/docker/x\n", HYBRID_MOUNTS)


def test_a_stopped_container_reads_zero_rather_than_failing(tmp_path: Path) -> None:
    assert cgroups.CpuCounter(tmp_path / "gone" / "cpuacct.usage", 1).seconds() == 0.0


def test_containers_map_to_components_by_compose_service() -> None:
    label = cgroups.SERVICE_LABEL
    for service in ("session", "token", "issuer", "redis", "gateway"):
        assert cgroups.component_of({label: service, "other": "x"}) == service
    # One-shots and the load profile are not part of any cell's cost.
    for service in ("keys", "users", "locust", "locust-worker"):
        assert cgroups.component_of({label: service}) is None
    assert cgroups.component_of({}) is None
    assert cgroups.component_of(None) is None


def test_this_process_counter_grows_while_it_works() -> None:
    # The real kernel's counter for the group this test runs in, found the same way as a
    # container's: through /proc/PID/cgroup and the mount table.
    counter = cgroups.process_counter(os.getpid())
    before = counter.seconds()
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert counter.seconds() - before >= 0.1


def test_memory_is_the_groups_resident_anonymous_memory_in_both_hierarchies() -> None:
    proc = f"4:memory:{DOCKER}\n2:cpuacct:{DOCKER}\n0::/\n"
    v1 = cgroups.memory_counter(proc, HYBRID_MOUNTS)
    assert v1 == cgroups.MemoryCounter(Path("/sys/fs/cgroup/memory/docker/3f2a9c/memory.stat"), 1)
    # The page cache (Redis's append-only file) is left out: it grows with every write.
    stat_v1 = "cache 900000\nrss 1000\ntotal_cache 900000\ntotal_rss 4096\n"
    assert cgroups.parse_resident(stat_v1, 1) == 4096
    v2 = cgroups.memory_counter("0::/system.slice/docker-3f2a9c.scope\n", UNIFIED_MOUNTS)
    assert v2.path == Path("/sys/fs/cgroup/system.slice/docker-3f2a9c.scope/memory.stat")
    assert cgroups.parse_resident("anon 8192\nfile 900000\n", 2) == 8192
    with pytest.raises(ValueError, match="no anon line"):
        cgroups.parse_resident("file 1\n", 2)


def test_a_stopped_containers_memory_reads_zero(tmp_path: Path) -> None:
    assert cgroups.MemoryCounter(tmp_path / "gone" / "memory.stat", 1).bytes() == 0


def test_this_process_memory_counter_reads_a_real_figure() -> None:
    assert cgroups.process_memory(os.getpid()).bytes() > 0
