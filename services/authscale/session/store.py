"""Server-side sessions in Redis, keyed by a hash of the session id.

A request costs one round trip: ``GETEX`` reads the session and slides its idle expiry together.
Session data is written at login and deleted at logout only, so a request in flight during a
logout cannot write the session back. Each user has an index of their session keys, capped at
``per_user``, which makes "log out everywhere" possible without scanning the keyspace.

A session id is ``<tag>.<random>``: the user's hash tag (:mod:`authscale.core.slots`), so the
session's key lands in its user's Redis Cluster slot with the index, then 256 random bits.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass

from authscale.core.indexed import guarded, index_guard
from authscale.core.settings import SessionSettings
from authscale.core.slots import TAG_PATTERN, braced, user_keyspace, user_tag
from authscale.core.storage import RedisStore
from authscale.login.epoch import StaleLogin, epoch_check, user_key

#: The user's tag, then ``secrets.token_urlsafe(32)``: 256 bits from the OS CSPRNG.
SESSION_ID_PATTERN = re.compile(rf"({TAG_PATTERN})\.[A-Za-z0-9_-]{{43}}")

# Stores a new session and adds it to the user's index, a sorted set by creation time. Entries
# older than the absolute timeout are dropped (their sessions are gone), and past the cap the
# oldest sessions end: the index never holds more than the cap, so no step here walks more.
# KEYS: session, index, user, then the index's members (session keys) as read before.
# ARGV: value, idle ms, absolute ms, epoch, cap, the number of members, the members.
# Nothing is created when the user's password changed since the login read it.
_CREATE = (
    epoch_check("KEYS[3]", "ARGV[4]")
    + index_guard("KEYS[2]", 6)
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
# KEYS: index, then its members. ARGV: the number of members, the members.
_END_ALL = (
    index_guard("KEYS[1]", 1)
    + """
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('DEL', KEYS[1])
return count
"""
)


def session_key(session_id: str) -> str:
    """The key of a well-formed session id (``SESSION_ID_PATTERN``): in its user's slot.

    A Redis dump or MONITOR shows only hashes: no usable session id ever reaches Redis.
    128 bits of SHA-256 name a 256-bit id without collisions, in half the bytes (key and index).
    """
    tag = session_id.partition(".")[0]
    return f"session:{braced(tag)}:" + hashlib.sha256(session_id.encode()).hexdigest()[:32]


def index_key(username: str) -> str:
    return user_keyspace("user-sessions", username)


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
            id=f"{user_tag(username)}.{secrets.token_urlsafe(32)}",
            username=username,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=time.time() + self._settings.absolute_timeout,
        )
        key = session_key(session.id)
        value = json.dumps({"u": username, "c": session.csrf_token, "x": session.expires_at})
        index = index_key(username)
        async with self._redis.reaching("session_create") as redis:
            script = redis.register_script(_CREATE)
            created = await guarded(
                redis,
                index,
                lambda members: script(
                    keys=[key, index, user_key(username), *members],
                    args=[
                        value,
                        _ms(self._settings.idle_timeout),
                        _ms(self._settings.absolute_timeout),
                        epoch,
                        self._settings.per_user,
                        len(members),
                        *members,
                    ],
                ),
                what="session_create",
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
        index = index_key(username)
        async with self._redis.reaching("session_end_all") as redis:
            script = redis.register_script(_END_ALL)
            ended = await guarded(
                redis,
                index,
                lambda members: script(keys=[index, *members], args=[len(members), *members]),
                what="session_end_all",
            )
        return int(ended)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
