"""Refresh tokens: opaque, rotated on every use, grouped in families, reuse revokes the family.

A login starts a family; each refresh replaces the family's current token by a new one (RFC 9700
section 4.14.2). Presenting any other token of the family, an already rotated one, means two
parties hold the family's tokens, so the whole family is revoked: the thief and the user both
have to log in again.

One deviation from strict RFC 9700, the one Okta, Auth0 and Ory also make: for a short grace
period after a rotation the immediately previous token may be presented again, so a client whose
response was lost is not logged out. It gets a new pair, and the pair it lost becomes unusable (a
later presentation of it counts as reuse). The grace never extends itself.

A token is ``<tag>.<handle>.<secret>``: the user's hash tag (:mod:`authscale.core.slots`, so the
family's keys are found in its user's Redis Cluster slot), the handle (128 random bits), the
family's and the same in every token of it, and the secret (256 random bits), new at each
rotation. Redis holds a family as
one small hash under its id, which is derived one-way from the handle (so the ``sid`` an access
token shows cannot be turned into a refresh token), with a 128-bit SHA-256 prefix of its current
secret and of the previous one: there is no key per token, superseded ones included. A presented
token whose handle finds a family but whose secret is neither of those was rotated away before:
that is reuse. A forged token does not know a handle and finds nothing.

Each user's live families are a sorted set by creation, capped at ``families_per_user`` (the
oldest is revoked by the login that goes over). Every decision is one Lua script timed by the Redis
clock, so concurrent refreshes on several issuer replicas cannot both win, and no script walks
more than the capped set. Every key a script touches is declared (:mod:`authscale.core.indexed`);
revoking one family by its token cannot know its user's index beforehand, so it takes the family
out of the index in a second step: until then the index only lists a family that is already
revoked, which the cap and the next walk of the index pass over.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

from authscale.core.indexed import guarded, index_guard
from authscale.core.metrics import REFRESH_OUTCOMES
from authscale.core.slots import TAG_PATTERN, braced, user_keyspace, user_tag
from authscale.core.storage import RedisStore
from authscale.login.epoch import StaleLogin, epoch_check, user_key
from authscale.tokens.denylist import denied_family_key
from authscale.tokens.settings import RefreshSettings

#: ``<tag>.<handle>.<secret>``: the user's tag, ``secrets.token_urlsafe(16)`` and
#: ``secrets.token_urlsafe(32)``.
REFRESH_TOKEN_PATTERN = re.compile(
    rf"({TAG_PATTERN})\.([A-Za-z0-9_-]{{22}})\.([A-Za-z0-9_-]{{43}})"
)

_LUA_HEADER = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Revokes a live family (its key and denylist marker declared by the caller) and takes it out of
-- the user's index when that is declared too; the family's user, or false if it was not live.
local function revoke(fid, family, denied, index)
  local f = redis.call('HMGET', family, 'user', 'revoked', 'access_ttl_ms')
  if not f[1] or f[2] ~= '0' then return false end
  redis.call('HSET', family, 'revoked', '1')
  if index then redis.call('ZREM', index, fid) end
  -- Outlives every access token of the family; read by replicas in denylist mode. The family
  -- itself only has to say "revoked" (rather than "unknown") for as long.
  redis.call('SET', denied, '1', 'PX', f[3])
  redis.call('PEXPIRE', family, f[3])
  return f[1]
end
"""

# KEYS: family key, user index, user, then a family key and a denylist marker per family in the
# index as read before. ARGV: fid, user, family ms, token ms, access ms, csrf hash ('' for body
# mode), secret hash, families per user, the epoch the login read, the number of families in the
# index, their ids.
_START = (
    _LUA_HEADER
    + epoch_check("KEYS[3]", "ARGV[9]")
    + index_guard("KEYS[2]", 10)
    + """
local now = now_ms()
local expires = now + tonumber(ARGV[3])
local current_exp = math.min(now + tonumber(ARGV[4]), expires)
redis.call('HSET', KEYS[1], 'user', ARGV[2], 'current', ARGV[7], 'current_exp', current_exp,
  'previous', '', 'grace_until', 0, 'expires_at', expires, 'revoked', '0', 'csrf', ARGV[6],
  'access_ttl_ms', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], expires)
-- Scored by creation in microseconds, so logins in the same millisecond still leave in order;
-- every family lives as long, so the oldest entries are the ones already expired.
local t = redis.call('TIME')
local created = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', created - tonumber(ARGV[3]) * 1000)
redis.call('ZADD', KEYS[2], created, ARGV[1])
-- Over the cap: revoke the oldest families (one, as the set never exceeds cap + 1).
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[8])
if extra > 0 then
  for _, fid in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
    local i = declared[fid]
    revoke(fid, KEYS[2 + 2 * i], KEYS[3 + 2 * i], KEYS[2])
    redis.call('ZREM', KEYS[2], fid)
  end
end
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return current_exp - now
"""
)

