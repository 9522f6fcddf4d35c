"""Refresh tokens: opaque, rotated on every use, grouped in families, reuse revokes the family.

A login starts a family; each refresh replaces the family's current token by a new one (RFC 9700
section 4.14.2). Presenting any other token of the family, an already rotated one, means two
parties hold the family's tokens, so the whole family is revoked: the thief and the user both
have to log in again.

One deviation from strict RFC 9700, the one Okta, Auth0 and Ory also make: for a short grace
period after a rotation the immediately previous token may be presented again, so a client whose
response was lost is not logged out. It gets a new pair, and the pair it lost becomes unusable (a
later presentation of it counts as reuse). The grace never extends itself.

Tokens are 256 random bits; Redis holds only their SHA-256. Every decision is one Lua script
timed by the Redis clock, so concurrent refreshes on several issuer replicas cannot both win.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from authscale.core.metrics import REFRESH_OUTCOMES
from authscale.core.storage import RedisStore
from authscale.login.accounts import StaleLogin, epoch_check, user_key
from authscale.tokens.denylist import PREFIX as DENIED_PREFIX
from authscale.tokens.settings import RefreshSettings

#: ``secrets.token_urlsafe(32)``: 256 bits, 43 URL-safe characters.
REFRESH_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")

_LUA_HEADER = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function revoke(fid)
  local family = 'refresh-family:' .. fid
  local f = redis.call('HMGET', family, 'user', 'revoked', 'access_ttl_ms')
  if not f[1] or f[2] ~= '0' then return 0 end
  redis.call('HSET', family, 'revoked', '1')
  redis.call('SREM', 'user-refresh-families:' .. f[1], fid)
  -- Outlives every access token of the family; read by replicas in denylist mode.
  redis.call('SET', '$DENIED' .. fid, '1', 'PX', f[3])
  return 1
end
""".replace("$DENIED", DENIED_PREFIX)

# KEYS: token key, family key, user index, user. ARGV: fid, user, family ms, token ms, access ms,
# csrf hash ('' for body mode), the epoch the login read (nothing is created if it moved on).
_START = (
    _LUA_HEADER
    + epoch_check("KEYS[4]", "ARGV[7]")
    + """
local now = now_ms()
local expires = now + tonumber(ARGV[3])
local current_exp = math.min(now + tonumber(ARGV[4]), expires)
redis.call('HSET', KEYS[2], 'user', ARGV[2], 'current', KEYS[1], 'current_exp', current_exp,
  'previous', '', 'grace_until', 0, 'expires_at', expires, 'revoked', '0', 'csrf', ARGV[6],
  'access_ttl_ms', ARGV[5])
redis.call('PEXPIREAT', KEYS[2], expires)
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', expires)
-- Keep the user's index as small as their live families.
for _, fid in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('HGET', 'refresh-family:' .. fid, 'revoked') ~= '0' then
    redis.call('SREM', KEYS[3], fid)
  end
end
redis.call('SADD', KEYS[3], ARGV[1])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
return current_exp - now
"""
)

# KEYS: presented token key, new token key. ARGV: grace ms, token ms, csrf hash or ''.
_ROTATE = (
    _LUA_HEADER
    + """
local now = now_ms()
local fid = redis.call('GET', KEYS[1])
if not fid then return {'unknown'} end
local family = 'refresh-family:' .. fid
local f = redis.call('HMGET', family, 'user', 'current', 'current_exp', 'previous',
  'grace_until', 'expires_at', 'revoked', 'csrf')
if not f[1] then return {'unknown'} end
if f[7] ~= '0' then return {'revoked'} end
if ARGV[3] ~= '' and ARGV[3] ~= f[8] then return {'csrf'} end
local expires = tonumber(f[6])
if now >= expires then return {'expired'} end
local outcome
if KEYS[1] == f[2] then
  if now >= tonumber(f[3]) then return {'expired'} end
  outcome = 'rotated'
  redis.call('HSET', family, 'previous', KEYS[1], 'grace_until', now + tonumber(ARGV[1]))
elseif KEYS[1] == f[4] and now < tonumber(f[5]) then
  outcome = 'grace'
else
  revoke(fid)
  return {'reused', f[1]}
end
local current_exp = math.min(now + tonumber(ARGV[2]), expires)
redis.call('HSET', family, 'current', KEYS[2], 'current_exp', current_exp)
redis.call('SET', KEYS[2], fid, 'PXAT', expires)
return {outcome, f[1], fid, current_exp - now}
"""
)

