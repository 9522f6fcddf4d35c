"""The hashing pool follows the container's limits (cgroup v1 and v2), and a full one sheds."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart import Quart

from authscale.login.hashing_slots import cpu_quota, hashing_workers, memory_limit
from authscale.session.app import create_app
from tests.conftest import PASSWORD, create_user, make_settings

MIB = 1024 * 1024
HASH = 19 * MIB  # OWASP's argon2id minimum


def cgroup(root: Path, files: dict[str, str]) -> Path:
    """A cgroup filesystem laid out as the kernel shows it, in a temporary directory."""
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content + "\n")
    return root


def test_a_v2_pod_limited_to_one_cpu_and_384_mib_hashes_one_at_a_time(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"cpu.max": "100000 100000", "memory.max": str(384 * MIB)})
    assert cpu_quota(root) == 1.0
    assert memory_limit(root) == 384 * MIB
    assert hashing_workers(HASH, root) == 1


def test_a_v1_quota_of_one_and_a_half_cpus_rounds_up(tmp_path: Path) -> None:
    root = cgroup(
        tmp_path,
        {
            "cpu,cpuacct/cpu.cfs_quota_us": "150000",
            "cpu,cpuacct/cpu.cfs_period_us": "100000",
            "memory/memory.limit_in_bytes": str(2**63 - 4096),  # v1's "no limit"
        },
    )
    assert cpu_quota(root) == 1.5
    assert memory_limit(root) is None
    assert hashing_workers(HASH, root) == min(2, len(os.sched_getaffinity(0)))


def test_memory_bounds_the_pool_below_the_cpus(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"cpu.max": "max 100000", "memory.max": str(40 * MIB)})
    assert cpu_quota(root) is None
    assert hashing_workers(HASH, root) == 1  # 20 MiB for hashing holds one 19 MiB hash


def test_no_cgroup_at_all_means_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path) is None and memory_limit(tmp_path) is None
    assert hashing_workers(HASH, tmp_path) >= 1


def test_unlimited_v1_quota_and_garbage_are_no_limit(tmp_path: Path) -> None:
    root = cgroup(
        tmp_path,
        {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000", "memory.max": "junk"},
    )
    assert cpu_quota(root) is None and memory_limit(root) is None


@pytest.fixture
async def one_slot_app(redis_url: str) -> AsyncIterator[Quart]:
    """One hashing thread, no queue, and a hash slow enough that logins overlap."""
    settings = make_settings(
        redis_url,
        AUTHSCALE_HASHING_WORKERS="1",
        AUTHSCALE_HASHING_QUEUE="0",
        AUTHSCALE_ARGON2_MEMORY_KIB=str(32 * 1024),
        AUTHSCALE_ARGON2_TIME_COST="4",
        AUTHSCALE_LOGIN_FAILURES_PER_WINDOW="1000",
    )
    application = create_app(settings)
    async with application.test_app():
        yield application


async def test_a_full_pool_sheds_logins_at_once_with_retry_after(
    one_slot_app: Quart, redis_url: str
) -> None:
    username = await create_user(redis_url)

    async def login() -> int:
        response = await one_slot_app.test_client().post(
            "/session/login", json={"username": username, "password": PASSWORD}
        )
        if response.status_code == 503:
            assert response.headers["Retry-After"] == "1"
            assert (await response.get_json())["message"].startswith("Too many logins")
        return response.status_code

    statuses = Counter(await asyncio.wait_for(asyncio.gather(*(login() for _ in range(10))), 60))
    print(f"10 logins at once on one hashing slot: {dict(statuses)}")
    assert statuses[200] >= 1
    assert statuses[503] >= 1
    assert statuses[200] + statuses[503] == 10
    # Shed logins cost no budget and the pool is free again afterwards.
    assert await login() == 200
