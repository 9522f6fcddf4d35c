"""compose.yaml's load profile brought up for real: the locust-accounts one-shot seeds the
accounts Locust logs in with before Locust starts (and seeds them again harmlessly), then a short
swarm started through Locust's web API logs in and reads the dashboard of both variants, through
the gateway, without one failure.

Needs a Docker engine like tests/test_compose.py, and skips or fails (under CI) as it does. Where
no registry answers, deploy/prepare-docker.sh builds Locust's stand-in image.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authscale.lab.compose.images import stand_in_environ
from authscale.lab.stack.processes import free_port
from tests.test_compose import ROOT, UP_TIMEOUT, Compose, answers, compose_file, engine_program

PROJECT = "authscale-load-test"
#: Fewer accounts than the default, under another prefix: the test sees that Locust logs in with
#: the ones the variables name, and that the one-shot seeded exactly those.
ACCOUNTS = 20
PREFIX = "compose-load-"
USERS = 4
#: Locust stops the swarm itself after this long (the issue asks a 30 s run with zero failures).
RUN_TIME = "30s"
#: Mean seconds between two actions of a user (the locustfile's --think-time): a light load on a
#: shared machine, and a failing login retried 10 times a second rather than in a tight loop.
THINK_TIME = "0.1"
ONE_SHOT = "locust-accounts"
VARIANTS = ("session", "token")


# -- the file itself: no engine needed ---------------------------------------------------------


def test_one_pair_of_variables_sets_the_accounts_the_one_shot_seeds_and_locust_uses() -> None:
    services = compose_file()["services"]
    accounts = {
        "LOCUST_ACCOUNTS": "${AUTHSCALE_LOCUST_ACCOUNTS:-1000}",
        "LOCUST_ACCOUNT_PREFIX": "${AUTHSCALE_LOCUST_ACCOUNT_PREFIX:-loaduser}",
    }
    for name in (ONE_SHOT, "locust", "locust-worker"):
        environment = services[name]["environment"]
        assert {key: environment[key] for key in accounts} == accounts, name
    script = services[ONE_SHOT]["command"][-1]
    assert 'seed --count "$$LOCUST_ACCOUNTS" --prefix "$$LOCUST_ACCOUNT_PREFIX"' in script
    # Locust's own defaults for --accounts and --account-prefix are the variables' defaults.
    locustfile = (ROOT / "loadtests" / "locustfile.py").read_text()
    assert "default=1000," in locustfile and 'default="loaduser",' in locustfile


def test_locust_starts_only_after_the_accounts_exist() -> None:
    services = compose_file()["services"]
    assert services["locust"]["depends_on"][ONE_SHOT] == {
        "condition": "service_completed_successfully"
    }
    assert services["locust-worker"]["depends_on"] == {"locust": {"condition": "service_healthy"}}
    for name in ("locust", "locust-worker"):
        assert services[name]["image"] == "${AUTHSCALE_LOCUST_IMAGE:-locustio/locust:2.47.0}"


# -- the profile, for real -----------------------------------------------------------------------


class Locust:
    """The master's web API, as its web UI uses it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/stats/requests", timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def requests(self, name: str) -> dict[str, Any]:
        """The statistics of one request name (all zero before its first request)."""
        for entry in self.stats()["stats"]:
            if entry["name"] == name:
                found: dict[str, Any] = entry
                return found
        return {"name": name, "num_requests": 0, "num_failures": 0}

    def swarm(self, **form: str) -> None:
        """Start a run as the web UI's form does; the host is the master's (the gateway)."""
        response = httpx.post(f"{self.url}/swarm", data=form, timeout=10)
        response.raise_for_status()
        assert response.json()["success"] is True, response.text

    def stopped(self) -> bool:
        try:
            return self.stats()["state"] == "stopped"
        except (httpx.HTTPError, ValueError):
            return False


def workers_ready(locust: Locust, count: int) -> bool:
    try:
        return int(locust.stats().get("worker_count", 0)) == count
    except (httpx.HTTPError, ValueError):
        return False


