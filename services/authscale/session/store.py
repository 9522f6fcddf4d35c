"""Server-side sessions in Redis, keyed by a hash of the session id.

A request costs one round trip: ``GETEX`` reads the session and slides its idle expiry together.
Session data is written at login and deleted at logout only, so a request in flight during a
logout cannot write the session back. Each user has an index of their session keys, capped at
``per_user``, which makes "log out everywhere" possible without scanning the keyspace.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass

from authscale.core.settings import SessionSettings
from authscale.core.storage import RedisStore
from authscale.login.epoch import StaleLogin, epoch_check, user_key

#: ``secrets.token_urlsafe(32)``: 256 bits from the OS CSPRNG, 43 URL-safe characters.
SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")

# Stores a new session and adds it to the user's index, a sorted set by creation time. Entries
# older than the absolute timeout are dropped (their sessions are gone), and past the cap the
# oldest sessions end: the index never holds more than the cap, so no step here walks more.
# KEYS: session, index, user. ARGV: value, idle ms, absolute ms, epoch, cap.
# Nothing is created when the user's password changed since the login read it.
_CREATE = (
    epoch_check("KEYS[3]", "ARGV[4]")
    + """
-- Microseconds, so logins in the same millisecond still end oldest first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]) * 1000)
redis.call('ZADD', KEYS[2], now, KEYS[1])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  for _, key in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do redis.call('DEL', key) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""
)

# Deletes every session in a user's index (capped) and the index itself, atomically, so a
# concurrent login either lands before (and is ended) or after (and survives).
_END_ALL = """
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, key in ipairs(members) do redis.call('DEL', key) end
redis.call('DEL', KEYS[1])
return #members
"""


def session_key(session_id: str) -> str:
    # A Redis dump or MONITOR shows only hashes: no usable session id ever reaches Redis.
    # 128 bits of SHA-256 name a 256-bit id without collisions, in half the bytes (key and index).
    return "session:" + hashlib.sha256(session_id.encode()).hexdigest()[:32]


def index_key(username: str) -> str:
    return f"user-sessions:{username}"


@dataclass(frozen=True)
class Session:
    id: str
    username: str
    csrf_token: str
    expires_at: float


class Sessions:
    def __init__(self, redis: RedisStore, settings: SessionSettings) -> None:
        self._redis = redis
        self._settings = settings

    async def create(self, username: str, *, epoch: int) -> Session:
        """A new session, or :class:`StaleLogin` when the password changed since ``epoch``."""
        session = Session(
            id=secrets.token_urlsafe(32),
            username=username,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=time.time() + self._settings.absolute_timeout,
        )
        key = session_key(session.id)
        value = json.dumps({"u": username, "c": session.csrf_token, "x": session.expires_at})
        async with self._redis.reaching("session_create") as redis:
            created = await redis.register_script(_CREATE)(
                keys=[key, index_key(username), user_key(username)],
                args=[
                    value,
                    _ms(self._settings.idle_timeout),
                    _ms(self._settings.absolute_timeout),
                    epoch,
                    self._settings.per_user,
                ],
            )
        if created is None:
            raise StaleLogin()
        return session

    async def get(self, session_id: str) -> Session | None:
        """The live session for this id, its idle expiry slid; ``None`` if unknown or expired."""
        if not SESSION_ID_PATTERN.fullmatch(session_id):
            return None
        value = await self._redis.command(
            "session_get", "GETEX", session_key(session_id), "PX", _ms(self._settings.idle_timeout)
        )
        if value is None:
            return None
        data = json.loads(value)
        if data["x"] <= time.time():
            # Past the absolute timeout: the sliding expiry may keep the key a little longer,
            # but it is never honoured again.
            return None
        return Session(session_id, data["u"], data["c"], data["x"])

    async def end(self, session: Session) -> None:
        key = session_key(session.id)
        async with (
            self._redis.reaching("session_end") as redis,
            redis.pipeline(transaction=True) as pipe,
        ):
            pipe.delete(key)
            pipe.zrem(index_key(session.username), key)
            await pipe.execute()

    async def end_all(self, username: str) -> int:
        """End every session of ``username``, whichever replica made it; returns how many."""
        async with self._redis.reaching("session_end_all") as redis:
            ended = await redis.register_script(_END_ALL)(keys=[index_key(username)])
        return int(ended)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
