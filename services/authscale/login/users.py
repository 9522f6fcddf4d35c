"""Users in Redis: one hash per user holding an argon2id hash, when it changed, and an epoch.

A password change is a boundary. The change bumps the user's ``epoch`` in the same step that
writes the new hash and forgets the user's known devices; a session or refresh family is only
created by a script that finds the epoch its login read (:func:`epoch_check`), so a login that
verified the old password just before the change cannot create anything after it. A rehash on
login is written only if the stored hash is still the one that was verified.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from authscale.core.storage import RedisStore
from authscale.login.credentials import check_password, check_username
from authscale.login.epoch import devices_key, user_key
from authscale.login.passwords import Passwords

# KEYS: user key, the user's devices. ARGV: new hash, changed at.
_REPLACE_HASH = """
redis.call('HSET', KEYS[1], 'password_hash', ARGV[1], 'changed_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('DEL', KEYS[2])
"""

# KEYS: user key. ARGV: the hash that was verified, the rehash.
_REHASH = """
if redis.call('HGET', KEYS[1], 'password_hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    password_changed_at: float
    #: Bumped by every password change; what a login's session or family is created against.
    epoch: int = 0


class UserExists(Exception):
    pass


class UnknownUser(Exception):
    pass


class Users:
    def __init__(self, redis: RedisStore, passwords: Passwords) -> None:
        self._redis = redis
        self._passwords = passwords

    async def get(self, username: str) -> User | None:
        async with self._redis.reaching("user_get") as redis:
            fields = await redis.hmget(user_key(username), ["password_hash", "changed_at", "epoch"])
        if fields[0] is None:
            return None
        return User(username, str(fields[0]), float(fields[1] or 0), int(fields[2] or 0))

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches; the same cost and answer for every failure."""
        user = await self.get(username)
        matched = await self._passwords.verify(user.password_hash if user else None, password)
        if user is None or not matched:
            return None
        if self._passwords.needs_rehash(user.password_hash):
            # The cost settings changed since this hash was made: upgrade it while we hold the
            # password, so raising the cost needs no password reset.
            await self.rehash(user, password)
        return user

    async def rehash(self, user: User, password: str) -> bool:
        """Write a hash of ``password`` at today's cost, unless the password changed meanwhile."""
        rehashed = await self._passwords.hash(password)
        async with self._redis.reaching("user_rehash") as redis:
            written = await redis.register_script(_REHASH)(
                keys=[user_key(user.username)], args=[user.password_hash, rehashed]
            )
        return bool(written)

    async def add(self, username: str, password: str) -> User:
        check_username(username)
        check_password(password)
        password_hash = await self._passwords.hash(password)
        changed_at = time.time()
        async with self._redis.reaching("user_add") as redis:
            created = await redis.hsetnx(user_key(username), "password_hash", password_hash)
            if not created:
                raise UserExists(username)
            await redis.hset(user_key(username), "changed_at", repr(changed_at))
        return User(username, password_hash, changed_at)

    async def change_password(self, username: str, password: str) -> User:
        """The new hash, a new epoch and no known devices, in one step."""
        check_password(password)
        if await self.get(username) is None:
            raise UnknownUser(username)
        password_hash = await self._passwords.hash(password)
        async with self._redis.reaching("user_change_password") as redis:
            await redis.register_script(_REPLACE_HASH)(
                keys=[user_key(username), devices_key(username)],
                args=[password_hash, repr(time.time())],
            )
        user = await self.get(username)
        if user is None:
            raise UnknownUser(username)
        return user
