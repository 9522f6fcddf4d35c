"""Both variants' contract through the gateway, on a stack of each server (Hypercorn, uvicorn,
Granian): logins, dashboards, CSRF, refresh rotation, logouts, the JWKS, readiness, and every
log line the replicas write being the app's JSON.

Draining on SIGTERM on each server is in test_local.py (marked ``lab``: it takes minutes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from authscale.core import servers
from authscale.lab.stack.local import LocalStack
from tests.conftest import PASSWORD, add_user, json_of, stack_config


@pytest.fixture(scope="module", params=sorted(servers.SERVERS))
def server_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    if request.param == servers.DEFAULT_SERVER:
        # The suite's shared stack runs on it already: no second one to start.
        yield request.getfixturevalue("stack")
        return
    local = LocalStack(
        stack_config(tmp_path_factory.mktemp(f"on-{request.param}"), server=request.param)
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture
def client(server_stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_stack.gateway_url, timeout=10) as client:
        yield client


def test_the_session_contract(server_stack: LocalStack, client: httpx.Client) -> None:
    username = add_user(server_stack.redis_url)
    assert client.get("/session/dashboard").status_code == 401
    wrong = client.post("/session/login", json={"username": username, "password": "wrong"})
    assert wrong.status_code == 401
    login = client.post("/session/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200
    csrf = json_of(login)["csrf_token"]
    assert "HttpOnly" in login.headers["set-cookie"]
    for _ in range(4):  # both replicas
        dashboard = client.get("/session/dashboard")
        assert dashboard.status_code == 200
        assert json_of(dashboard) == {"message": f"Welcome, {username}"}
    assert json_of(client.get("/session/me"))["csrf_token"] == csrf
    assert client.post("/session/logout").status_code == 403
    assert client.post("/session/logout", headers={"X-CSRF-Token": str(csrf)}).status_code == 200
    assert client.get("/session/dashboard").status_code == 401


def test_the_token_contract(server_stack: LocalStack, client: httpx.Client) -> None:
    username = add_user(server_stack.redis_url)
    login = client.post("/token/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200
    access, refresh = json_of(login)["access_token"], json_of(login)["refresh_token"]
    for _ in range(4):  # both replicas
        dashboard = client.get("/token/dashboard", headers={"Authorization": f"Bearer {access}"})
        assert dashboard.status_code == 200
        assert json_of(dashboard) == {"message": f"Welcome, {username}"}
    forged = client.get("/token/dashboard", headers={"Authorization": f"Bearer {access}x"})
    assert forged.status_code == 401
    rotated = client.post("/token/refresh", json={"refresh_token": refresh})
    assert rotated.status_code == 200
    new_refresh = json_of(rotated)["refresh_token"]
    assert client.post("/token/logout", json={"refresh_token": new_refresh}).status_code == 200
    assert client.post("/token/refresh", json={"refresh_token": new_refresh}).status_code == 401
    assert json_of(client.get("/.well-known/jwks.json"))["keys"]


def test_unknown_routes_answer_the_apps_json(client: httpx.Client) -> None:
    for path in ("/session/nowhere", "/token/nowhere"):
        response = client.get(path)
        assert response.status_code == 404
        assert "message" in json_of(response)
        assert response.headers["X-Replica"]


def test_every_replica_is_ready_and_logs_only_the_apps_json(server_stack: LocalStack) -> None:
    for name, spec in server_stack.specs.items():
        if spec.role not in servers.ROLE_APPS:
            continue
        assert httpx.get(f"http://127.0.0.1:{spec.port}/readyz", timeout=10).status_code == 200
        lines = spec.log_file.read_text().splitlines()
        assert lines, name
        for line in lines:
            entry = json.loads(line)
            assert (entry["role"], entry["replica"]) == (spec.role, name), line
