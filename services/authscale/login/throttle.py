"""Per-account throttling of failed logins, in Redis, shared by session replicas and the issuer.

nginx's per-address ``limit_req`` cannot see which account a login targets, so credential
stuffing from many addresses gets past it. Here every account has a budget of failures per
window. To keep an attacker from locking the real user out by spending that budget, a client
that has logged in to the account before carries a device cookie (OWASP's "device cookies"
defence) and is counted on a budget of its own.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from authscale.core.errors import TooManyRequests
from authscale.core.settings import ThrottleSettings
from authscale.core.storage import RedisStore

DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Attempt:
    username: str
    #: The device id the client sent, when it is a known device of this very account.
    trusted_device: str | None

    @property
    def failures_key(self) -> str:
        if self.trusted_device is not None:
            return f"login-failures:device:{_digest(self.trusted_device)}"
        return f"login-failures:user:{self.username}"


class LoginThrottle:
    def __init__(self, redis: RedisStore, settings: ThrottleSettings) -> None:
        self._redis = redis
        self._settings = settings

    async def admit(self, username: str, device_id: str | None) -> Attempt:
        """The attempt to count, or 429 when its budget is spent (before any hashing)."""
        claimed = device_id if device_id and DEVICE_ID_PATTERN.fullmatch(device_id) else None
        as_device = Attempt(username, claimed)
        as_stranger = Attempt(username, None)
        async with (
            self._redis.reaching("login_admit") as redis,
            redis.pipeline(transaction=False) as pipe,
        ):
            # One round trip: whose device this is, and both budgets that might apply.
            pipe.get(f"login-device:{_digest(claimed)}" if claimed else "login-device:none")
            for attempt in (as_device, as_stranger):
                pipe.get(attempt.failures_key)
                pipe.ttl(attempt.failures_key)
            owner, device_failures, device_ttl, user_failures, user_ttl = await pipe.execute()
        trusted = claimed is not None and owner == username
        attempt, failures, ttl = (
            (as_device, device_failures, device_ttl)
            if trusted
            else (as_stranger, user_failures, user_ttl)
        )
        if int(failures or 0) >= self._settings.failures:
            raise TooManyRequests(
                retry_after=int(ttl) if int(ttl) > 0 else int(self._settings.window),
                message="Too many failed logins for this account; retry later",
            )
        return attempt

    async def failed(self, attempt: Attempt) -> None:
        window = int(self._settings.window)
        async with (
            self._redis.reaching("login_failed") as redis,
            redis.pipeline(transaction=True) as pipe,
        ):
            pipe.incr(attempt.failures_key)
            pipe.expire(attempt.failures_key, window, nx=True)
            await pipe.execute()

    async def succeeded(self, attempt: Attempt) -> str:
        """The device id to (re)issue: the client is now a known device of this account."""
        device_id = attempt.trusted_device or secrets.token_urlsafe(32)
        lifetime = int(self._settings.device_lifetime)
        async with (
            self._redis.reaching("login_succeeded") as redis,
            redis.pipeline(transaction=True) as pipe,
        ):
            pipe.set(f"login-device:{_digest(device_id)}", attempt.username, ex=lifetime)
            if attempt.trusted_device is not None:
                pipe.delete(attempt.failures_key)
            await pipe.execute()
        return device_id
