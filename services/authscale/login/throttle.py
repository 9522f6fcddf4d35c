"""Per-account throttling of failed logins, in Redis, shared by session replicas and the issuer.

nginx's per-address ``limit_req`` cannot see which account a login targets, so credential
stuffing from many addresses gets past it. Here every account has a budget of failures per
window. To keep an attacker from locking the real user out by spending that budget, a client
that has logged in to the account before carries a device cookie (OWASP's "device cookies"
defence) and is counted on a budget of its own.

The budget is charged before any password is hashed, in one Lua script that checks and counts
together, and refunded when the password was right. Parallel guesses therefore cannot all pass
a check made before the first of them is counted: at most the budget is ever hashed, and a
guess whose hashing fails in any way stays counted.

A user's known devices are one small sorted set (device digest -> expiry), capped at
``devices_per_user`` (the oldest are dropped), and deleted with the user's sessions on a password
change.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from authscale.core.errors import TooManyRequests
from authscale.core.settings import ThrottleSettings
from authscale.core.slots import braced, user_keyspace, user_tag
from authscale.core.storage import RedisStore
from authscale.login.epoch import StaleLogin, devices_key, epoch_check, user_key

DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: the user's devices, the device's failures, the user's failures.
# ARGV: the claimed device's digest or '', budget, window ms.
# Returns {charged (1) or refused (0), trusted (1/0), ms until the budget refills}.
_CHARGE = (
    _NOW_MS
    + """
local key, trusted = KEYS[3], 0
if ARGV[1] ~= '' then
  local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if expires and tonumber(expires) > now then key, trusted = KEYS[2], 1 end
end
local spent = tonumber(redis.call('GET', key) or '0')
if spent >= tonumber(ARGV[2]) then return {0, trusted, redis.call('PTTL', key)} end
redis.call('INCR', key)
redis.call('PEXPIRE', key, ARGV[3], 'NX')
return {1, trusted, 0}
"""
)

# KEYS: the user's devices, the budget that was charged, the user.
# ARGV: trusted (1/0), the device digest to record, its lifetime ms, the cap on devices, the epoch
# the login read: a login that raced a password change neither refunds nor records its device.
_REFUND = (
    _NOW_MS
    + epoch_check("KEYS[3]", "ARGV[5]")
    + """
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[2])
elseif tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
local lifetime = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + lifetime, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- The set never holds more than the cap plus this one, so this stays a constant-size step.
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
redis.call('PEXPIRE', KEYS[1], lifetime)
return 1
"""
)


def device_digest(device_id: str) -> str:
    # 128 bits of SHA-256 name a 256-bit random id without collisions and halve the bytes kept.
    return hashlib.sha256(device_id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Attempt:
    username: str
    #: The device id the client sent, when it is a known device of this very account.
    trusted_device: str | None

    @property
    def failures_key(self) -> str:
        # Both in the user's slot: one script charges the user's budget or the device's.
        if self.trusted_device is not None:
            tag = braced(user_tag(self.username))
            return f"device-failures:{tag}:{device_digest(self.trusted_device)}"
        return user_keyspace("login-failures", self.username)


class LoginThrottle:
    def __init__(self, redis: RedisStore, settings: ThrottleSettings) -> None:
        self._redis = redis
        self._settings = settings

    async def charge(self, username: str, device_id: str | None) -> Attempt:
        """Count this attempt as a failure before hashing, or 429 when its budget is spent."""
        claimed = device_id if device_id and DEVICE_ID_PATTERN.fullmatch(device_id) else None
        as_device = Attempt(username, claimed)
        async with self._redis.reaching("login_charge") as redis:
            charged, trusted, refill_ms = await redis.register_script(_CHARGE)(
                keys=[
                    devices_key(username),
                    as_device.failures_key,
                    Attempt(username, None).failures_key,
                ],
                args=[
                    device_digest(claimed) if claimed else "",
                    self._settings.failures,
                    _ms(self._settings.window),
                ],
            )
        if not int(charged):
            refill = int(refill_ms) // 1000
            raise TooManyRequests(
                retry_after=refill if refill > 0 else int(self._settings.window),
                message="Too many failed logins for this account; retry later",
            )
        return as_device if int(trusted) else Attempt(username, None)

    async def succeeded(self, attempt: Attempt, epoch: int) -> str:
        """Refund the attempt; the device id to (re)issue, now a known device of the account.

        :class:`StaleLogin` when the password changed since the login read ``epoch``.
        """
        device_id = attempt.trusted_device or secrets.token_urlsafe(32)
        async with self._redis.reaching("login_refund") as redis:
            refunded = await redis.register_script(_REFUND)(
                keys=[
                    devices_key(attempt.username),
                    attempt.failures_key,
                    user_key(attempt.username),
                ],
                args=[
                    1 if attempt.trusted_device is not None else 0,
                    device_digest(device_id),
                    _ms(self._settings.device_lifetime),
                    self._settings.devices_per_user,
                    epoch,
                ],
            )
        if refunded is None:
            raise StaleLogin()
        return device_id


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
