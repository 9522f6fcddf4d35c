"""Fixtures: a real redis-server and a real local stack (nginx + Hypercorn replicas) on free ports.

Nothing is mocked. Shared servers are session-scoped; tests that break things (stop Redis,
SIGTERM a replica) start their own stack so the others never see the damage. Also the helpers
several test packages share: users, settings, a clock tests move by hand.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from authscale.core.redis_url import cluster_address, is_cluster
from authscale.core.settings import PasswordSettings, RedisSettings, Settings
from authscale.core.storage import RedisStore
from authscale.lab.stack.config import ROLE_PORT_OFFSETS, StackConfig
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import free_port
from authscale.login.passwords import Passwords
from authscale.login.users import Users

# Property tests are deterministic and bounded: the same examples on every run, no example
# database, no deadline (the machine is shared; speed is not what they check).
hypothesis_settings.register_profile(
    "authscale",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.load_profile("authscale")

# Fixtures of the token variant (keys, issuer and token apps) live beside their tests; the
# Redis Cluster's in their own module.
pytest_plugins = ("tests.tokens.fixtures", "tests.redis_cluster")

#: argon2id at a test cost: the suite checks behaviour, not hashing strength.
CHEAP_ARGON2 = {"AUTHSCALE_ARGON2_MEMORY_KIB": "1024", "AUTHSCALE_ARGON2_TIME_COST": "1"}
CHEAP_PASSWORDS = PasswordSettings(time_cost=1, memory_cost_kib=1024)
PASSWORD = "correct horse battery staple"


class ManualClock:
    """A clock the test moves by hand, for code that takes ``clock=``: no sleeps, no margins."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class RedisServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


def start_redis(directory: Path, url: str | None = None) -> RedisServer:
    """A redis-server with append-only persistence in ``directory``; ``url`` restarts one."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if url is None:
        url = f"redis://:{secrets.token_hex(16)}@127.0.0.1:{free_port()}/0"
    parts = urlsplit(url)
    assert parts.password is not None and parts.port is not None
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(parts.port), "--bind", "127.0.0.1"),
            *("--requirepass", parts.password, "--save", "", "--appendonly", "yes"),
            *("--dir", str(directory)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(url, parts.port, process)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            server.client().ping()
            return server
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.process.terminate()
    server.process.wait(10)


#: What a module's tests run on unless it says otherwise (``REDIS_DEPLOYMENTS`` in the module).
SINGLE, CLUSTER = "single", "cluster"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules that hold the contract (``REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)``) run every test
    that reaches Redis twice: on one redis-server and on a 3-master Redis Cluster. The cluster
    runs are marked ``cluster``: ``make test`` leaves them to ``make test-all``."""
    if "redis_deployment" not in metafunc.fixturenames:
        return
    deployments = getattr(metafunc.module, "REDIS_DEPLOYMENTS", (SINGLE,))
    metafunc.parametrize(
        "redis_deployment",
        [
            pytest.param(name, marks=[pytest.mark.cluster] if name == CLUSTER else [], id=name)
            for name in deployments
        ],
        indirect=True,
    )


