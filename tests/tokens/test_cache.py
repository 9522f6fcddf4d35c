"""The verified-token cache: exact tokens only, never past exp, never under a replaced key."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authscale.tokens.access import AccessClaims
from authscale.tokens.cache import VerifiedTokens
from authscale.tokens.keys.jwk import generate_private_key
from tests.conftest import ManualClock

KEY = generate_private_key().public_key()
OTHER = generate_private_key().public_key()


class Keys:
    def __init__(self, **keys: rsa.RSAPublicKey) -> None:
        self.keys = keys

    def get(self, kid: str) -> rsa.RSAPublicKey | None:
        return self.keys.get(kid)

    async def refetch(self, kid: str) -> rsa.RSAPublicKey | None:
        return self.get(kid)


def claims(kid: str = "k1", expires_in: float = 600) -> AccessClaims:
    now = int(time.time())
    return AccessClaims("alice", "family", "jti", now, int(now + expires_in), kid)


def test_a_verified_token_is_remembered_exactly():
    cache, keys = VerifiedTokens(10), Keys(k1=KEY)
    cache.put("a.b.c", claims(), KEY)
    assert cache.get("a.b.c", keys) == claims()
    assert cache.get("a.b.C", keys) is None


def test_an_entry_is_never_honoured_at_or_past_exp():
    clock = ManualClock(1000.0)
    cache, keys = VerifiedTokens(10, clock=clock), Keys(k1=KEY)
    soon = AccessClaims("alice", "family", "jti", 999, 1001, "k1")
    cache.put("soon", soon, KEY)
    clock.now = 1000.999
    assert cache.get("soon", keys) == soon
    clock.now = 1001.0
    assert cache.get("soon", keys) is None
    assert len(cache) == 0
    late = AccessClaims("alice", "family", "jti", 990, 1000, "k1")
    cache.put("late", late, KEY)  # verified within the leeway
    assert len(cache) == 0


def test_an_entry_dies_with_its_key():
    cache = VerifiedTokens(10)
    cache.put("t", claims(), KEY)
    assert cache.get("t", Keys()) is None  # the kid left the key set
    cache.put("t", claims(), KEY)
    assert cache.get("t", Keys(k1=OTHER)) is None  # the kid now names another key


def test_the_cache_is_bounded_least_recently_used_first():
    cache, keys = VerifiedTokens(2), Keys(k1=KEY)
    cache.put("one", claims(), KEY)
    cache.put("two", claims(), KEY)
    cache.get("one", keys)
    cache.put("three", claims(), KEY)
    assert len(cache) == 2
    assert cache.get("two", keys) is None
    assert cache.get("one", keys) is not None


def test_forget_drops_every_entry_of_a_kid():
    cache = VerifiedTokens(10)
    cache.put("a", claims("k1"), KEY)
    cache.put("b", claims("k2"), OTHER)
    assert cache.forget(["k1"]) == 1
    assert cache.get("b", Keys(k2=OTHER)) is not None


def test_a_cache_needs_room():
    with pytest.raises(ValueError):
        VerifiedTokens(0)
