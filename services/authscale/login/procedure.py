"""The login procedure the session replicas and the issuer share.

Take a place among the hashing threads first (a full pool sheds the login with 503 at once), then
charge the account's budget (a spent budget costs no hash, and parallel guesses are counted
before any of them is hashed), then verify the password, then refund the charge on success.
"""

from __future__ import annotations

from quart import Response, request

from authscale.core.errors import InvalidCredentials
from authscale.core.metrics import AUTH_FAILURES
from authscale.core.settings import Settings
from authscale.core.storage import RedisStore
from authscale.login.credentials import Credentials
from authscale.login.passwords import Passwords
from authscale.login.throttle import LoginThrottle
from authscale.login.users import User, Users


class Logins:
    def __init__(self, role: str, redis: RedisStore, settings: Settings) -> None:
        self.role = role
        self.settings = settings
        self.passwords = Passwords(settings.passwords)
        self.users = Users(redis, self.passwords)
        self.throttle = LoginThrottle(redis, settings.throttle)

    async def authenticate(self, credentials: Credentials) -> tuple[User, str]:
        """The user and the device id to set as a cookie; 401, 429 or 503 otherwise."""
        cookie = request.cookies.get(self.settings.throttle.device_cookie_name)
        with self.passwords.admitted():
            attempt = await self.throttle.charge(credentials.username, cookie)
            user = await self.users.authenticate(credentials.username, credentials.password)
            if user is None:
                AUTH_FAILURES.labels(self.role, "invalid_credentials").inc()
                raise InvalidCredentials()
            return user, await self.throttle.succeeded(attempt, user.epoch)

    def set_device_cookie(self, response: Response, device_id: str) -> None:
        response.set_cookie(
            self.settings.throttle.device_cookie_name,
            device_id,
            max_age=int(self.settings.throttle.device_lifetime),
            path="/",
            secure=self.settings.cookies.secure,
            httponly=True,
            samesite="Lax",
        )

    def close(self) -> None:
        self.passwords.close()
