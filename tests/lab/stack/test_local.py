"""The local stack as a user runs it, and what it does when a replica or Redis goes away."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from authscale.core import servers
from authscale.core.settings import PasswordSettings
from authscale.lab.stack import processes
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import free_port
from tests.conftest import PASSWORD, add_user, json_of, stack_config


def authscale(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authscale", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def cli_ports() -> list[str]:
    return [
        "--gateway-port",
        str(free_port()),
        "--redis-port",
        str(free_port()),
        "--web-port",
        str(free_port()),
        "--base-port",
        "0",  # free ports for the replicas
    ]


def recorded_pids(run_dir: Path) -> list[tuple[int, int]]:
    state = json.loads((run_dir / "stack.json").read_text())
    return [(entry["pid"], entry["ticks"]) for entry in state["processes"]]


def alive(pid: int, ticks: int) -> bool:
    # The whole process group: a Hypercorn worker outliving its master counts as alive.
    return bool(processes.group_members(pid))


@pytest.mark.lab
def test_up_detached_then_down_leaves_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    up = authscale(
        "up",
        "--detach",
        "--replicas",
        "1",
        "--run-dir",
        str(run_dir),
        *cli_ports(),
        env={"AUTHSCALE_ARGON2_MEMORY_KIB": "1024"},
    )
    assert up.returncode == 0, up.stderr
    assert "authscale local stack is up" in up.stdout
    assert "Demo user admin / password123" in up.stdout
    assert "  page      http://localhost:" in up.stdout
    pids = recorded_pids(run_dir)
    assert len(pids) >= 3 and all(alive(*pid) for pid in pids)
    again = authscale("up", "--detach", "--run-dir", str(run_dir), *cli_ports())
    assert again.returncode == 1 and "already running" in again.stderr
    down = authscale("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stderr
    assert not any(alive(*pid) for pid in pids)
    assert not (run_dir / "stack.json").exists()


@pytest.mark.lab
def test_foreground_up_stops_everything_on_sigterm(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "authscale",
            "up",
            "--replicas",
            "1",
            "--no-demo-user",
            "--run-dir",
            str(run_dir),
            *cli_ports(),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (run_dir / "stack.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = recorded_pids(run_dir)
    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, output
    assert "stopped" in output
    assert not any(alive(*pid) for pid in pids)


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with processes.socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = authscale("up", "--run-dir", str(tmp_path), "--gateway-port", str(port))
    assert result.returncode == 1
    assert f"port {port} (gateway) on 127.0.0.1 is taken" in result.stderr
    assert "--gateway-port" in result.stderr


def test_a_missing_server_binary_is_a_clear_error(tmp_path: Path) -> None:
    result = authscale(
        "up",
        "--run-dir",
        str(tmp_path),
        *cli_ports(),
        env={"AUTHSCALE_NGINX_BIN": str(tmp_path / "no-nginx")},
    )
    assert result.returncode == 1
    assert "AUTHSCALE_NGINX_BIN" in result.stderr and "not an executable" in result.stderr


def test_bad_replica_count_is_a_clear_error(tmp_path: Path) -> None:
    result = authscale("up", "--run-dir", str(tmp_path), "--replicas", "0")
    assert result.returncode == 1
    assert "--replicas must be at least 1" in result.stderr


@pytest.fixture(scope="module")
def fragile_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: these tests stop Redis and replicas."""
    local = LocalStack(
        stack_config(
            tmp_path_factory.mktemp("fragile"),
            env={"AUTHSCALE_ARGON2_MEMORY_KIB": "1024", "AUTHSCALE_REDIS_TIMEOUT": "0.5"},
        )
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module", params=sorted(servers.SERVERS))
def draining_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """A stack of its own per server: these tests stop and kill replicas."""
    local = LocalStack(
        stack_config(
            tmp_path_factory.mktemp(f"draining-{request.param}"),
            env={"AUTHSCALE_ARGON2_MEMORY_KIB": "1024"},
            server=request.param,
        )
    )
    local.start()
    yield local
    local.stop()


@pytest.mark.lab
def test_redis_outage_is_503_then_every_session_survives(fragile_stack: LocalStack) -> None:
    username = add_user(fragile_stack.redis_url)
    with httpx.Client(base_url=fragile_stack.gateway_url, timeout=10) as client:
        login = client.post("/session/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200
        fragile_stack.stop_process("redis")
        started = time.monotonic()
        for _ in range(4):  # both replicas, twice
            response = client.get("/session/dashboard")
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert response.headers["X-Replica"].startswith("session-")
            assert "message" in json_of(response)
        assert time.monotonic() - started < 20  # bounded, never a hang
        fragile_stack.start_process("redis")
        for _ in range(4):
            response = client.get("/session/dashboard")
            assert response.status_code == 200
            assert json_of(response) == {"message": f"Welcome, {username}"}


@pytest.mark.lab
def test_sigterm_to_a_replica_under_load_fails_no_request(draining_stack: LocalStack) -> None:
    username = add_user(draining_stack.redis_url)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=draining_stack.gateway_url, timeout=10) as client:
            login = client.post("/session/login", json={"username": username, "password": PASSWORD})
            statuses.append(login.status_code)
            deadline = time.monotonic() + 60
            for _ in range(5000):  # bounded in count and in time
                if stop.is_set() or time.monotonic() > deadline:
                    break
                statuses.append(client.get("/session/dashboard").status_code)

    def answered(count: int) -> None:
        """Until the load has had ``count`` more answers (20 s at most: does not hang)."""
        target, deadline = len(statuses) + count, time.monotonic() + 20
        while len(statuses) < target and time.monotonic() < deadline:
            time.sleep(0.02)

    worker = threading.Thread(target=load)
    worker.start()
    answered(10)
    draining_stack.stop_process("session-1", signal.SIGTERM)
    answered(10)  # while session-1 is down
    draining_stack.start_process("session-1")
    answered(10)
    stop.set()
    worker.join(30)
    assert len(statuses) > 30
    assert set(statuses) == {200}, {status: statuses.count(status) for status in set(statuses)}


@pytest.mark.lab
def test_sigterm_lets_the_requests_in_flight_finish(draining_stack: LocalStack) -> None:
    # Straight at the replica, so no gateway retry can hide a dropped request; a costly hash
    # (about a second) keeps every login in flight when the signal arrives.
    username = add_user(
        draining_stack.redis_url, cost=PasswordSettings(time_cost=12, memory_cost_kib=64 * 1024)
    )
    replica_url = f"http://127.0.0.1:{draining_stack.running['session-1'].spec.port}"
    answers: list[httpx.Response | Exception] = []

    def log_in() -> None:
        try:
            answers.append(
                httpx.post(
                    f"{replica_url}/session/login",
                    json={"username": username, "password": PASSWORD},
                    timeout=30,
                )
            )
        except httpx.HTTPError as error:
            answers.append(error)

    logins = [threading.Thread(target=log_in) for _ in range(3)]
    looked_up = _user_lookups(replica_url)
    for login in logins:
        login.start()
    # Until the replica has read all three and looked the user up, which comes right before the
    # hash (about a second each): the signal then finds them in flight. 20 s: does not hang.
    deadline = time.monotonic() + 20
    while _user_lookups(replica_url) < looked_up + 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        draining_stack.stop_process("session-1", signal.SIGTERM)
    finally:
        for login in logins:
            login.join(30)
        draining_stack.start_process("session-1")
    assert len(answers) == 3
    for answer in answers:
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 200
        assert json_of(answer)["message"] == "Login successful"


def _user_lookups(replica_url: str) -> float:
    """How many times the replica has read a user from Redis, from its ``/metrics``."""
    metrics = httpx.get(f"{replica_url}/metrics", timeout=10).text
    pattern = r'^authscale_redis_seconds_count\{operation="user_get"\} (\S+)$'
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_redis_is_configured_for_this_job(stack: LocalStack) -> None:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    anonymous = redis.Redis(host="127.0.0.1", port=stack.config.redis_port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()


@pytest.mark.lab
def test_no_replica_left_is_a_json_502(fragile_stack: LocalStack) -> None:
    replicas = [name for name in fragile_stack.running if name.startswith("session-")]
    for name in replicas:
        fragile_stack.stop_process(name)
    try:
        response = httpx.get(f"{fragile_stack.gateway_url}/session/ping", timeout=10)
        assert response.status_code == 502
        assert response.headers["Retry-After"] == "1"
        assert json_of(response) == {"message": "No replica could answer"}
    finally:
        for name in replicas:
            fragile_stack.start_process(name)
    # Back in rotation without a gateway restart.
    assert httpx.get(f"{fragile_stack.gateway_url}/session/ping", timeout=10).status_code == 200


@pytest.mark.lab
def test_sigkill_to_a_replica_leaves_no_orphaned_worker(draining_stack: LocalStack) -> None:
    replica = draining_stack.running["session-2"]
    url = f"http://127.0.0.1:{replica.spec.port}/healthz"
    assert processes.http_status(url) == 200
    draining_stack.stop_process("session-2", signal.SIGKILL)
    try:
        assert processes.group_members(replica.pid) == []
        assert processes.http_status(url) is None
    finally:
        draining_stack.start_process("session-2")
    assert processes.http_status(url) == 200
