"""The nginx gateway: rendering, and the session variant through it with two replicas."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from authscale import cli
from authscale.lab.stack.gateway import (
    HSTS,
    POD_NAMESERVER,
    RENDERED_COPIES,
    STATUS_PORT,
    GatewayConfig,
    compose_config,
    kubernetes_config,
    render,
)
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import free_port
from tests.conftest import PASSWORD, SessionAuth, add_user, json_of, stack_config


def config(tmp_path: Path, **overrides: object) -> GatewayConfig:
    values: dict[str, object] = {
        "listen": "127.0.0.1:8080",
        "upstreams": {"session": ["127.0.0.1:8101", "127.0.0.1:8102"]},
        "pid_file": str(tmp_path / "nginx.pid"),
        "error_log": str(tmp_path / "error.log"),
        "access_log": str(tmp_path / "access.log"),
        "temp_dir": str(tmp_path / "temp"),
    }
    values.update(overrides)
    return GatewayConfig(**values)  # type: ignore[arg-type]


def test_rendered_config_is_valid_nginx(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    (tmp_path / "temp").mkdir()
    path = tmp_path / "nginx.conf"
    path.write_text(render(config(tmp_path, real_ip_from=["10.0.0.0/8"])))
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(path), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_replica_is_listed_and_an_empty_role_is_marked_down(tmp_path: Path) -> None:
    text = render(config(tmp_path))
    assert "server 127.0.0.1:8101 max_fails=2 fail_timeout=5s;" in text
    assert "server 127.0.0.1:8102 max_fails=2 fail_timeout=5s;" in text
    token_block = text.split("upstream token {")[1].split("}")[0]
    assert "down;" in token_block


def test_trusted_load_balancers_set_the_real_client_address(tmp_path: Path) -> None:
    text = render(config(tmp_path, real_ip_from=["10.0.0.0/8"]))
    assert "set_real_ip_from 10.0.0.0/8;" in text
    assert "set_real_ip_from" not in render(config(tmp_path))


def test_unknown_placeholder_and_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no value"):
        render(config(tmp_path), template="listen {{ nope }};")
    with pytest.raises(ValueError, match="login rate"):
        config(tmp_path, login_rate="fast")
    with pytest.raises(ValueError, match="unknown gateway roles"):
        config(tmp_path, upstreams={"admin": ["127.0.0.1:1"]})


def test_a_session_made_on_one_replica_is_honoured_on_the_other(auth: SessionAuth) -> None:
    assert auth.login().status_code == 200
    replicas = set()
    for _ in range(6):
        response = auth.client.get("/session/dashboard")
        assert response.status_code == 200
        assert json_of(response) == {"message": f"Welcome, {auth.username}"}
        replicas.add(response.headers["X-Replica"])
    assert replicas == {"session-1", "session-2"}


def test_logout_on_one_replica_is_401_on_every_replica(
    auth: SessionAuth, stack: LocalStack
) -> None:
    auth.login()
    cookie = auth.client.cookies["authscale_session"]
    assert auth.logout().status_code == 200
    for url in stack.replica_urls("session"):
        response = httpx.get(
            f"{url}/session/dashboard", headers={"Cookie": f"authscale_session={cookie}"}
        )
        assert response.status_code == 401, url
    replayed = httpx.get(
        f"{stack.gateway_url}/session/dashboard",
        headers={"Cookie": f"authscale_session={cookie}"},
    )
    assert replayed.status_code == 401


def test_logout_all_ends_sessions_made_on_other_replicas(
    auth: SessionAuth, stack: LocalStack
) -> None:
    username = add_user(stack.redis_url)
    phones = []
    for _ in range(3):
        client = httpx.Client(base_url=stack.gateway_url)
        login = client.post("/session/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200
        phones.append(client)
    auth.login(username)
    response = auth.logout("/session/logout-all")
    assert json_of(response)["sessions_ended"] == 4
    for client in phones:
        assert client.get("/session/dashboard").status_code == 401
        client.close()


def test_gateway_errors_are_json(gateway: httpx.Client) -> None:
    cases = [
        (gateway.get("/nowhere"), 404),
        (gateway.get("/metrics"), 404),
        (gateway.get("/readyz"), 404),
        (
            gateway.post(
                "/session/login",
                content=b"x" * 20_000,
                headers={"Content-Type": "application/json"},
            ),
            413,
        ),
        (gateway.get("/session/dashboard", headers={"Cookie": "a=" + "b" * 65_536}), 431),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert "message" in json_of(response)
    assert json_of(gateway.get("/healthz")) == {"status": "alive", "role": "gateway"}


def test_gateway_passes_request_id_and_replica(gateway: httpx.Client) -> None:
    response = gateway.get("/session/ping")
    assert response.status_code == 200
    assert len(response.headers["X-Request-ID"]) == 32
    assert response.headers["X-Replica"].startswith("session-")


def test_browser_client_from_the_dev_server_origin(gateway: httpx.Client) -> None:
    preflight = gateway.options(
        "/session/login",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    other = gateway.get("/session/ping", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    run_dir = tmp_path_factory.mktemp("limited")
    local = LocalStack(stack_config(run_dir, replicas=1, login_rate="1r/s", login_burst=3))
    local.start()
    yield local
    local.stop()


def test_login_bursts_are_rate_limited_with_json_429(limited_stack: LocalStack) -> None:
    statuses = []
    with httpx.Client(base_url=limited_stack.gateway_url) as client:
        for _ in range(12):
            response = client.post("/session/login", json={"username": "x", "password": "y"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "1"
                assert json_of(response) == {"message": "Too many requests"}
        # Reads are not limited.
        assert all(client.get("/session/ping").status_code == 200 for _ in range(10))
    assert 429 in statuses
    assert set(statuses) <= {401, 429}


@pytest.mark.parametrize("path", ["/token/refresh", "/token/logout"])
def test_refresh_and_logout_bursts_are_rate_limited_too(
    limited_stack: LocalStack, path: str
) -> None:
    """They write to Redis: a flood of them is held at the gateway like a flood of logins."""
    body = {"refresh_token": "abcd." + "h" * 22 + "." + "x" * 43}
    with httpx.Client(base_url=limited_stack.gateway_url) as client:
        statuses = [client.post(path, json=body).status_code for _ in range(12)]
    assert 429 in statuses
    assert set(statuses) <= {200, 401, 429}


# -- the presets and their committed copies (authscale gateway render) -------------------------

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("target", sorted(RENDERED_COPIES))
def test_committed_renders_match_the_template(target: str, tmp_path: Path) -> None:
    output = tmp_path / "nginx.conf"
    assert cli.main(["gateway", "render", "--target", target, "--output", str(output)]) == 0
    committed = RENDERED_COPIES[target]
    assert (ROOT / committed).read_text() == output.read_text(), (
        f"{committed} drifted from gateway/nginx.conf.template; render it again: "
        f"authscale gateway render --target {target} --output {committed}"
    )


def test_render_prints_the_local_stack_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gateway", "render", "--target", "local"]) == 0
    text = capsys.readouterr().out
    assert "listen 127.0.0.1:8080;" in text
    assert "server 127.0.0.1:8101 max_fails=2" in text


def test_compose_config_is_valid_nginx_with_the_names_resolved(tmp_path: Path) -> None:
    # Docker's DNS is not here: point the service names at loopback so nginx -t can resolve them.
    text = render(compose_config())
    for role in ("session", "token", "issuer"):
        text = text.replace(f"server {role}:8000", "server 127.0.0.1:8000")
    text = text.replace("/tmp", str(tmp_path))
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-c", str(path), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@dataclass(frozen=True)
class ComposeGateway:
    url: str
    #: The internal-only stub_status listener (compose's port 8081).
    status_url: str


@pytest.fixture
def gateway_without_replicas(tmp_path: Path) -> Iterator[ComposeGateway]:
    """The compose gateway, with HSTS as in production, every upstream a closed loopback port."""
    closed = free_port()
    text = render(compose_config()).replace(
        "    server {\n", "    server {\n        " + HSTS + "\n", 1
    )
    for role in ("session", "token", "issuer"):
        text = text.replace(f"server {role}:8000", f"server 127.0.0.1:{closed}")
    port, status_port = free_port(), free_port()
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace(f"listen {STATUS_PORT};", f"listen 127.0.0.1:{status_port};")
    text = text.replace("/tmp", str(tmp_path)).replace("/dev/stdout", str(tmp_path / "a.log"))
    (tmp_path / "nginx.conf").write_text(text)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen(
        [
            nginx,
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    yield ComposeGateway(url, f"http://127.0.0.1:{status_port}")
    process.terminate()
    process.wait(10)


def assert_gateway_headers(response: httpx.Response, *, hsts: bool) -> None:
    """What every answer carries, whoever made it."""
    assert len(response.headers["X-Request-ID"]) == 32
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers.get_list("Cache-Control") == ["no-store"]
    assert ("Strict-Transport-Security" in response.headers) == hsts
    assert "message" in json_of(response)


def test_the_gateways_own_errors_carry_every_header(
    gateway_without_replicas: ComposeGateway,
) -> None:
    with httpx.Client(base_url=gateway_without_replicas.url, timeout=10) as client:
        for response in (client.get("/session/ping"), client.get("/token/ping")):
            assert response.status_code == 502
            assert response.headers["Retry-After"] == "1"
            assert_gateway_headers(response, hsts=True)
        for response, status in ((client.get("/nowhere"), 404), (client.get("/healthz"), 200)):
            assert response.status_code == status
            assert "Retry-After" not in response.headers
            assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_stub_status_answers_only_on_the_internal_listener(
    gateway_without_replicas: ComposeGateway,
) -> None:
    public = httpx.get(f"{gateway_without_replicas.url}/stub_status", timeout=10)
    assert public.status_code == 404
    assert json_of(public) == {"message": "Not found"}
    status = httpx.get(f"{gateway_without_replicas.status_url}/stub_status", timeout=10)
    assert status.status_code == 200
    # What the nginx exporter parses: the stub_status module's plain-text counters.
    assert status.text.startswith("Active connections: ")
    assert "server accepts handled requests" in status.text
    # Nothing else is served there: it is for the exporter, not a second way in.
    assert httpx.get(f"{gateway_without_replicas.status_url}/session/ping").status_code == 404


def test_compose_publishes_only_the_public_listener() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    ports = compose["services"]["gateway"]["ports"]
    assert ports == ["${AUTHSCALE_GATEWAY_BIND:-127.0.0.1}:${AUTHSCALE_GATEWAY_PORT:-8080}:8080"]
    assert f"listen {STATUS_PORT};" in (ROOT / RENDERED_COPIES["compose"]).read_text()


def test_nginx_429_carries_every_header(limited_stack: LocalStack) -> None:
    with httpx.Client(base_url=limited_stack.gateway_url) as client:
        responses = [
            client.post("/session/login", json={"username": "x", "password": "y"})
            for _ in range(12)
        ]
    limited = [response for response in responses if response.status_code == 429]
    assert limited
    for response in limited:
        assert response.headers.get_list("Retry-After") == ["1"]
        assert_gateway_headers(response, hsts=False)
    replica_answers = [response for response in responses if response.status_code == 401]
    for response in replica_answers:  # a replica's own answer: its headers, not doubled
        assert response.headers.get_list("Cache-Control") == ["no-store"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_kubernetes_config_follows_pods_through_dns() -> None:
    text = render(kubernetes_config(namespace="auth", cluster_domain="example.internal"))
    # The pod's own nameserver, filled in when the gateway starts: no cluster's DNS baked in.
    assert f"resolver {POD_NAMESERVER} valid=5s ipv6=off;" in text
    for role in ("session", "token", "issuer"):
        assert f"zone {role} 256k;" in text
        assert f"server {role}.auth.svc.example.internal:8000 resolve max_fails=2" in text
    assert "keepalive 32;" in text
    assert "Strict-Transport-Security" not in text


def test_kubernetes_production_trusts_only_the_given_balancers() -> None:
    text = render(kubernetes_config(production=True, real_ip_from=["10.2.0.0/16"]))
    assert "set_real_ip_from 10.2.0.0/16;" in text
    assert "set_real_ip_from 10.0.0.0/8;" not in text
    assert "proxy_set_header X-Forwarded-Proto https;" in text
    assert 'Strict-Transport-Security "max-age=63072000; includeSubDomains" always;' in text
