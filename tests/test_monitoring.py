"""The monitoring profile: Prometheus's configuration, its recording rules and the Grafana
dashboard, checked offline against the metrics the code defines; then, with Docker, the profile
brought up on a scaled stack and read back through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY

import authscale.core.metrics  # noqa: F401 - defines every authscale_* metric in REGISTRY
from authscale.lab.compose.images import stand_in_environ
from authscale.lab.stack.gateway import REPLICA_PORT, STATUS_PORT
from authscale.lab.stack.processes import free_port
from tests.test_compose import Compose, answers, engine_program

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "authscale.json"
PROJECT = "authscale-monitoring-test"
VARIANTS = ("session", "token")

#: A series name in PromQL: a recorded one (``level:metric:operations``) or a metric of ours or
#: of the exporters. Label values ("/metrics") and functions never match.
SERIES = re.compile(r"\b(?:[a-z_]+:[a-z0-9_]+:[a-z0-9_]+|(?:authscale|nginx|redis|process)_\w+)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, str]]:
    groups = load_yaml(MONITORING / "rules.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def defined_in_code() -> set[str]:
    """Every series name prometheus-client exposes for the metrics of authscale.core.metrics."""
    names = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("authscale_"):
            continue
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
        else:
            names.add(family.name)
    return names


# -- offline: the files, against the code ------------------------------------------------------


def test_prometheus_finds_every_replica_by_dns_and_scrapes_both_exporters() -> None:
    config = load_yaml(MONITORING / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    discovery = jobs["authscale"]["dns_sd_configs"]
    assert discovery == [
        {"names": ["session", "token", "issuer"], "type": "A", "port": REPLICA_PORT,
         "refresh_interval": "5s"},
    ]  # fmt: skip
    assert jobs["gateway"]["static_configs"] == [{"targets": ["nginx-exporter:9113"]}]
    assert jobs["redis"]["static_configs"] == [{"targets": ["redis-exporter:9121"]}]
    services = load_yaml(ROOT / "compose.yaml")["services"]
    mounts = services["prometheus"]["volumes"]
    assert "./deploy/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert "./deploy/monitoring/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
    assert services["nginx-exporter"]["command"] == [
        f"--nginx.scrape-uri=http://gateway:{STATUS_PORT}/stub_status"
    ]


def test_rules_and_dashboard_name_only_series_that_exist() -> None:
    recorded = {rule["record"] for rule in rules()}
    ours = defined_in_code()
    used = {
        name
        for expression in [rule["expr"] for rule in rules()] + dashboard_expressions()
        for name in SERIES.findall(expression)
    }
    unknown = {name for name in used if name.startswith("authscale_") and name not in ours}
    assert unknown == set(), f"not defined in authscale.core.metrics: {sorted(unknown)}"
    unrecorded = {name for name in used if ":" in name and name not in recorded}
    assert unrecorded == set(), f"not recorded in rules.yml: {sorted(unrecorded)}"
    assert "authscale_request_duration_seconds_bucket" in used


def test_the_dashboard_has_a_row_per_variant_with_rate_quantiles_and_errors() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert [row.split()[0] for row in rows[:2]] == list(VARIANTS)
    assert {"Redis", "Gateway (nginx)"} <= set(rows)
    expressions = dashboard_expressions()
    for variant in VARIANTS:
        mine = [expr for expr in expressions if f'variant="{variant}"' in expr]
        for series in ("requests:rate1m", "p50", "p95", "p99", "refusals", "server_errors"):
            assert any(series in expr for expr in mine), (variant, series)
    datasource = load_yaml(
        MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    )
    uid = datasource["datasources"][0]["uid"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]


# -- with Docker: the profile on a scaled stack --------------------------------------------------


#: Generous bounds that prove "does not hang".
UP_TIMEOUT = 300.0
SCRAPE_TIMEOUT = 120.0
SERVICES = ("redis", "keys", "users", "issuer", "session", "token", "gateway")
#: The profile without Grafana, whose image CI cannot reach: the dashboard is checked offline.
MONITORED = ("prometheus", "nginx-exporter", "redis-exporter")


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expression: str) -> dict[str, float]:
        """An instant query's result: each series' labels (as text) -> its value."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return {
            json.dumps(item["metric"], sort_keys=True): float(item["value"][1])
            for item in body["data"]["result"]
        }

    def by(self, label: str, expression: str) -> dict[str, float]:
        return {
            json.loads(labels).get(label, ""): value
            for labels, value in self.query(expression).items()
        }

    def names(self) -> set[str]:
        response = httpx.get(f"{self.url}/api/v1/label/__name__/values", timeout=10)
        return set(response.json()["data"])


def wait_for(what: str, check: Any, compose: Compose, timeout: float = SCRAPE_TIMEOUT) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, ValueError):
            found = None
        if found:
            return found
        time.sleep(2)
    raise AssertionError(f"{what} within {timeout:.0f}s; recent logs:\n{compose.logs()}")


