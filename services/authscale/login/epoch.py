"""The Redis keys of an account and its password epoch, the boundary that creating scripts check."""

from __future__ import annotations

from authscale.core.errors import InvalidCredentials
from authscale.core.slots import user_keyspace


def user_key(username: str) -> str:
    return user_keyspace("user", username)


def devices_key(username: str) -> str:
    """The account's known devices: a sorted set of device digests scored by their expiry."""
    return user_keyspace("user-devices", username)


def epoch_check(user_key: str, epoch: str) -> str:
    """Lua that ends a creating script (returning nil) when the user's epoch moved on since the
    login read it; ``user_key`` and ``epoch`` name the script's KEYS and ARGV entries."""
    return f"""
if (redis.call('HGET', {user_key}, 'epoch') or '0') ~= {epoch} then return false end
"""


class StaleLogin(InvalidCredentials):
    """The password changed between this login's check and what it would create."""
