"""Redis's command counters, read from a real redis-server."""

from __future__ import annotations

from authscale import commandstats
from conftest import RedisServer


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
