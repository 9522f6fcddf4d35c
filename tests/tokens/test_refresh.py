"""Refresh families in a real Redis: rotation, lifetimes, reuse, revocation and its denylist."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from authscale.core.errors import DependencyUnavailable
from authscale.core.settings import RedisSettings
from authscale.core.slots import user_tag
from authscale.core.storage import RedisStore
from authscale.login.epoch import StaleLogin, user_key
from authscale.tokens.denylist import Denylist, denied_family_key
from authscale.tokens.refresh import RefreshRefused, RefreshTokens, family_key, user_index_key
from authscale.tokens.settings import RefreshSettings
from tests.conftest import CLUSTER, SINGLE, every_key

#: The contract holds on one Redis and on a Redis Cluster (tests/conftest.py).
REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)


ACCESS_RETENTION = 910.0
ALICE = user_tag("alice")


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(RedisSettings(redis_url))
    store.open()
    yield store
    await store.close()


def tokens(store: RedisStore, **settings: float) -> RefreshTokens:
    return RefreshTokens(store, RefreshSettings(**settings), ACCESS_RETENTION)  # type: ignore[arg-type]


async def refused(refreshing: RefreshTokens, token: str, **kwargs: str) -> str:
    with pytest.raises(RefreshRefused) as error:
        await refreshing.rotate(token, **kwargs)
    return error.value.outcome


async def test_redis_holds_only_hashes_of_refresh_tokens(store, redis_admin):
    issued = await tokens(store).start("alice", epoch=0)
    with redis_admin as client:
        dump = " ".join(
            every_key(client, "*")
            + [str(client.hgetall(k)) for k in every_key(client, "refresh-family:*")]
        )
    assert issued.token not in dump
    assert issued.expires_in == 24 * 60 * 60


async def test_each_rotation_hands_over_to_the_next_token(store):
    refreshing = tokens(store, grace_period=0)
    first = await refreshing.start("alice", epoch=0)
    second = await refreshing.rotate(first.token)
    third = await refreshing.rotate(second.token)
    assert first.family == second.family == third.family
    assert len({first.token, second.token, third.token}) == 3
    assert await refused(refreshing, second.token) == "reused"
    assert await refused(refreshing, third.token) == "revoked"


async def test_a_token_unused_for_its_lifetime_expires_without_revoking(store):
    refreshing = tokens(store, token_lifetime=0.3, family_lifetime=60)
    first = await refreshing.start("alice", epoch=0)
    await asyncio.sleep(0.4)
    assert await refused(refreshing, first.token) == "expired"


async def test_a_family_ends_at_its_absolute_lifetime_however_often_it_rotates(store):
    refreshing = tokens(store, token_lifetime=0.6, family_lifetime=0.6, grace_period=0)
    current = await refreshing.start("alice", epoch=0)
    current = await refreshing.rotate(current.token)
    assert current.expires_in <= 1
    await asyncio.sleep(0.7)
    assert await refused(refreshing, current.token) in {"expired", "unknown"}


async def test_unknown_and_malformed_tokens_are_refused(store):
    refreshing = tokens(store)
    assert await refused(refreshing, "abcd." + "h" * 22 + "." + "x" * 43) == "unknown"
    assert await refused(refreshing, "x" * 43) == "malformed"
    assert await refused(refreshing, "short") == "malformed"
    assert await refused(refreshing, "abcd." + "h" * 22 + "." + "x" * 42 + "!") == "malformed"


async def test_a_cookie_family_rotates_only_with_its_csrf_value(store):
    refreshing = tokens(store)
    first = await refreshing.start("alice", epoch=0, csrf="c" * 43)
    assert await refused(refreshing, first.token, csrf="d" * 43) == "csrf"
    second = await refreshing.rotate(first.token, csrf="c" * 43)
    body_family = await refreshing.start("alice", epoch=0)
    assert await refused(refreshing, body_family.token, csrf="c" * 43) == "csrf"
    assert second.family == first.family


async def test_revoking_marks_the_family_for_the_denylist(store, redis_admin):
    refreshing = tokens(store)
    issued = await refreshing.start("alice", epoch=0)
    denylist = Denylist(store)
    assert not await denylist.is_denied(issued.family, "alice")
    assert await refreshing.revoke_token(issued.token)
    assert not await refreshing.revoke_token(issued.token)  # once only
    assert await denylist.is_denied(issued.family, "alice")
    with redis_admin as client:
        ttl = client.pttl(denied_family_key(ALICE, issued.family))
    # The marker outlives the family's last access token, and no longer.
    assert ACCESS_RETENTION * 1000 - 5000 < ttl <= ACCESS_RETENTION * 1000


async def test_revoke_user_revokes_every_live_family_and_only_theirs(store, redis_admin):
    refreshing = tokens(store)
    alice = [await refreshing.start("alice", epoch=0) for _ in range(3)]
    bob = await refreshing.start("bob", epoch=0)
    await refreshing.revoke_family(alice[0].family, "alice")
    assert await refreshing.revoke_user("alice") == 2
    for issued in alice:
        assert await refused(refreshing, issued.token) == "revoked"
    assert (await refreshing.rotate(bob.token)).username == "bob"
    with redis_admin as client:
        assert not client.exists(user_index_key("alice"))


async def test_the_user_index_forgets_dead_families(store, redis_admin):
    refreshing = tokens(store)
    first = await refreshing.start("alice", epoch=0)
    await refreshing.revoke_family(first.family, "alice")
    second = await refreshing.start("alice", epoch=0)
    with redis_admin as client:
        assert client.zrange(user_index_key("alice"), 0, -1) == [second.family]
        assert client.pttl(family_key(ALICE, second.family)) > 0


async def test_redis_unreachable_is_a_503_not_a_crash():
    store = RedisStore(RedisSettings("redis://:pw-for-nothing@127.0.0.1:9/0", timeout=0.2))
    store.open()
    try:
        with pytest.raises(DependencyUnavailable):
            await tokens(store).start("alice", epoch=0)
        with pytest.raises(DependencyUnavailable):
            await Denylist(store).is_denied("family", "alice")
    finally:
        await store.close()


async def test_a_login_that_raced_a_password_change_starts_no_family(store, redis_admin):
    redis_admin.hset(user_key("alice"), mapping={"password_hash": "x", "epoch": 3})
    with pytest.raises(StaleLogin):
        await tokens(store).start("alice", epoch=2)
    assert every_key(redis_admin, "refresh*") == []
    assert (await tokens(store).start("alice", epoch=3)).username == "alice"


async def test_no_key_per_refresh_token_superseded_or_not(store, redis_admin):
    refreshing = tokens(store, grace_period=0)
    issued = await refreshing.start("alice", epoch=0)
    for _ in range(20):
        issued = await refreshing.rotate(issued.token)
    with redis_admin as client:
        assert sorted(every_key(client, "*")) == sorted(
            [family_key(ALICE, issued.family), user_index_key("alice")]
        )


async def test_a_forged_token_for_a_known_family_id_revokes_nothing(store):
    """The ``sid`` every access token shows is not enough to end someone's login."""
    refreshing = tokens(store)
    issued = await refreshing.start("alice", epoch=0)
    tag, _, secret = issued.token.split(".")
    forged = f"{tag}.{'A' * 22}.{secret}"
    assert await refused(refreshing, forged) == "unknown"
    assert not await refreshing.revoke_token(forged)
    assert (await refreshing.rotate(issued.token)).family == issued.family


