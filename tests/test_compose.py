"""compose.yaml brought up for real: the flows through the gateway, scaling, a stopped replica,
a Redis restart, and `down -v`.

Needs a Docker engine and `docker compose` or `docker-compose`; on a machine like CI's run
deploy/prepare-docker.sh first. Without an engine the module skips, except under CI, where a
skip would hide that the deployment was never run: there it fails.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from authscale.lab.compose.engine import compose_program, missing_engine
from authscale.lab.compose.images import stand_in_environ
from authscale.lab.stack.processes import free_port


def live(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a test that needs the running stack (select with -m compose, skip with not)."""
    return pytest.mark.compose(test)


ROOT = Path(__file__).resolve().parents[1]
PROJECT = "authscale-test"
PASSWORD = "compose-test-password"
#: Generous bounds that prove "does not hang"; the stack is usually up in well under a minute.
UP_TIMEOUT = 300.0
COMMAND_TIMEOUT = 900.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


def require_engine(what: str) -> None:
    """Skip without a Docker engine; under CI fail instead, naming ``what`` CI must run."""
    problem = missing_engine()
    if problem is not None:
        if in_ci():
            pytest.fail(f"CI must run {what}, but {problem}")
        pytest.skip(problem)


def engine_program(what: str) -> list[str]:
    """The compose program, once :func:`require_engine` has found an engine."""
    require_engine(what)
    program = compose_program()
    assert program is not None
    return program