# KEYS: family key, its denylist marker. ARGV: fid, presented secret hash, new secret hash,
# grace ms, token ms, csrf hash or ''.
_ROTATE = (
    _LUA_HEADER
    + """
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'user', 'current', 'current_exp', 'previous',
  'grace_until', 'expires_at', 'revoked', 'csrf')
if not f[1] then return {'unknown'} end
if f[7] ~= '0' then return {'revoked'} end
if ARGV[6] ~= '' and ARGV[6] ~= f[8] then return {'csrf'} end
local expires = tonumber(f[6])
if now >= expires then return {'expired'} end
local outcome
if ARGV[2] == f[2] then
  if now >= tonumber(f[3]) then return {'expired'} end
  outcome = 'rotated'
  redis.call('HSET', KEYS[1], 'previous', ARGV[2], 'grace_until', now + tonumber(ARGV[4]))
elseif ARGV[2] == f[4] and now < tonumber(f[5]) then
  outcome = 'grace'
else
  -- The handle proves the presenter once held a token of this family: an old one is reuse.
  revoke(ARGV[1], KEYS[1], KEYS[2], false)
  return {'reused', f[1]}
end
local current_exp = math.min(now + tonumber(ARGV[5]), expires)
redis.call('HSET', KEYS[1], 'current', ARGV[3], 'current_exp', current_exp)
return {outcome, f[1], ARGV[1], current_exp - now}
"""
)

# KEYS: family key, its denylist marker. ARGV: fid. Returns the family's user or false.
_REVOKE_FAMILY = _LUA_HEADER + "\nreturn revoke(ARGV[1], KEYS[1], KEYS[2], false)\n"

# Walks the user's capped index only. KEYS: the index, then a family key and a denylist marker
# per family in it. ARGV: the number of families, their ids.
_REVOKE_USER = (
    _LUA_HEADER
    + index_guard("KEYS[1]", 1)
    + """
local revoked = 0
for i = 1, count do
  if revoke(ARGV[1 + i], KEYS[2 * i], KEYS[2 * i + 1], false) then revoked = revoked + 1 end
end
redis.call('DEL', KEYS[1])
return revoked
"""
)


