"""Redis's command counters, read from a real redis-server."""

from __future__ import annotations

import asyncio

import pytest

from authscale.core.settings import RedisSettings
from authscale.core.slots import user_keyspace
from authscale.core.storage import RedisStore
from authscale.lab.measure import commandstats
from tests.conftest import RedisServer


def test_delta_counts_the_commands_run_between_two_readings(
    redis_server: RedisServer, redis_url: str
) -> None:
    before = commandstats.read(redis_url)
    client = redis_server.client()
    for n in range(5):
        client.set(f"k{n}", "v")
    client.getex("k1", px=1000)
    after = commandstats.read(redis_url)
    calls = commandstats.delta(before, after)
    assert calls["set"] == 5
    assert calls["getex"] == 1
    assert "info" not in calls and "hello" not in calls


def test_parse_reads_redis_cli_output() -> None:
    text = (
        "# Commandstats\r\n"
        "cmdstat_get:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n"
        "cmdstat_client|setname:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n"
    )
    assert commandstats.parse(text) == {"get": 12, "client|setname": 2}
    assert commandstats.parse("# Commandstats\n") == {}


@pytest.mark.cluster
def test_a_cluster_url_sums_the_counters_of_the_masters(redis_cluster_url: str) -> None:
    store = RedisStore(RedisSettings(url=redis_cluster_url, timeout=5))
    before = commandstats.read(redis_cluster_url)

    async def write() -> None:
        store.open()
        try:
            async with store.reaching("test") as redis:
                # Users whose keys hash to different shards: every master counts its own.
                for n in range(12):
                    await redis.set(user_keyspace("test", f"user{n}"), "v")
        finally:
            await store.close()

    asyncio.run(write())
    assert commandstats.delta(before, commandstats.read(redis_cluster_url))["set"] == 12