@pytest.fixture(scope="module")
def load_compose() -> Iterator[tuple[Compose, Locust]]:
    program = engine_program("the load profile's test")
    gateway_port, locust_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    wheels = any((ROOT / "deploy" / "wheels").glob("*.whl"))
    env = {
        **os.environ,
        # Locust's stand-in among them, where deploy/prepare-docker.sh built it.
        **stand_in_environ(os.environ),
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_PROFILES": "load",
        # An image tag of this test's own: another compose test rebuilding authscale:local
        # from another tree meanwhile cannot swap the image under this one.
        "AUTHSCALE_IMAGE": f"authscale:{PROJECT}",
        "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24),
        # Plain HTTP to the gateway: Locust's cookie jar keeps a Secure cookie to itself.
        "AUTHSCALE_COOKIE_SECURE": "false",
        "AUTHSCALE_ARGON2_MEMORY_KIB": "1024",
        "AUTHSCALE_ARGON2_TIME_COST": "1",
        "AUTHSCALE_GATEWAY_PORT": str(gateway_port),
        "AUTHSCALE_LOCUST_PORT": str(locust_port),
        # The tutorial's page comes up too; on a free port, like everything this test publishes.
        "AUTHSCALE_WEB_PORT": str(free_port("127.0.0.1")),
        "AUTHSCALE_LOCUST_ACCOUNTS": str(ACCOUNTS),
        "AUTHSCALE_LOCUST_ACCOUNT_PREFIX": PREFIX,
        "AUTHSCALE_BUILD_OFFLINE": os.environ.get("AUTHSCALE_BUILD_OFFLINE")
        or ("1" if wheels else ""),
    }
    stack = Compose(program, env, f"http://127.0.0.1:{gateway_port}")
    locust = Locust(f"http://127.0.0.1:{locust_port}")
    stack.run("down", "-v", "--remove-orphans", check=False)
    stack.run("build", ONE_SHOT)
    try:
        # One replica per variant is plenty for a few simulated users on 2 cores.
        stack.run("up", "-d", "--scale", "session=1", "--scale", "token=1")
        stack.wait_until("Locust's web UI answered", lambda: answers(locust.url))
        stack.wait_until("both Locust workers joined the master", lambda: workers_ready(locust, 2))
        yield stack, locust
    finally:
        stack.run("down", "-v", "--remove-orphans", check=False)


def one_shot_exit_code(compose: Compose) -> str:
    containers = compose.run("ps", "-a", "-q", ONE_SHOT).stdout.split()
    assert len(containers) == 1, containers
    waited = subprocess.run(
        ["docker", "wait", *containers],
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT,
        check=True,
    )
    return waited.stdout.strip()


@pytest.mark.compose
def test_the_one_shot_seeds_the_accounts_and_seeds_them_again_harmlessly(
    load_compose: tuple[Compose, Locust],
) -> None:
    compose, _ = load_compose
    assert one_shot_exit_code(compose) == "0", compose.logs()
    seeded = f"seeded {ACCOUNTS} users {PREFIX}0..{PREFIX}{ACCOUNTS - 1}"
    assert seeded in compose.run("logs", "--no-color", ONE_SHOT).stdout
    # As on a second `up`: the accounts exist now, and seeding them again still succeeds.
    again = compose.run("run", "--rm", "--no-deps", ONE_SHOT)
    assert seeded in again.stdout, again.stdout + again.stderr


@pytest.mark.compose
def test_a_short_swarm_logs_in_and_reads_both_variants_without_failures(
    load_compose: tuple[Compose, Locust],
) -> None:
    compose, locust = load_compose
    locust.swarm(
        user_count=str(USERS), spawn_rate=str(USERS), run_time=RUN_TIME, think_time=THINK_TIME
    )
    compose.wait_until("the Locust run stopped at its run time", locust.stopped)
    stats = locust.stats()
    failures = {entry["name"]: entry["num_failures"] for entry in stats["stats"]}
    assert stats["errors"] == [] and set(failures.values()) == {0}, (failures, stats["errors"])
    logins = {variant: locust.requests(f"{variant} login")["num_requests"] for variant in VARIANTS}
    # Every simulated user logged in once, and only once: none had to try again.
    assert sum(logins.values()) == USERS and all(logins.values()), logins
    for variant in VARIANTS:
        assert locust.requests(f"{variant} dashboard")["num_requests"] > 0, variant