@pytest.fixture
def redis_deployment(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", SINGLE))


@pytest.fixture
def redis_url(redis_deployment: str, request: pytest.FixtureRequest) -> str:
    """The shared Redis, or the shared Redis Cluster, emptied for this test."""
    if redis_deployment == CLUSTER:
        return str(request.getfixturevalue("redis_cluster_url"))
    server: RedisServer = request.getfixturevalue("redis_server")
    server.client().flushdb()
    return server.url


class _Admin(redis.Redis):
    def __exit__(self, *_: object) -> None:
        """``with redis_admin as client:`` reads well; the fixture closes the client."""


class _ClusterAdmin(redis.RedisCluster):
    def __exit__(self, *_: object) -> None:
        """As :class:`_Admin`."""


def admin_client(url: str) -> redis.Redis:
    """A synchronous client for a test's own reads and writes, on either deployment (the product
    uses its asyncio store). Its ``keys`` sees every master of a cluster."""
    if not is_cluster(url):
        return _Admin.from_url(url, decode_responses=True)
    address = cluster_address(url)
    host, port = address.nodes[0]
    cluster = _ClusterAdmin(host=host, port=port, password=address.password, decode_responses=True)
    return cast(redis.Redis, cluster)


def every_key(client: redis.Redis, pattern: str = "*") -> list[str]:
    """``KEYS pattern`` over every master of a cluster, or the single Redis."""
    if isinstance(client, redis.RedisCluster):
        return list(client.keys(pattern, target_nodes=redis.RedisCluster.PRIMARIES))
    return list(client.keys(pattern))


@pytest.fixture
def redis_admin(redis_url: str) -> Iterator[redis.Redis]:
    """:func:`admin_client` on this test's Redis or Redis Cluster."""
    client = admin_client(redis_url)
    yield client
    client.close()


def make_settings(redis_url: str, **environ: str) -> Settings:
    return Settings.from_environ(
        {
            "AUTHSCALE_REDIS_URL": redis_url,
            "AUTHSCALE_REPLICA_ID": "test-replica",
            **CHEAP_ARGON2,
            **environ,
        }
    )


async def create_user(
    redis_url: str,
    username: str | None = None,
    password: str = PASSWORD,
    cost: PasswordSettings = CHEAP_PASSWORDS,
) -> str:
    """Create a user straight in Redis, through the same code the CLI uses."""
    username = username or f"user-{uuid.uuid4().hex[:12]}"
    store = RedisStore(RedisSettings(url=redis_url, timeout=5))
    passwords = Passwords(cost, workers=1)
    store.open()
    try:
        await Users(store, passwords).add(username, password)
    finally:
        passwords.close()
        await store.close()
    return username


def add_user(
    redis_url: str,
    username: str | None = None,
    password: str = PASSWORD,
    cost: PasswordSettings = CHEAP_PASSWORDS,
) -> str:
    """:func:`create_user` for synchronous tests and fixtures."""
    return asyncio.run(create_user(redis_url, username, password, cost))


def stack_config(run_dir: Path, replicas: int = 2, **overrides: object) -> StackConfig:
    roles = {role: replicas for role in ROLE_PORT_OFFSETS} | {"issuer": 1}
    settings: dict[str, object] = {
        "run_dir": run_dir,
        "replicas": roles,
        "gateway_port": free_port(),
        "redis_port": free_port(),
        "base_port": None,
        # The shared stack must not rate-limit the suite's own logins; test_gateway checks 429
        # on a stack of its own.
        "login_rate": "1000r/s",
        "login_burst": 1000,
        "demo_user": False,
        "env": {**CHEAP_ARGON2, "AUTHSCALE_LOG_LEVEL": "INFO"},
    }
    settings.update(overrides)
    return StackConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(stack_config(tmp_path_factory.mktemp("stack")))
    local.start()
    yield local
    local.stop()


@pytest.fixture
def gateway(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        yield client


class SessionAuth:
    """Reads like the flows it drives: ``auth.login()``, ``auth.logout()``."""

    def __init__(self, client: httpx.Client, redis_url: str) -> None:
        self.client = client
        self.redis_url = redis_url
        self.csrf_token = ""
        self.username = ""

    def login(self, username: str | None = None, password: str = PASSWORD) -> httpx.Response:
        self.username = username or add_user(self.redis_url)
        response = self.client.post(
            "/session/login", json={"username": self.username, "password": password}
        )
        if response.status_code == 200:
            self.csrf_token = response.json()["csrf_token"]
        return response

    def logout(self, path: str = "/session/logout") -> httpx.Response:
        return self.client.post(path, headers={"X-CSRF-Token": self.csrf_token})


@pytest.fixture
def auth(gateway: httpx.Client, stack: LocalStack) -> SessionAuth:
    return SessionAuth(gateway, stack.redis_url)


def json_of(response: httpx.Response) -> Mapping[str, object]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict)
    return body
