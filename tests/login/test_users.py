"""Users in a real Redis: add, authenticate, change a password, upgrade an old hash."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from authscale.core.settings import PasswordSettings, RedisSettings
from authscale.core.storage import RedisStore
from authscale.login.epoch import devices_key, user_key
from authscale.login.passwords import Passwords
from authscale.login.users import UnknownUser, UserExists, Users
from tests.conftest import CHEAP_PASSWORDS, CLUSTER, SINGLE

#: The contract holds on one Redis and on a Redis Cluster (tests/conftest.py).
REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)


@pytest.fixture
async def users(redis_url: str) -> AsyncIterator[Users]:
    store = RedisStore(RedisSettings(url=redis_url))
    store.open()
    passwords = Passwords(CHEAP_PASSWORDS, workers=1)
    yield Users(store, passwords)
    passwords.close()
    await store.close()


async def test_add_then_authenticate(users: Users) -> None:
    await users.add("alice", "s3cret-pass")
    assert (await users.authenticate("alice", "s3cret-pass")) is not None
    assert await users.authenticate("alice", "wrong") is None
    assert await users.authenticate("nobody", "s3cret-pass") is None


async def test_add_refuses_an_existing_user(users: Users) -> None:
    await users.add("alice", "one")
    with pytest.raises(UserExists):
        await users.add("alice", "two")
    assert await users.authenticate("alice", "one") is not None


async def test_change_password(users: Users) -> None:
    await users.add("alice", "old")
    await users.change_password("alice", "new")
    assert await users.authenticate("alice", "old") is None
    assert await users.authenticate("alice", "new") is not None
    with pytest.raises(UnknownUser):
        await users.change_password("nobody", "x")


async def test_login_upgrades_a_hash_made_at_a_lower_cost(
    redis_url: str, redis_admin: redis.Redis
) -> None:
    store = RedisStore(RedisSettings(url=redis_url))
    store.open()
    weak = Passwords(CHEAP_PASSWORDS, workers=1)
    strong = Passwords(PasswordSettings(time_cost=2, memory_cost_kib=2048), workers=1)
    await Users(store, weak).add("alice", "pw")
    assert await Users(store, strong).authenticate("alice", "pw") is not None
    stored = redis_admin.hget(user_key("alice"), "password_hash")
    assert stored is not None and "m=2048,t=2" in stored
    weak.close()
    strong.close()
    await store.close()


async def test_a_password_change_bumps_the_epoch_and_forgets_the_devices(
    users: Users, redis_admin: redis.Redis
) -> None:
    before = await users.add("alice", "old")
    redis_admin.zadd(devices_key("alice"), {"device": 1})
    after = await users.change_password("alice", "new")
    assert after.epoch == before.epoch + 1
    assert redis_admin.exists(devices_key("alice")) == 0


async def test_a_rehash_never_overwrites_a_changed_password(
    redis_url: str, redis_admin: redis.Redis
) -> None:
    """A login verified the old password at a lower cost; the password changes before it writes
    the rehash: the write is dropped and the new password stays."""
    store = RedisStore(RedisSettings(url=redis_url))
    store.open()
    weak = Passwords(CHEAP_PASSWORDS, workers=1)
    strong = Passwords(PasswordSettings(time_cost=2, memory_cost_kib=2048), workers=1)
    verified = await Users(store, weak).add("alice", "old")
    await Users(store, weak).change_password("alice", "new")
    assert not await Users(store, strong).rehash(verified, "old")
    assert await Users(store, weak).authenticate("alice", "old") is None
    assert await Users(store, weak).authenticate("alice", "new") is not None
    weak.close()
    strong.close()
    await store.close()
