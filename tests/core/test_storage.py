"""RedisStore against a real redis-server: shared pipelines, bounded waits, 503 on outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from authscale.core.errors import DependencyUnavailable
from authscale.core.settings import RedisSettings
from authscale.core.storage import RedisStore
from authscale.lab.stack import topology
from authscale.lab.stack.processes import free_port
from tests.conftest import CLUSTER, SINGLE
from tests.redis_cluster import running_cluster

#: The contract holds on one Redis and on a Redis Cluster (tests/conftest.py).
REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)


async def test_commands_of_one_turn_share_a_pipeline_and_keep_their_own_answers(
    redis_url: str,
) -> None:
    store = RedisStore(RedisSettings(url=redis_url, timeout=2))
    store.open()
    try:
        async with store.reaching("setup") as redis:
            for n in range(50):  # one by one: on a cluster the keys live in many slots
                await redis.set(f"key:{n}", f"value:{n}")
        answers = await asyncio.gather(
            *(store.command("test_get", "GETEX", f"key:{n}", "PX", 60_000) for n in range(50)),
            store.command("test_get", "GETEX", "missing", "PX", 60_000),
        )
        assert answers == [f"value:{n}" for n in range(50)] + [None]
        async with store.reaching("check") as redis:
            assert 0 < await redis.pttl("key:7") <= 60_000
    finally:
        await store.close()


async def test_a_failing_command_fails_only_as_a_redis_error(redis_url: str) -> None:
    store = RedisStore(RedisSettings(url=redis_url, timeout=2))
    store.open()
    try:
        # A server's refusal, or on a cluster the client's: a command with no key to route by.
        refused = r"wrong number of arguments|unknown command|Missing key"
        with pytest.raises(Exception, match=refused):
            await store.command("test_bad", "GETEX")
        # The pipeline machinery is still usable after a refused command.
        assert await store.command("test_get", "GET", "absent") is None
    finally:
        await store.close()


async def test_unreachable_redis_is_a_503_within_the_timeout() -> None:
    port = free_port()
    store = RedisStore(RedisSettings(url=f"redis://:pw@127.0.0.1:{port}/0", timeout=0.5))
    store.open()
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(store.command("test_get", "GET", "k") for _ in range(5)),
                return_exceptions=True,
            ),
            timeout=10,  # generous: proves it does not hang, says nothing of speed
        )
        assert all(isinstance(result, DependencyUnavailable) for result in results)
    finally:
        await store.close()


async def test_a_bad_command_in_a_shared_pipeline_fails_only_its_own_waiter(
    redis_url: str,
) -> None:
    store = RedisStore(RedisSettings(url=redis_url, timeout=2))
    store.open()
    try:
        async with store.reaching("setup") as redis:
            await redis.set("good", "value")
        good, bad = await asyncio.gather(
            store.command("test_get", "GET", "good"),
            store.command("test_bad", "GETEX"),
            return_exceptions=True,
        )
        assert good == "value"
        assert isinstance(bad, Exception) and not isinstance(bad, DependencyUnavailable)
    finally:
        await store.close()


@pytest.mark.cluster
async def test_a_lost_master_fails_only_its_own_keys_and_its_replica_is_found(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path) as cluster:
        view = cluster.view()
        keys = [f"{{user:{n}}}:session" for n in range(40)]

        def master_of(key: str) -> str:
            master = topology.master_serving(view, cluster.slot_of(key))
            assert master is not None
            return master.id

        lost, kept = keys[0], next(k for k in keys if master_of(k) != master_of(keys[0]))
        store = RedisStore(RedisSettings(url=cluster.url(), timeout=1))
        store.open()
        try:
            async with store.reaching("setup") as redis:
                for key in (lost, kept):
                    await redis.set(key, "alive")
                    # Replication is asynchronous: WAIT makes the key one the replica has.
                    node = redis.get_node_from_key(key)
                    assert await redis.execute_command("WAIT", 1, 5000, target_nodes=node) == 1
            failover = await asyncio.to_thread(cluster.kill_master_for, lost)
            for _ in range(20):
                # One loop turn: both in one batch, which must not share the lost master's fate.
                lost_answer, kept_answer = await asyncio.gather(
                    store.command("test_get", "GET", lost),
                    store.command("test_get", "GET", kept),
                    return_exceptions=True,
                )
                assert kept_answer == "alive"
                assert lost_answer == "alive" or isinstance(lost_answer, DependencyUnavailable)
            await asyncio.to_thread(cluster.wait_promoted, failover)
            # The same store, never reopened, reads the key from the promoted replica.
            for _ in range(300):
                try:
                    if await store.command("test_get", "GET", lost) == "alive":
                        break
                except DependencyUnavailable:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the store never found the promoted replica")
        finally:
            await store.close()