@pytest.fixture(scope="module")
def monitored() -> Iterator[tuple[Compose, Prometheus]]:
    program = engine_program("the monitoring test")
    gateway_port, prometheus_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    wheels = any((ROOT / "deploy" / "wheels").glob("*.whl"))
    env = {
        **os.environ,
        **stand_in_environ(os.environ),
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_PROFILES": "monitoring",
        "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24),
        "AUTHSCALE_COOKIE_SECURE": "false",
        "AUTHSCALE_DEMO_USER": "true",
        "AUTHSCALE_ARGON2_MEMORY_KIB": "1024",
        "AUTHSCALE_ARGON2_TIME_COST": "1",
        "AUTHSCALE_GATEWAY_PORT": str(gateway_port),
        "AUTHSCALE_PROMETHEUS_PORT": str(prometheus_port),
        "AUTHSCALE_BUILD_OFFLINE": os.environ.get("AUTHSCALE_BUILD_OFFLINE")
        or ("1" if wheels else ""),
    }
    stack = Compose(program, env, f"http://127.0.0.1:{gateway_port}")
    prometheus = Prometheus(f"http://127.0.0.1:{prometheus_port}")
    stack.run("down", "-v", "--remove-orphans", check=False)
    stack.run("build", "session")
    try:
        # One replica each at first: the test then scales, and Prometheus must follow.
        stack.run("up", "-d", "--scale", "session=1", "--scale", "token=1", *SERVICES, *MONITORED)
        stack.wait_until("the gateway answered", lambda: answers(f"{stack.gateway_url}/healthz"))
        stack.wait_until(
            "Prometheus was ready", lambda: answers(f"{prometheus.url}/-/ready"), UP_TIMEOUT
        )
        yield stack, prometheus
    finally:
        stack.run("down", "-v", "--remove-orphans", check=False)


def replicas_up(prometheus: Prometheus) -> dict[str, float]:
    return prometheus.by("service", 'sum by (service) (up{job="authscale"} == 1)')


def send_load(gateway_url: str, seconds: float) -> None:
    """Both variants' flows through the gateway, as the demo user, for about ``seconds``."""
    credentials = {"username": "admin", "password": "password123"}
    with (
        httpx.Client(base_url=gateway_url, timeout=30) as session,
        httpx.Client(base_url=gateway_url, timeout=30) as token,
    ):
        assert session.post("/session/login", json=credentials).status_code == 200
        login = token.post("/token/login", json=credentials)
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert session.get("/session/dashboard").status_code == 200
            assert token.get("/token/dashboard", headers=bearer).status_code == 200
        # A few refusals, so the 401 series exist too.
        for client in (session, token):
            client.cookies.clear()
        assert session.get("/session/dashboard").status_code == 401
        assert token.get("/token/dashboard").status_code == 401


@pytest.mark.compose
def test_prometheus_follows_scaling_and_reads_both_variants_rates(
    monitored: tuple[Compose, Prometheus],
) -> None:
    compose, prometheus = monitored
    # The configuration and rules as this Prometheus reads them (promtool ships beside it).
    checked = compose.run(
        "exec", "-T", "prometheus", "promtool", "check", "config", "/etc/prometheus/prometheus.yml"
    )
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout + checked.stderr
    wait_for(
        "Prometheus scraped one replica per variant",
        lambda: replicas_up(prometheus) == {"session": 1, "token": 1, "issuer": 2},
        compose,
    )
    compose.scale(session=3, token=3)
    wait_for(
        "Prometheus found every replica of the scaled stack by DNS",
        lambda: replicas_up(prometheus) == {"session": 3, "token": 3, "issuer": 2},
        compose,
    )

    send_load(compose.gateway_url, seconds=20)
    rates = wait_for(
        "Prometheus recorded a request rate for both variants",
        lambda: (
            (found := prometheus.by("variant", "variant:authscale_requests:rate1m"))
            and all(found.get(variant, 0) > 0 for variant in VARIANTS)
            and found
        ),
        compose,
    )
    assert set(rates) == set(VARIANTS)
    # The same figure straight from the raw histogram, and its quantiles.
    raw = prometheus.by(
        "role", "sum by (role) (rate(authscale_request_duration_seconds_count[1m]))"
    )
    assert raw["session"] > 0 and raw["token"] > 0
    p95 = prometheus.by(
        "role",
        "histogram_quantile(0.95, sum by (role, le) "
        '(rate(authscale_request_duration_seconds_bucket{route=~"/(session|token)/dashboard"}[1m])))',
    )
    for role in VARIANTS:
        assert 0 < p95[role] < 10, (role, p95)
    # Every series the dashboard draws exists now, the exporters' included.
    present = prometheus.names()
    drawn = {name for expression in dashboard_expressions() for name in SERIES.findall(expression)}
    missing = {name for name in drawn if ":" not in name and name not in present}
    assert missing == set()
    assert prometheus.query("nginx_up") and prometheus.query("redis_up")
