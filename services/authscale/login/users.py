"""Users in Redis: one hash per user holding an argon2id hash and the time it last changed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from authscale.core.storage import RedisStore
from authscale.login.credentials import check_password, check_username
from authscale.login.passwords import Passwords


def user_key(username: str) -> str:
    return f"user:{username}"


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    password_changed_at: float


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
            fields = await redis.hmget(user_key(username), ["password_hash", "changed_at"])
        if fields[0] is None:
            return None
        return User(username, str(fields[0]), float(fields[1] or 0))

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches; the same cost and answer for every failure."""
        user = await self.get(username)
        matched = await self._passwords.verify(user.password_hash if user else None, password)
        if user is None or not matched:
            return None
        if self._passwords.needs_rehash(user.password_hash):
            # The cost settings changed since this hash was made: upgrade it while we hold the
            # password, so raising the cost needs no password reset.
            rehashed = await self._passwords.hash(password)
            async with self._redis.reaching("user_rehash") as redis:
                await redis.hset(user_key(username), "password_hash", rehashed)
        return user

    async def add(self, username: str, password: str, *, replace: bool = False) -> User:
        check_username(username)
        check_password(password)
        password_hash = await self._passwords.hash(password)
        changed_at = time.time()
        async with self._redis.reaching("user_add") as redis:
            created = await redis.hsetnx(user_key(username), "password_hash", password_hash)
            if not created and not replace:
                raise UserExists(username)
            await redis.hset(
                user_key(username),
                mapping={"password_hash": password_hash, "changed_at": repr(changed_at)},
            )
        return User(username, password_hash, changed_at)

    async def change_password(self, username: str, password: str) -> User:
        check_password(password)
        if await self.get(username) is None:
            raise UnknownUser(username)
        return await self.add(username, password, replace=True)