_REVOKE_TOKEN = (
    _LUA_HEADER
    + """
local fid = redis.call('GET', KEYS[1])
if not fid then return 0 end
return revoke(fid)
"""
)

_REVOKE_FAMILY = _LUA_HEADER + "\nreturn revoke(ARGV[1])\n"

_REVOKE_USER = (
    _LUA_HEADER
    + """
local revoked = 0
for _, fid in ipairs(redis.call('SMEMBERS', KEYS[1])) do revoked = revoked + revoke(fid) end
redis.call('DEL', KEYS[1])
return revoked
"""
)


def token_key(token: str) -> str:
    return "refresh:" + hashlib.sha256(token.encode()).hexdigest()


def family_key(family: str) -> str:
    return "refresh-family:" + family


def user_index_key(username: str) -> str:
    return f"user-refresh-families:{username}"


def csrf_hash(csrf: str) -> str:
    return hashlib.sha256(csrf.encode()).hexdigest()


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
        token, family = secrets.token_urlsafe(32), secrets.token_urlsafe(16)
        async with self._redis.reaching("refresh_start") as redis:
            remaining_ms = await redis.register_script(_START)(
                keys=[
                    token_key(token),
                    family_key(family),
                    user_index_key(username),
                    user_key(username),
                ],
                args=[
                    family,
                    username,
                    _ms(self._settings.family_lifetime),
                    _ms(self._settings.token_lifetime),
                    _ms(self._access_retention),
                    csrf_hash(csrf) if csrf is not None else "",
                    epoch,
                ],
            )
        if remaining_ms is None:
            raise StaleLogin()
        return IssuedRefreshToken(token, family, username, int(remaining_ms) // 1000)

    async def rotate(self, presented: str, *, csrf: str | None = None) -> IssuedRefreshToken:
        """The next token of the family, or :class:`RefreshRefused` (reuse revokes the family).

        ``csrf`` is the header sent with a refresh cookie: it must match the family's.
        """
        if not REFRESH_TOKEN_PATTERN.fullmatch(presented):
            REFRESH_OUTCOMES.labels("malformed").inc()
            raise RefreshRefused("malformed")
        token = secrets.token_urlsafe(32)
        async with self._redis.reaching("refresh_rotate") as redis:
            result = await redis.register_script(_ROTATE)(
                keys=[token_key(presented), token_key(token)],
                args=[
                    # Zero means strict RFC 9700: no grace at all.
                    int(self._settings.grace_period * 1000),
                    _ms(self._settings.token_lifetime),
                    csrf_hash(csrf) if csrf is not None else "",
                ],
            )
        outcome = str(result[0])
        REFRESH_OUTCOMES.labels(outcome).inc()
        if outcome not in {"rotated", "grace"}:
            raise RefreshRefused(outcome)
        return IssuedRefreshToken(token, str(result[2]), str(result[1]), int(result[3]) // 1000)

    async def revoke_token(self, presented: str) -> bool:
        """Revoke the family of any of its tokens (logout); whether a live family was revoked."""
        if not REFRESH_TOKEN_PATTERN.fullmatch(presented):
            return False
        async with self._redis.reaching("refresh_revoke") as redis:
            revoked = await redis.register_script(_REVOKE_TOKEN)(keys=[token_key(presented)])
        return bool(revoked)

    async def revoke_family(self, family: str) -> bool:
        async with self._redis.reaching("refresh_revoke") as redis:
            revoked = await redis.register_script(_REVOKE_FAMILY)(args=[family])
        return bool(revoked)

    async def revoke_user(self, username: str) -> int:
        return await revoke_user_families(self._redis, username)


async def revoke_user_families(redis: RedisStore, username: str) -> int:
    """Revoke every family of ``username`` (logout-all, ``authscale users passwd``)."""
    async with redis.reaching("refresh_revoke_user") as client:
        revoked = await client.register_script(_REVOKE_USER)(keys=[user_index_key(username)])
    return int(revoked)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