async def test_families_per_user_are_capped_the_oldest_revoked(store, redis_admin):
    refreshing = tokens(store, families_per_user=3)
    families = [await refreshing.start("alice", epoch=0) for _ in range(5)]
    for evicted in families[:2]:
        assert await refused(refreshing, evicted.token) == "revoked"
    for kept in families[2:]:
        assert (await refreshing.rotate(kept.token)).username == "alice"
    with redis_admin as client:
        assert client.zcard(user_index_key("alice")) == 3


async def test_a_revoked_family_is_forgotten_with_its_last_access_token(store, redis_admin):
    refreshing = tokens(store)
    issued = await refreshing.start("alice", epoch=0)
    await refreshing.revoke_family(issued.family, "alice")
    with redis_admin as client:
        assert 0 < client.pttl(family_key(ALICE, issued.family)) <= ACCESS_RETENTION * 1000


async def test_a_family_with_its_tokens_costs_at_most_600_bytes(store, redis_admin):
    """MEMORY USAGE of ten families of one user, each rotated three times, and their index, per
    family (docs/token.md)."""
    refreshing = tokens(store, grace_period=0)
    for _ in range(10):
        issued = await refreshing.start("alice", epoch=0)
        for _ in range(3):
            issued = await refreshing.rotate(issued.token)
    with redis_admin as client:
        total = sum(client.memory_usage(key, samples=0) or 0 for key in every_key(client, "*"))
    assert total / 10 <= 600


async def test_another_tag_on_a_real_refresh_token_finds_nothing(store):
    """The tag routes to a Redis Cluster slot; the family is keyed by tag and handle together."""
    refreshing = tokens(store)
    issued = await refreshing.start("alice", epoch=0)
    _, handle, secret = issued.token.split(".")
    for other in ("0000", "ffff", user_tag("bob")):
        forged = f"{other}.{handle}.{secret}"
        assert await refused(refreshing, forged) == "unknown"
        assert not await refreshing.revoke_token(forged)
    assert (await refreshing.rotate(issued.token)).family == issued.family
