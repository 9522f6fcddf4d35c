"""The shell the Redis manifests run, run here against a real redis-server: the StatefulSet's
start script (password, persistence, maxmemory, and in denylist mode the token replicas'
read-only user) and the backup CronJob's snapshot and rotation. Only the paths, the address
and the port differ from what the pods run."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from authscale.lab.stack.processes import free_port
from authscale.tokens.denylist import ACL_USER, denied_family_key
from tests.manifests import Deployment, Manifest, by_kind, pod_spec, rendered

BACKUPS_KEPT = 7


def container(kind: str, name: str, components: tuple[str, ...] = ()) -> Manifest:
    manifests = rendered(Deployment("local", components))
    (found,) = pod_spec(by_kind(manifests, kind)[name])["containers"]
    found_container: Manifest = found
    return found_container


@pytest.fixture
def in_cluster_redis(tmp_path: Path) -> Iterator[tuple[int, str, str]]:
    """The StatefulSet's own start script, in denylist mode; yields port and both passwords."""
    redis_container = container("StatefulSet", "redis", ("token-denylist",))
    command = redis_container["command"]
    env = {item["name"]: item.get("value") for item in redis_container["env"]}
    port, password, token_password = free_port(), secrets.token_hex(16), secrets.token_hex(16)
    data = tmp_path / "data"
    data.mkdir()
    script = (
        command[-1]
        .replace("/tmp/redis.conf", str(tmp_path / "redis.conf"))
        .replace("--dir /data", f"--dir {data}")
        .replace(
            "exec redis-server",
            f"exec {shutil.which('redis-server') or '/usr/bin/redis-server'}"
            f" --port {port} --bind 127.0.0.1 --include",
        )
    )
    process = subprocess.Popen(
        [*command[:-1], script],
        env={
            "PATH": os.environ["PATH"],
            "REDIS_PASSWORD": password,
            "REDIS_TOKEN_PASSWORD": token_password,
            "REDIS_MAXMEMORY": str(env["REDIS_MAXMEMORY"]),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, password=password)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert process.poll() is None, "redis-server refused the start script's config"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield port, password, token_password
    finally:
        process.terminate()
        process.wait(10)


def test_the_start_script_sets_password_persistence_and_memory(
    in_cluster_redis: tuple[int, str, str],
) -> None:
    port, password, _ = in_cluster_redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    client = redis.Redis(port=port, password=password, decode_responses=True)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("maxmemory") == {"maxmemory": str(230 * 2**20)}


def test_the_token_user_may_only_check_denylist_markers(
    in_cluster_redis: tuple[int, str, str],
) -> None:
    port, password, token_password = in_cluster_redis
    redis.Redis(port=port, password=password).set(denied_family_key("ab12", "f1"), 1)
    token = redis.Redis(port=port, username=ACL_USER, password=token_password)
    assert token.exists(denied_family_key("ab12", "f1")) == 1
    with pytest.raises(redis.exceptions.NoPermissionError):
        token.get(denied_family_key("ab12", "f1"))
    with pytest.raises(redis.exceptions.NoPermissionError):
        token.exists("session:anything")


def test_the_backup_job_snapshots_and_keeps_the_last_seven(
    in_cluster_redis: tuple[int, str, str], tmp_path: Path
) -> None:
    port, password, _ = in_cluster_redis
    redis.Redis(port=port, password=password).set("user:alice", "kept")
    backups = tmp_path / "backups"
    backups.mkdir()
    for day in range(BACKUPS_KEPT + 2):  # older snapshots, oldest first
        old = backups / f"redis-2026010{day}T031700Z.rdb"
        old.write_bytes(b"old")
        os.utime(old, (1_700_000_000 + day, 1_700_000_000 + day))
    job = container("CronJob", "redis-backup")
    command = job["command"]
    script = command[-1].replace("/backups", str(backups)).replace("-h redis", f"-p {port}")
    subprocess.run(
        [*command[:-1], script],
        env={"PATH": os.environ["PATH"], "REDISCLI_AUTH": password},
        check=True,
        capture_output=True,
        timeout=60,
    )
    snapshots = sorted(backups.iterdir(), key=lambda path: path.stat().st_mtime)
    assert len(snapshots) == BACKUPS_KEPT
    newest = snapshots[-1]
    assert newest.read_bytes().startswith(b"REDIS")
    assert b"user:alice" in newest.read_bytes()
    assert not list(backups.glob("*.partial"))
