"""Shared fixtures: a real redis-server on a free loopback port, requiring a password."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

# Fixtures of the token variant live beside their tests; pytest loads them from here.
pytest_plugins = ("token_fixtures",)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    password: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    directory: Path = tmp_path_factory.mktemp("redis")
    port, password = free_port(), secrets.token_hex(16)
    process = subprocess.Popen(
        [
            executable,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )
    server = RedisServer("127.0.0.1", port, password, process)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.client().ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.05)
    yield server
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server's URL, with every key of the previous test gone."""
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url
