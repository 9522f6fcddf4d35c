"""The Locust scripts (loadtests/locustfile.py), run for seconds against the shared stack.

Checks that right answers count as successes and wrong ones as failures, and that the same
files run alone and distributed (a master and a worker). Bounded: every run has a run time and
a subprocess timeout.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from authscale.core.settings import RedisSettings
from authscale.core.storage import RedisStore
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import free_port
from authscale.login.command import seed_users
from authscale.login.passwords import Passwords
from tests.conftest import CHEAP_PASSWORDS

LOCUSTFILE = Path(__file__).resolve().parents[1] / "loadtests" / "locustfile.py"
ACCOUNTS = 20


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> LocalStack:
    async def seed() -> None:
        store = RedisStore(RedisSettings(url=stack.redis_url, timeout=5))
        passwords = Passwords(CHEAP_PASSWORDS, workers=1)
        store.open()
        try:
            await seed_users(store, passwords, ACCOUNTS)
        finally:
            passwords.close()
            await store.close()

    asyncio.run(seed())
    return stack


def locust(
    stack: LocalStack, prefix: Path, *options: str, users: int = 3, seconds: int = 3
) -> dict[str, tuple[int, int]]:
    """Run Locust headless; return {request name: (requests, failures)} of the whole run.

    From ``--json-file``, written at exit from the final figures (the CSV files are rewritten
    once a second, and a worker reports every three, so a CSV of a short run may lag behind).
    """
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        stack.gateway_url,
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--json-file",
        str(prefix),
        "--accounts",
        str(ACCOUNTS),
        "--exit-code-on-error",
        "0",
        "--only-summary",
        *options,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    entries = json.loads(Path(f"{prefix}.json").read_text())
    return {e["name"]: (int(e["num_requests"]), int(e["num_failures"])) for e in entries}


@pytest.mark.lab
def test_session_readers_log_in_read_ping_and_log_out_without_a_failure(
    seeded: LocalStack, tmp_path: Path
) -> None:
    stats = locust(
        seeded,
        tmp_path / "s",
        "--variant",
        "session",
        "--ping-weight",
        "20",
        "--relogin-weight",
        "20",
    )
    for name in (
        "session login",
        "session dashboard",
        "session ping",
        "session logout",
        "session dashboard after logout",
    ):
        requests, failures = stats[name]
        assert requests > 0, name
        assert failures == 0, name


@pytest.mark.lab
def test_a_wrong_answer_is_a_failure(seeded: LocalStack, tmp_path: Path) -> None:
    # Accounts that do not exist: the failed logins must not get the seeded ones throttled.
    stats = locust(seeded, tmp_path / "w", "--variant", "session", "--account-prefix", "nobody")
    requests, failures = stats["session login"]
    assert requests > 0 and failures == requests
    assert "session dashboard" not in stats  # nobody got in, so nobody read a dashboard


@pytest.mark.lab
def test_the_login_storm_is_its_own_scenario(seeded: LocalStack, tmp_path: Path) -> None:
    stats = locust(seeded, tmp_path / "l", "--variant", "token", "--scenario", "login-storm")
    assert set(stats) == {"token login", "token logout"}
    assert all(failures == 0 and requests > 0 for requests, failures in stats.values())


@pytest.mark.lab
def test_token_readers_read_and_refresh_without_a_failure(
    seeded: LocalStack, tmp_path: Path
) -> None:
    stats = locust(
        seeded,
        tmp_path / "t",
        "--variant",
        "token",
        "--refresh-weight",
        "20",
        "--relogin-weight",
        "10",
        "--ping-weight",
        "10",
    )
    for name in ("token login", "token dashboard", "token refresh", "token ping", "token logout"):
        requests, failures = stats[name]
        assert requests > 0 and failures == 0, name


@pytest.mark.lab
def test_master_and_worker_run_the_same_files(seeded: LocalStack, tmp_path: Path) -> None:
    port = free_port()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--worker",
            "--master-port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stats = locust(
            seeded,
            tmp_path / "d",
            "--variant",
            "session",
            "--master",
            "--expect-workers",
            "1",
            "--master-bind-port",
            str(port),
            "--master-bind-host",
            "127.0.0.1",
        )
    finally:
        # The master tells its worker to quit at the end of the run.
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    requests, failures = stats["session dashboard"]
    assert requests > 0 and failures == 0