@dataclass
class Compose:
    program: list[str]
    env: dict[str, str]
    gateway_url: str

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.program, "-f", str(ROOT / "compose.yaml"), *args],
            cwd=ROOT,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def containers(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).stdout.split()

    def all_healthy(self) -> bool:
        """Docker's own verdict: every running container's healthcheck passes."""
        ids = self.run("ps", "-q").stdout.split()
        states = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", *ids],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
        running = [state for state in states if state.startswith("running")]
        return bool(running) and all(state == "running healthy" for state in running)

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "40", check=False).stdout

    def scale(self, **replicas: int) -> None:
        """deploy/compose-scale.sh, as a user would run it."""
        pairs = [f"{service}={count}" for service, count in replicas.items()]
        result = subprocess.run(
            [str(ROOT / "deploy" / "compose-scale.sh"), *pairs],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = UP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(1)
        raise AssertionError(f"{what} within {timeout:.0f}s; recent logs:\n{self.logs()}")


def answers(url: str, status: int = 200) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == status
    except httpx.HTTPError:
        return False


# -- the file itself: no engine needed ---------------------------------------------------------


def compose_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def test_the_file_is_compose_spec_for_v2_and_1_29() -> None:
    data = compose_file()
    assert "version" not in data, "compose v2 warns on it and the spec dropped it"
    services = data["services"]
    assert set(services) >= {"redis", "keys", "users", "issuer", "session", "token", "gateway"}
    in_profile = {
        profile: {
            name for name, service in services.items() if profile in service.get("profiles", [])
        }
        for profile in ("load", "monitoring")
    }
    assert in_profile["load"] == {"locust", "locust-worker", "locust-accounts"}
    assert in_profile["monitoring"] == set(MONITORING_SERVICES)


#: The monitoring profile; its exporters' upstream images hold their binary alone, with nothing
#: to run a healthcheck with (Prometheus's `up` series says whether they answer).
MONITORING_SERVICES = ("prometheus", "nginx-exporter", "redis-exporter", "grafana")
EXPORTERS = {"nginx-exporter", "redis-exporter"}


def test_only_the_gateway_and_web_uis_publish_and_on_loopback_by_default() -> None:
    services = compose_file()["services"]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert set(published) == {"gateway", "web", "locust", "prometheus", "grafana"}
    for ports in published.values():
        for port in ports:
            assert port.startswith("${AUTHSCALE_") and ":-127.0.0.1}:" in port, port


def test_backing_services_sit_on_internal_networks() -> None:
    data = compose_file()
    assert data["networks"]["replicas"]["internal"] is True
    assert data["networks"]["data"]["internal"] is True
    services = data["services"]
    assert services["redis"]["networks"] == ["data"]
    assert data["networks"]["metrics"]["internal"] is True
    # The monitoring profile reaches Redis only through its exporter, and publishes on a
    # network of its own.
    assert "data" not in services["prometheus"]["networks"]
    assert services["redis-exporter"]["networks"] == ["data", "metrics"]
    assert "data" not in services["gateway"]["networks"], "the gateway never reaches Redis"
    for role in ("session", "token", "issuer"):
        assert "edge" not in services[role]["networks"], f"{role} is reachable around the gateway"


def test_the_signing_keys_reach_only_the_issuer_and_their_one_shot_setup() -> None:
    services = compose_file()["services"]
    holders = {
        name
        for name, service in services.items()
        for volume in service.get("volumes", [])
        if volume.startswith("signing-keys:")
    }
    assert holders == {"keys", "issuer"}
    assert services["keys"]["network_mode"] == "none"


def test_long_running_services_have_healthchecks_and_wait_for_healthy_dependencies() -> None:
    services = compose_file()["services"]
    one_shots = {"keys", "users", "redis-cluster", "locust-accounts"}
    for name, service in services.items():
        if name in one_shots or name == "locust-worker":
            continue
        if name in EXPORTERS:
            assert service["healthcheck"] == {"disable": True}, name
            continue
        assert "test" in service["healthcheck"], name
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            if dependency in one_shots:
                expected = "service_completed_successfully"
            elif dependency in EXPORTERS:
                expected = "service_started"
            else:
                expected = "service_healthy"
            assert condition == {"condition": expected}, f"{name} -> {dependency}"


def test_every_container_is_read_only_without_capabilities() -> None:
    for name, service in compose_file()["services"].items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_required_settings_refuse_to_start_without_a_value() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert "${AUTHSCALE_REDIS_PASSWORD:?" in text
    assert "${AUTHSCALE_COOKIE_SECURE:?" in text
    assert "${AUTHSCALE_REDIS_PASSWORD}" not in text and "${AUTHSCALE_REDIS_PASSWORD:-" not in text
    example = (ROOT / ".env.example").read_text()
    assert "AUTHSCALE_REDIS_PASSWORD=\n" in example, "the example leaves the secret empty"
    assert "\nAUTHSCALE_COOKIE_SECURE=true\n" in example, "a copied example keeps Secure cookies"


def test_the_example_names_every_setting_compose_reads() -> None:
    read = set(re.findall(r"\$\{(AUTHSCALE_[A-Z0-9_]+)", (ROOT / "compose.yaml").read_text()))
    example = (ROOT / ".env.example").read_text()
    assert {name for name in read if name + "=" not in example} == set()


def test_one_variable_chooses_the_server_of_every_replica() -> None:
    services = compose_file()["services"]
    for role in ("session", "token", "issuer"):
        assert services[role]["command"] == ["authscale", "serve", role]
        assert services[role]["environment"]["AUTHSCALE_SERVER"] == "${AUTHSCALE_SERVER:-hypercorn}"


@pytest.mark.compose
def test_compose_validates_the_file_when_a_compose_program_exists() -> None:
    program = compose_program()
    if program is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {**os.environ, "AUTHSCALE_COOKIE_SECURE": "false"}
    env.pop("AUTHSCALE_REDIS_PASSWORD", None)
    refused = subprocess.run(
        [*program, "-f", str(ROOT / "compose.yaml"), "--profile", "load", "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "set AUTHSCALE_REDIS_PASSWORD in .env" in refused.stderr
    env["AUTHSCALE_REDIS_PASSWORD"] = secrets.token_hex(24)
    accepted = subprocess.run(
        [*program, "-f", str(ROOT / "compose.yaml"), "--profile", "load", "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr


# -- the stack, for real ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Iterator[Compose]:
    program = engine_program("the compose test")
    port = free_port("127.0.0.1")
    wheels = any((ROOT / "deploy" / "wheels").glob("*.whl"))
    env = {
        **os.environ,
        # The stand-ins deploy/prepare-docker.sh built, where it ran (their names are local).
        **stand_in_environ(os.environ),
        "COMPOSE_PROJECT_NAME": PROJECT,
        "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24),
        "AUTHSCALE_COOKIE_SECURE": "false",
        "AUTHSCALE_DEMO_USER": "true",
        "AUTHSCALE_GATEWAY_PORT": str(port),
        "AUTHSCALE_WEB_PORT": str(free_port("127.0.0.1")),
        # Offline when asked to, or when deploy/prepare-docker.sh left wheels for it.
        "AUTHSCALE_BUILD_OFFLINE": os.environ.get("AUTHSCALE_BUILD_OFFLINE")
        or ("1" if wheels else ""),
    }
    stack = Compose(program, env, f"http://127.0.0.1:{port}")
    stack.run("down", "-v", "--remove-orphans", check=False)
    stack.run("build", "session")
    try:
        # One replica each at first, so the scaling test sees the gateway learn of new ones.
        stack.run("up", "-d", "--scale", "session=1", "--scale", "token=1")
        stack.wait_until("the gateway answered", lambda: answers(f"{stack.gateway_url}/healthz"))
        stack.wait_until("every container reported healthy", stack.all_healthy)
        for role in ("session", "token"):
            stack.wait_until(
                f"a {role} replica answered through the gateway",
                lambda role=role: answers(f"{stack.gateway_url}/{role}/ping"),
            )
        stack.run(
            "exec", "-T", "session", "authscale", "users", "add", "compose-user",
            "--password-stdin", input=PASSWORD + "\n",
        )  # fmt: skip
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", check=False)


@live
def test_the_web_service_serves_the_page_and_names_the_gateway(compose: Compose) -> None:
    page = f"http://127.0.0.1:{compose.env['AUTHSCALE_WEB_PORT']}"
    index = httpx.get(f"{page}/", timeout=10)
    assert index.status_code == 200 and "<script" in index.text
    assert "connect-src 'self' http://localhost:8080" in index.headers["content-security-policy"]
    assert httpx.get(f"{page}/config.json", timeout=10).json() == {"api": "http://localhost:8080"}
    assert (
        httpx.get(f"{page}/api.js", timeout=10)
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert httpx.get(f"{page}/../../compose.yaml", timeout=10).status_code in {400, 404}


@pytest.fixture
def client(compose: Compose) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=compose.gateway_url, timeout=30) as client:
        yield client


def session_login(client: httpx.Client) -> str:
    response = client.post(
        "/session/login", json={"username": "compose-user", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf_token"]
    return csrf


def replicas_seen(client: httpx.Client, path: str, requests: int = 30) -> set[str]:
    seen = set()
    for _ in range(requests):
        response = client.get(path)
        assert response.status_code == 200, response.text
        seen.add(response.headers["X-Replica"])
    return seen


@live
def test_session_login_dashboard_logout_through_the_gateway(client: httpx.Client) -> None:
    csrf = session_login(client)
    dashboard = client.get("/session/dashboard")
    assert dashboard.status_code == 200
    assert dashboard.json() == {"message": "Welcome, compose-user"}
    assert dashboard.headers["X-Replica"]
    logout = client.post("/session/logout", headers={"X-CSRF-Token": csrf})
    assert logout.status_code == 200
    assert logout.json() == {"message": "Logged out successfully"}
    assert client.get("/session/dashboard").status_code == 401


@live
def test_token_login_dashboard_logout_through_the_gateway(client: httpx.Client) -> None:
    login = client.post("/token/login", json={"username": "compose-user", "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "Bearer"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    dashboard = client.get("/token/dashboard", headers=bearer)
    assert dashboard.status_code == 200
    assert dashboard.json() == {"message": "Welcome, compose-user"}
    logout = client.post("/token/logout", json={"refresh_token": tokens["refresh_token"]})
    assert logout.status_code == 200
    refresh = client.post("/token/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    assert client.get("/token/dashboard").status_code == 401
    keys = client.get("/.well-known/jwks.json")
    assert keys.status_code == 200
    assert [key["kty"] for key in keys.json()["keys"]] == ["RSA"]


@live
def test_the_demo_user_exists_after_the_first_start(client: httpx.Client) -> None:
    login = client.post("/session/login", json={"username": "admin", "password": "password123"})
    assert login.status_code == 200, login.text


@live
def test_scaled_replicas_each_answer_through_the_gateway(
    compose: Compose, client: httpx.Client
) -> None:
    assert len(replicas_seen(client, "/session/ping", requests=6)) == 1
    assert len(replicas_seen(client, "/token/ping", requests=6)) == 1
    roles = {"session": 3, "token": 3}
    compose.scale(**roles)
    for role, count in roles.items():
        assert len(compose.containers(role)) == count
        assert len(replicas_seen(client, f"/{role}/ping")) == count


@live
def test_requests_keep_succeeding_when_a_replica_stops(
    compose: Compose, client: httpx.Client
) -> None:
    session_login(client)
    victim = compose.containers("session")[0]
    subprocess.run(["docker", "stop", "-t", "15", victim], check=True, capture_output=True)
    try:
        for _ in range(20):
            dashboard = client.get("/session/dashboard")
            assert dashboard.status_code == 200, dashboard.text
            assert not victim.startswith(dashboard.headers["X-Replica"].split("-")[0])
        # Logins too: nginx retries a POST elsewhere when the stopped replica never received it.
        csrf = session_login(client)
        assert client.post("/session/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    finally:
        subprocess.run(["docker", "start", victim], check=True, capture_output=True)


@live
def test_sessions_survive_a_redis_restart(compose: Compose, client: httpx.Client) -> None:
    session_login(client)
    assert client.get("/session/dashboard").status_code == 200
    compose.run("restart", "redis")

    def dashboard_answers() -> bool:
        # 503 while Redis loads its append-only file; then the session must still be there.
        return client.get("/session/dashboard").status_code != 503

    compose.wait_until("the session replicas reached Redis again", dashboard_answers, 60)
    dashboard = client.get("/session/dashboard")
    assert dashboard.status_code == 200, dashboard.text
    assert dashboard.json() == {"message": "Welcome, compose-user"}


@live
def test_down_removes_containers_and_volumes(compose: Compose) -> None:
    compose.run("down", "-v", "--remove-orphans")
    assert compose.run("ps", "-q").stdout.split() == []
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"name={PROJECT}_"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert volumes == []
