"""In denylist mode a token replica's Redis user may check denylist markers and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from authscale.core.settings import RedisSettings
from authscale.core.slots import user_tag
from authscale.core.storage import RedisStore
from authscale.lab.stack.processes import free_port
from authscale.login.epoch import user_key
from authscale.tokens.denylist import ACL_RULES, ACL_USER, Denylist, acl_line, denied_family_key

ADMIN, TOKEN = "admin-password-for-the-test", "token-password-for-the-test"


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    conf = tmp_path / "redis.conf"
    lines = [f"port {port}", "bind 127.0.0.1", f"requirepass {ADMIN}", acl_line(TOKEN), 'save ""']
    conf.write_text("\n".join(lines) + "\n")
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL)
    admin = redis.Redis(port=port, password=ADMIN)
    for _ in range(100):
        try:
            admin.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    admin.set(denied_family_key(user_tag("alice"), "revoked"), "1")
    admin.hset(user_key("alice"), "password_hash", "secret")
    yield port
    process.terminate()
    process.wait(10)


async def test_the_denylist_user_reads_the_denylist(acl_redis: int) -> None:
    store = RedisStore(RedisSettings(f"redis://{ACL_USER}:{TOKEN}@127.0.0.1:{acl_redis}/0"))
    store.open()
    try:
        await store.ping()
        assert await Denylist(store).is_denied("revoked", "alice")
        assert not await Denylist(store).is_denied("live", "alice")
    finally:
        await store.close()


@pytest.mark.parametrize(
    "command",
    [
        ("GET", user_key("alice")),
        ("HGETALL", user_key("alice")),
        ("EXISTS", user_key("alice")),
        ("SET", denied_family_key(user_tag("alice"), "x"), "1"),
        ("DEL", denied_family_key(user_tag("alice"), "revoked")),
        ("KEYS", "*"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "requirepass"),
    ],
)
def test_the_denylist_user_can_do_nothing_else(acl_redis: int, command: tuple[str, ...]) -> None:
    client = redis.Redis(port=acl_redis, username=ACL_USER, password=TOKEN)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command(*command)


@pytest.mark.parametrize("path", ["compose.yaml", "deploy/k8s/base/redis.yaml"])
def test_every_deployment_defines_the_denylist_user_with_the_products_rules(path: str) -> None:
    """compose and Kubernetes write the ACL line in shell; it must say what ACL_RULES says."""
    text = (Path(__file__).parents[2] / path).read_text()
    assert f"user {ACL_USER} on >%s {ACL_RULES}" in text