def family_of(handle: str) -> str:
    """The family id (``sid``) of a handle: one-way, so knowing a ``sid`` gives no handle."""
    digest = hashlib.sha256(handle.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def secret_hash(secret: str) -> str:
    # 128 bits of SHA-256: no second preimage in reach, half the bytes of a full digest.
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def family_key(tag: str, family: str) -> str:
    return f"refresh-family:{braced(tag)}:{family}"


def user_index_key(username: str) -> str:
    return user_keyspace("user-refresh-families", username)


def _family_keys(tag: str, families: list[str]) -> list[str]:
    """A family key and a denylist marker per family, in order: what a walk of an index touches."""
    return [key for fid in families for key in (family_key(tag, fid), denied_family_key(tag, fid))]


def csrf_hash(csrf: str) -> str:
    return hashlib.sha256(csrf.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class IssuedRefreshToken:
    token: str
    family: str
    username: str
    expires_in: int

    def __repr__(self) -> str:  # never let a refresh token reach a log line through repr()
        return f"IssuedRefreshToken(family={self.family!r}, username={self.username!r})"


class RefreshRefused(Exception):
    """The refresh token cannot be used; ``outcome`` says why (for logs and metrics only)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class RefreshTokens:
    def __init__(self, redis: RedisStore, settings: RefreshSettings, access_retention: float):
        self._redis = redis
        self._settings = settings
        #: How long a revoked family's access tokens can live on: its denylist marker's lifetime.
        self._access_retention = access_retention

    async def start(
        self, username: str, *, epoch: int, csrf: str | None = None
    ) -> IssuedRefreshToken:
        """A new family for a login; ``csrf`` binds it to cookie mode.

        :class:`StaleLogin` when the user's password changed since the login read ``epoch``.
        """
        tag, handle, secret = (
            user_tag(username),
            secrets.token_urlsafe(16),
            secrets.token_urlsafe(32),
        )
        family = family_of(handle)
        index = user_index_key(username)
        async with self._redis.reaching("refresh_start") as redis:
            script = redis.register_script(_START)
            remaining_ms = await guarded(
                redis,
                index,
                lambda families: script(
                    keys=[
                        family_key(tag, family),
                        index,
                        user_key(username),
                        *_family_keys(tag, families),
                    ],
                    args=[
                        family,
                        username,
                        _ms(self._settings.family_lifetime),
                        _ms(self._settings.token_lifetime),
                        _ms(self._access_retention),
                        csrf_hash(csrf) if csrf is not None else "",
                        secret_hash(secret),
                        self._settings.families_per_user,
                        epoch,
                        len(families),
                        *families,
                    ],
                ),
                what="refresh_start",
            )
        if remaining_ms is None:
            raise StaleLogin()
        return IssuedRefreshToken(
            f"{tag}.{handle}.{secret}", family, username, int(remaining_ms) // 1000
        )

    async def rotate(self, presented: str, *, csrf: str | None = None) -> IssuedRefreshToken:
        """The next token of the family, or :class:`RefreshRefused` (reuse revokes the family).

        ``csrf`` is the header sent with a refresh cookie: it must match the family's.
        """
        match = REFRESH_TOKEN_PATTERN.fullmatch(presented)
        if match is None:
            REFRESH_OUTCOMES.labels("malformed").inc()
            raise RefreshRefused("malformed")
        tag, handle, secret = match.groups()
        family, new_secret = family_of(handle), secrets.token_urlsafe(32)
        async with self._redis.reaching("refresh_rotate") as redis:
            result = await redis.register_script(_ROTATE)(
                keys=[family_key(tag, family), denied_family_key(tag, family)],
                args=[
                    family,
                    secret_hash(secret),
                    secret_hash(new_secret),
                    # Zero means strict RFC 9700: no grace at all.
                    int(self._settings.grace_period * 1000),
                    _ms(self._settings.token_lifetime),
                    csrf_hash(csrf) if csrf is not None else "",
                ],
            )
            outcome = str(result[0])
            if outcome == "reused":
                await redis.zrem(user_index_key(str(result[1])), family)
        REFRESH_OUTCOMES.labels(outcome).inc()
        if outcome not in {"rotated", "grace"}:
            raise RefreshRefused(outcome)
        return IssuedRefreshToken(
            f"{tag}.{handle}.{new_secret}", family, str(result[1]), int(result[3]) // 1000
        )

    async def revoke_token(self, presented: str) -> bool:
        """Revoke the family of any of its tokens (logout); whether a live family was revoked.

        Any token of the family will do, a superseded one too: its handle proves the presenter
        held one, and logging out is never a privilege worth refusing."""
        match = REFRESH_TOKEN_PATTERN.fullmatch(presented)
        if match is None:
            return False
        tag, handle, _ = match.groups()
        return await self._revoke(tag, family_of(handle))

    async def revoke_family(self, family: str, username: str) -> bool:
        """Revoke ``username``'s family ``family`` (logout by an access token)."""
        return await self._revoke(user_tag(username), family)

    async def _revoke(self, tag: str, family: str) -> bool:
        async with self._redis.reaching("refresh_revoke") as redis:
            user = await redis.register_script(_REVOKE_FAMILY)(
                keys=[family_key(tag, family), denied_family_key(tag, family)], args=[family]
            )
            if user:
                await redis.zrem(user_index_key(str(user)), family)
        return bool(user)

    async def revoke_user(self, username: str) -> int:
        return await revoke_user_families(self._redis, username)


async def revoke_user_families(redis: RedisStore, username: str) -> int:
    """Revoke every family of ``username`` (logout-all, ``authscale users passwd``)."""
    tag, index = user_tag(username), user_index_key(username)
    async with redis.reaching("refresh_revoke_user") as client:
        script = client.register_script(_REVOKE_USER)
        revoked = await guarded(
            client,
            index,
            lambda families: script(
                keys=[index, *_family_keys(tag, families)], args=[len(families), *families]
            ),
            what="refresh_revoke_user",
        )
    return int(revoked)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
