"""`authscale users`: the commands an operator runs against Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from authscale.lab.stack.local import LocalStack
from tests.conftest import CHEAP_ARGON2


def users(stack: LocalStack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_users(*args, stdin=stdin, env={"AUTHSCALE_REDIS_URL": stack.redis_url})


def run_users(*args: str, stdin: str = "", env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key != "AUTHSCALE_REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "authscale", "users", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **CHEAP_ARGON2, **env},
        check=False,
    )


def login(stack: LocalStack, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{stack.gateway_url}/session/login", json={"username": username, "password": password}
    )


def test_add_then_log_in(stack: LocalStack) -> None:
    result = users(stack, "add", "operator-1", "--password-stdin", stdin="first-pass\n")
    assert result.returncode == 0, result.stderr
    assert login(stack, "operator-1", "first-pass").status_code == 200
    again = users(stack, "add", "operator-1", "--password-stdin", stdin="other\n")
    assert again.returncode == 1 and "exists already" in again.stderr


def test_add_refuses_a_bad_username(stack: LocalStack) -> None:
    result = users(stack, "add", "bad name", "--password-stdin", stdin="pw\n")
    assert result.returncode == 1
    assert result.stderr.startswith("authscale: username must be")
    assert "Traceback" not in result.stderr


def test_seed_creates_load_test_users(stack: LocalStack) -> None:
    result = users(stack, "seed", "--count", "25", "--password", "seeded-pass")
    assert result.returncode == 0, result.stderr
    assert "seeded 25 users loaduser0..loaduser24" in result.stdout
    assert login(stack, "loaduser24", "seeded-pass").status_code == 200
    assert login(stack, "loaduser25", "seeded-pass").status_code == 401


def test_seed_again_with_a_prefix_resets_the_same_accounts(stack: LocalStack) -> None:
    first = users(stack, "seed", "--count", "3", "--prefix", "load.a-", "--password", "first")
    assert first.returncode == 0, first.stderr
    assert "seeded 3 users load.a-0..load.a-2" in first.stdout
    # Over existing accounts (a deployment seeding on every start): they take the new password.
    again = users(stack, "seed", "--count", "3", "--prefix", "load.a-", "--password", "second")
    assert again.returncode == 0, again.stderr
    assert login(stack, "load.a-2", "second").status_code == 200
    assert login(stack, "load.a-2", "first").status_code == 401


def test_seed_refuses_a_prefix_no_username_can_start_with(stack: LocalStack) -> None:
    bad = users(stack, "seed", "--count", "3", "--prefix", "load user")
    assert bad.returncode == 2, "a usage error, which a retrying caller does not retry"
    assert "a prefix is letters, digits" in bad.stderr
    too_long = users(stack, "seed", "--count", "100", "--prefix", "p" * 63)
    assert too_long.returncode == 1
    assert too_long.stderr.startswith("authscale: username must be")


def test_passwd_changes_the_password_and_ends_every_session(stack: LocalStack) -> None:
    users(stack, "add", "operator-2", "--password-stdin", stdin="old-pass\n")
    with httpx.Client(base_url=stack.gateway_url) as client:
        assert (
            client.post(
                "/session/login", json={"username": "operator-2", "password": "old-pass"}
            ).status_code
            == 200
        )
        result = users(stack, "passwd", "operator-2", "--password-stdin", stdin="new-pass\n")
        assert result.returncode == 0, result.stderr
        assert "ended 1 session(s)" in result.stdout
        assert client.get("/session/dashboard").status_code == 401
    assert login(stack, "operator-2", "old-pass").status_code == 401
    assert login(stack, "operator-2", "new-pass").status_code == 200
    missing = users(stack, "passwd", "nobody-here", "--password-stdin", stdin="x\n")
    assert missing.returncode == 1


def test_passwd_also_revokes_every_refresh_token_family(stack: LocalStack) -> None:
    users(stack, "add", "operator-3", "--password-stdin", stdin="old-pass\n")
    credentials = {"username": "operator-3", "password": "old-pass"}
    with httpx.Client(base_url=stack.gateway_url) as client:
        logins = [client.post("/token/login", json=credentials).json() for _ in range(2)]
        result = users(stack, "passwd", "operator-3", "--password-stdin", stdin="new-pass\n")
        assert result.returncode == 0, result.stderr
        assert "revoked 2 refresh token families" in result.stdout
        for body in logins:
            refreshed = client.post("/token/refresh", json={"refresh_token": body["refresh_token"]})
            assert refreshed.status_code == 401


def test_without_a_redis_url_the_running_local_stacks_redis_serves(stack: LocalStack) -> None:
    # What `make up` then `authscale users add` relies on: the stack's stack.json names its Redis.
    result = run_users(
        "add",
        "operator-4",
        "--password-stdin",
        stdin="local-pass\n",
        env={"AUTHSCALE_RUN_DIR": str(stack.run_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert login(stack, "operator-4", "local-pass").status_code == 200


def test_without_a_redis_url_or_a_running_stack_the_variable_is_named(tmp_path: Path) -> None:
    result = run_users(
        "add", "x", "--password-stdin", stdin="pw\n", env={"AUTHSCALE_RUN_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "AUTHSCALE_REDIS_URL" in result.stderr and "Traceback" not in result.stderr


def test_the_help_says_where_redis_comes_from() -> None:
    result = run_users("--help", env={})
    assert "$AUTHSCALE_REDIS_URL, else the Redis of the local stack" in " ".join(
        result.stdout.split()
    )
