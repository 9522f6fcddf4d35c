"""compose.yaml's cluster profile: six redis-server nodes joined into a Redis Cluster by a
one-shot, and the roles pointed at it by .env, brought up for real.

Needs a Docker engine like tests/test_compose.py, and skips or fails (under CI) as it does.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from authscale.lab.stack.processes import free_port
from tests.test_compose import ROOT, UP_TIMEOUT, Compose, answers, compose_file, engine_program

PROJECT = "authscale-cluster-test"
NODES = [f"redis-{index}" for index in range(1, 7)]
#: What .env.example tells a user to uncomment.
CLUSTER_ENV = {
    "AUTHSCALE_REDIS_SCHEME": "redis+cluster",
    "AUTHSCALE_REDIS_ADDRESS": "redis-1:6379,redis-2:6379,redis-3:6379",
}


def test_the_cluster_profile_holds_six_nodes_and_the_one_shot_that_joins_them() -> None:
    services = compose_file()["services"]
    in_profile = {
        name for name, service in services.items() if "cluster" in service.get("profiles", [])
    }
    assert in_profile == {*NODES, "redis-cluster"}
    for node in NODES:
        assert services[node]["environment"]["REDIS_CLUSTER"] == "yes", node
        assert services[node]["networks"] == ["data"], node
        # The same server, config and healthcheck as the single Redis.
        assert services[node]["entrypoint"] == services["redis"]["entrypoint"], node
        assert services[node]["healthcheck"] == services["redis"]["healthcheck"], node
        assert services[node]["volumes"] == [f"{node}-data:/data"], node
    joiner = services["redis-cluster"]
    assert set(joiner["depends_on"]) == set(NODES)
    assert "--cluster-replicas 1 --cluster-yes" in joiner["entrypoint"][-1]
    assert "REDISCLI_AUTH" in joiner["environment"], "the password stays off command lines"


def test_every_node_is_a_cluster_node_only_when_asked() -> None:
    script = compose_file()["services"]["redis"]["entrypoint"][-1]
    for line in ("masterauth", "cluster-node-timeout 2000", "cluster-require-full-coverage no"):
        assert line in script.split('if [ "$$REDIS_CLUSTER" = yes ]')[1], line


def test_the_example_says_how_the_roles_reach_the_cluster() -> None:
    example = (ROOT / ".env.example").read_text()
    for name, value in CLUSTER_ENV.items():
        assert f"# {name}={value}\n" in example
    replica = compose_file()["x-replica-environment"]["AUTHSCALE_REDIS_URL"]
    assert replica.startswith("${AUTHSCALE_REDIS_SCHEME:-redis}://:")
    assert replica.endswith("@${AUTHSCALE_REDIS_ADDRESS:-redis:6379/0}")


@pytest.fixture(scope="module")
def cluster_compose() -> Iterator[Compose]:
    program = engine_program("the compose test")
    port = free_port("127.0.0.1")
    wheels = any((ROOT / "deploy" / "wheels").glob("*.whl"))
    env = {
        **os.environ,
        **CLUSTER_ENV,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_PROFILES": "cluster",
        "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24),
        "AUTHSCALE_COOKIE_SECURE": "false",
        "AUTHSCALE_DEMO_USER": "true",
        "AUTHSCALE_GATEWAY_PORT": str(port),
        "AUTHSCALE_BUILD_OFFLINE": os.environ.get("AUTHSCALE_BUILD_OFFLINE")
        or ("1" if wheels else ""),
    }
    stack = Compose(program, env, f"http://127.0.0.1:{port}")
    stack.run("--profile", "cluster", "down", "-v", "--remove-orphans", check=False)
    stack.run("build", "session")
    try:
        stack.run("--profile", "cluster", "up", "-d", "--scale", "session=1", "--scale", "token=1")
        stack.wait_until("the gateway answered", lambda: answers(f"{stack.gateway_url}/healthz"))
        stack.wait_until("every container reported healthy", stack.all_healthy)
        yield stack
    finally:
        stack.run("--profile", "cluster", "down", "-v", "--remove-orphans", check=False)


@pytest.mark.compose
def test_the_cluster_profile_comes_up_healthy(cluster_compose: Compose) -> None:
    joiner = cluster_compose.run("ps", "-q", "redis-cluster").stdout.split()
    waited = subprocess.run(
        ["docker", "wait", *joiner], capture_output=True, text=True, timeout=UP_TIMEOUT, check=True
    )
    assert waited.stdout.split() == ["0"], cluster_compose.logs()
    for node in NODES:
        info = cluster_compose.run("exec", "-T", node, "redis-cli", "cluster", "info").stdout
        assert "cluster_state:ok" in info and "cluster_slots_ok:16384" in info, (node, info)
    nodes = cluster_compose.run("exec", "-T", "redis-1", "redis-cli", "cluster", "nodes").stdout
    assert nodes.count("master") == 3 and nodes.count("slave") == 3, nodes


@pytest.mark.compose
def test_both_variants_log_in_on_the_cluster(cluster_compose: Compose) -> None:
    with httpx.Client(base_url=cluster_compose.gateway_url, timeout=30) as client:
        demo = {"username": "admin", "password": "password123"}
        session = client.post("/session/login", json=demo)
        assert session.status_code == 200, session.text
        assert client.get("/session/dashboard").json() == {"message": "Welcome, admin"}
        token = client.post("/token/login", json=demo)
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        dashboard = client.get("/token/dashboard", headers=bearer)
        assert dashboard.json() == {"message": "Welcome, admin"}
    # The single `redis` starts too (the roles wait for it) but holds nothing.
    single = cluster_compose.run("exec", "-T", "redis", "redis-cli", "dbsize").stdout
    assert single.strip() == "0"
