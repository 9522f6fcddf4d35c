"""A long-lived redis-cli answering Redis's command counters, against a real redis-server."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from authscale.lab.measure import commandstats
from authscale.lab.stack.processes import StackError
from authscale.lab.stack.redis_cli import RedisCli
from tests.conftest import RedisServer


def test_each_question_gets_the_counters_so_far(redis_server: RedisServer, redis_url: str) -> None:
    # The password through the environment, as the compose backend's Redis container has it.
    password = urlsplit(redis_url).password or ""
    cli = RedisCli(
        ["redis-cli", "-p", str(redis_server.port)], env={**os.environ, "REDISCLI_AUTH": password}
    )
    try:
        before = cli.commandstats()
        client = redis_server.client()
        for n in range(3):
            client.set(f"k{n}", "v")
        after = cli.commandstats()
        assert commandstats.delta(before, after) == {"set": 3}
        # Same numbers as the client library's reading, asked the other way.
        assert after["set"] == commandstats.read(redis_url)["set"]
    finally:
        cli.close()
    cli.close()  # twice is fine


def test_a_cli_that_cannot_connect_is_an_error_not_a_hang() -> None:
    cli = RedisCli(["sh", "-c", "echo 'Could not connect to Redis' >&2; exit 1"])
    with pytest.raises(StackError, match="exited: Could not connect to Redis"):
        cli.commandstats()


def test_a_refusal_is_an_error_that_says_so(redis_server: RedisServer) -> None:
    cli = RedisCli(["redis-cli", "-p", str(redis_server.port)], env={"PATH": os.environ["PATH"]})
    try:
        with pytest.raises(StackError, match=r"gave no answer in 5 s.*NOAUTH"):
            cli.commandstats()
    finally:
        cli.close()
