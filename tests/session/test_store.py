"""Sessions in a real Redis: hashed keys, idle and absolute timeouts, ending one or all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis

from authscale.core.settings import RedisSettings, SessionSettings
from authscale.core.storage import RedisStore
from authscale.login.epoch import StaleLogin, user_key
from authscale.session.store import SESSION_ID_PATTERN, Sessions, index_key, session_key
from tests.conftest import CLUSTER, SINGLE, every_key

#: The contract holds on one Redis and on a Redis Cluster (tests/conftest.py).
REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    redis = RedisStore(RedisSettings(url=redis_url))
    redis.open()
    yield redis
    await redis.close()


def sessions(store: RedisStore, idle: float = 60, absolute: float = 600) -> Sessions:
    return Sessions(store, SessionSettings(idle_timeout=idle, absolute_timeout=absolute))


async def test_session_ids_are_256_bit_and_never_stored_in_redis(
    store: RedisStore, redis_admin: redis.Redis
) -> None:

    session = await sessions(store).create("alice", epoch=0)
    assert SESSION_ID_PATTERN.fullmatch(session.id)
    client = redis_admin
    dump = [(key, client.dump(key)) for key in every_key(client, "*")]
    assert session_key(session.id) in {key for key, _ in dump}
    assert all(
        session.id not in key and session.id.encode() not in (value or b"") for key, value in dump
    )


async def test_get_returns_the_session_and_slides_idle_expiry(
    store: RedisStore, redis_admin: redis.Redis
) -> None:
    store_sessions = sessions(store, idle=5)
    session = await store_sessions.create("alice", epoch=0)
    redis_admin.pexpire(session_key(session.id), 1000)
    found = await store_sessions.get(session.id)
    assert found is not None and found.username == "alice"
    assert found.csrf_token == session.csrf_token
    assert redis_admin.pttl(session_key(session.id)) > 4000


async def wait_until_gone(redis_admin: redis.Redis, *keys: str) -> None:
    """Until Redis has expired ``keys`` on its own (10 s at most: does not hang)."""
    for _ in range(200):
        if not redis_admin.exists(*keys):
            return
        await asyncio.sleep(0.05)


async def test_idle_session_expires(store: RedisStore, redis_admin: redis.Redis) -> None:
    store_sessions = sessions(store, idle=0.3)
    session = await store_sessions.create("alice", epoch=0)
    await wait_until_gone(redis_admin, session_key(session.id))
    assert await store_sessions.get(session.id) is None


async def test_absolute_timeout_ends_a_busy_session(
    store: RedisStore, redis_admin: redis.Redis
) -> None:
    store_sessions = sessions(store, idle=30, absolute=0.5)
    session = await store_sessions.create("alice", epoch=0)
    for _ in range(200):  # kept busy: every read slides the idle expiry (10 s: does not hang)
        if await store_sessions.get(session.id) is None:
            break
        await asyncio.sleep(0.05)
    assert await store_sessions.get(session.id) is None
    # Ended by the absolute timeout, not by idling: the idle expiry still keeps the key.
    assert redis_admin.exists(session_key(session.id))


@pytest.mark.parametrize("forged", ["", "x", "a" * 42, "a" * 44, "../../etc", "é" * 43])
async def test_malformed_ids_are_unknown_without_a_lookup(store: RedisStore, forged: str) -> None:
    assert await sessions(store).get(forged) is None


async def test_end_and_end_all(store: RedisStore, redis_admin: redis.Redis) -> None:
    store_sessions = sessions(store)
    first = await store_sessions.create("alice", epoch=0)
    second = await store_sessions.create("alice", epoch=0)
    other = await store_sessions.create("bob", epoch=0)
    await store_sessions.end(first)
    assert await store_sessions.get(first.id) is None
    assert await store_sessions.get(second.id) is not None
    assert await store_sessions.end_all("alice") == 1
    assert await store_sessions.get(second.id) is None
    assert await store_sessions.get(other.id) is not None
    assert not redis_admin.exists(index_key("alice"))


async def test_index_drops_sessions_past_their_absolute_timeout(
    store: RedisStore, redis_admin: redis.Redis
) -> None:
    # Idle equal to absolute: once Redis has expired the keys, their absolute time has passed.
    store_sessions = sessions(store, idle=0.3, absolute=0.3)
    created = [await store_sessions.create("alice", epoch=0) for _ in range(3)]
    await wait_until_gone(redis_admin, *(session_key(session.id) for session in created))
    await store_sessions.create("alice", epoch=0)
    assert redis_admin.zcard(index_key("alice")) == 1


async def test_sessions_per_user_are_capped_the_oldest_ended(
    store: RedisStore, redis_admin: redis.Redis
) -> None:
    capped = Sessions(store, SessionSettings(per_user=3))
    created = [await capped.create("alice", epoch=0) for _ in range(5)]
    assert [await capped.get(s.id) is not None for s in created] == [False] * 2 + [True] * 3
    assert redis_admin.zcard(index_key("alice")) == 3
    assert len(every_key(redis_admin, "session:*")) == 3


async def test_a_login_that_raced_a_password_change_creates_no_session(
    store: RedisStore, redis_admin: redis.Redis
) -> None:
    """The login read epoch 0 and verified the old password; the change landed before create."""
    redis_admin.hset(user_key("alice"), mapping={"password_hash": "x", "epoch": 1})
    with pytest.raises(StaleLogin):
        await sessions(store).create("alice", epoch=0)
    assert every_key(redis_admin, "session:*") == []
    assert (await sessions(store).create("alice", epoch=1)).username == "alice"


async def test_a_session_with_its_index_entry_costs_at_most_300_bytes(
    store: RedisStore, redis_admin: redis.Redis
) -> None:
    """MEMORY USAGE of ten sessions of one user and their index, per session (docs/session.md)."""
    for _ in range(10):
        await sessions(store).create("alice", epoch=0)
    client = redis_admin
    total = sum(client.memory_usage(key, samples=0) or 0 for key in every_key(client, "*"))
    assert total / 10 <= 300
