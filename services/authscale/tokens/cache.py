"""Remembering that a token verified, so a repeat request skips the RSA verify.

Envoy's jwt_authn keeps the same kind of cache. An entry is keyed by the whole token string, so
only the exact bytes that verified can hit; it is honoured only while the key that verified it is
still the key under its ``kid`` (a revoked or replaced key drops its entries at once) and never
at or past the token's ``exp``; and the cache is bounded, evicting the least recently used entry.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from authscale.core.metrics import VERIFIED_CACHE
from authscale.tokens.access import AccessClaims, KeyLookup

#: Bound once: ``labels()`` takes a lock and looks the child up on every call, which cost as much
#: as the rest of a hit.
HITS = VERIFIED_CACHE.labels("hit")
MISSES = VERIFIED_CACHE.labels("miss")


@dataclass(frozen=True, slots=True)
class _Entry:
    claims: AccessClaims
    key: rsa.RSAPublicKey


class VerifiedTokens:
    def __init__(self, size: int, *, clock: Callable[[], float] = time.time) -> None:
        """``clock`` gives the time compared with ``exp`` (tests pass one they move by hand)."""
        if size < 1:
            raise ValueError("a verified-token cache needs room for at least one token")
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, keys: KeyLookup) -> AccessClaims | None:
        entry = self._entries.get(token)
        if entry is None:
            MISSES.inc()
            return None
        if self._clock() >= entry.claims.expires_at or keys.get(entry.claims.kid) is not entry.key:
            del self._entries[token]
            MISSES.inc()
            return None
        self._entries.move_to_end(token)
        HITS.inc()
        return entry.claims

    def put(self, token: str, claims: AccessClaims, key: rsa.RSAPublicKey) -> None:
        if self._clock() >= claims.expires_at:
            return  # accepted within the leeway: verify it again each time, never remember it
        self._entries[token] = _Entry(claims, key)
        self._entries.move_to_end(token)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, kids: Iterable[str]) -> int:
        """Drop every entry verified under these ``kid`` values; returns how many."""
        gone = set(kids)
        stale = [token for token, entry in self._entries.items() if entry.claims.kid in gone]
        for token in stale:
            del self._entries[token]
        return len(stale)
