"""Settings from ``AUTHSCALE_*`` environment variables, parsed once into frozen dataclasses.

Every reader takes an explicit mapping, so tests pass their own and never touch ``os.environ``.
A missing required value or a malformed one fails at start with the variable's name.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from authscale.core.errors import ConfigError
from authscale.core.redis_url import CLUSTER_SCHEMES, SINGLE_SCHEMES, cluster_address, scheme_of

PREFIX = "AUTHSCALE_"

#: Values that show a secret was copied from an example and never replaced.
PLACEHOLDERS = frozenset({"changeme", "change-me", "changethis", "secret", "password", "example"})


class Environ:
    """Typed reads of ``AUTHSCALE_*`` variables that name the variable when a value is wrong."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(PREFIX + name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def required(self, name: str, hint: str) -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(f"{PREFIX}{name} is missing, and has no default. {hint}")
        return value

    def string(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be a whole number, got {value!r}.") from None
        self._check_range(name, number, minimum, maximum)
        return number

    def seconds(
        self, name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(
                f"{PREFIX}{name} must be a number of seconds, got {value!r}."
            ) from None
        self._check_range(name, number, minimum, maximum)
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{PREFIX}{name} must be true or false, got {value!r}.")

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def path(self, name: str) -> Path | None:
        value = self.raw(name)
        return None if value is None else Path(value)

    @staticmethod
    def ordered(smaller: str, small: float, larger: str, large: float) -> None:
        """Refuse a pair of settings where ``smaller`` exceeds ``larger``, naming both."""
        if small > large:
            raise ConfigError(
                f"{PREFIX}{smaller} ({small:g}) must not exceed {PREFIX}{larger} ({large:g})."
            )

    @staticmethod
    def _check_range(name: str, number: float, minimum: float, maximum: float | None) -> None:
        if number < minimum:
            raise ConfigError(f"{PREFIX}{name} must be at least {minimum}, got {number}.")
        if maximum is not None and number > maximum:
            raise ConfigError(f"{PREFIX}{name} must be at most {maximum}, got {number}.")


#: Cookie name prefixes (RFC 6265bis): a browser keeps a ``__Host-`` cookie only if it is Secure,
#: has Path=/ and no Domain, and a ``__Secure-`` one only if it is Secure, so a sibling subdomain
#: or a plain-HTTP page cannot plant or overwrite it (ASVS 5.0 V3.3.1).
HOST_PREFIX = "__Host-"
SECURE_PREFIX = "__Secure-"


def cookie_name(base: str, prefix: str, *, secure: bool) -> str:
    """The default name of a cookie: prefixed when Secure; bare only on plain HTTP, where
    browsers would refuse a prefixed one."""
    return prefix + base if secure else base


def check_cookie_name(variable: str, name: str, *, secure: bool) -> str:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{PREFIX}{variable} {name!r} is not a valid cookie name.")
    if name.startswith((HOST_PREFIX, SECURE_PREFIX)) and not secure:
        raise ConfigError(
            f"{PREFIX}{variable} {name!r} uses a prefix browsers only accept on Secure cookies; "
            f"set {PREFIX}COOKIE_SECURE=true or drop the prefix."
        )
    return name


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class RedisSettings:
    url: str
    #: The longest a request waits on Redis (connect, command, or a free pooled connection)
    #: before the replica answers 503.
    timeout: float = 1.0
    pool_size: int = 64

    @classmethod
    def from_environ(cls, env: Environ) -> RedisSettings:
        url = env.required(
            "REDIS_URL",
            "Set it to redis://:PASSWORD@HOST:PORT/0, or for a Redis Cluster to "
            "redis+cluster://:PASSWORD@HOST:PORT[,HOST:PORT...] (Redis must require a password).",
        )
        scheme = scheme_of(url)
        if scheme in CLUSTER_SCHEMES:
            password = cluster_address(url, name=f"{PREFIX}REDIS_URL").password
        elif scheme in SINGLE_SCHEMES:
            password = urlsplit(url).password
        else:
            raise ConfigError(
                f"{PREFIX}REDIS_URL must start with redis://, rediss://, unix://, "
                f"redis+cluster:// or rediss+cluster://, got scheme {scheme!r}."
            )
        if not password:
            raise ConfigError(
                f"{PREFIX}REDIS_URL carries no password: Redis holds every user and session, so it "
                "must require one, even on loopback (redis://:PASSWORD@HOST:PORT/0)."
            )
        if password.lower() in PLACEHOLDERS:
            raise ConfigError(
                f"{PREFIX}REDIS_URL uses the placeholder password {password!r}; "
                "generate a real one (for example: openssl rand -hex 24)."
            )
        return cls(
            url=url,
            timeout=env.seconds("REDIS_TIMEOUT", cls.timeout, minimum=0.05, maximum=60),
            pool_size=env.integer("REDIS_POOL_SIZE", cls.pool_size, minimum=1, maximum=10_000),
        )


@dataclass(frozen=True)
class CookieSettings:
    #: ``False`` only where the deployment declares that it serves plain HTTP (the local stack).
    secure: bool = True
    session_name: str = HOST_PREFIX + "authscale_session"

    @classmethod
    def from_environ(cls, env: Environ) -> CookieSettings:
        secure = env.boolean("COOKIE_SECURE", cls.secure)
        default = cookie_name("authscale_session", HOST_PREFIX, secure=secure)
        name = env.string("SESSION_COOKIE_NAME", default)
        return cls(
            secure=secure,
            session_name=check_cookie_name("SESSION_COOKIE_NAME", name, secure=secure),
        )


@dataclass(frozen=True)
class SessionSettings:
    idle_timeout: float = 15 * 60
    absolute_timeout: float = 8 * 60 * 60
    #: Live sessions per user; one more ends the oldest.
    per_user: int = 20

    @classmethod
    def from_environ(cls, env: Environ) -> SessionSettings:
        idle = env.seconds("SESSION_IDLE_TIMEOUT", cls.idle_timeout, minimum=1)
        absolute = env.seconds("SESSION_ABSOLUTE_TIMEOUT", cls.absolute_timeout, minimum=1)
        env.ordered("SESSION_IDLE_TIMEOUT", idle, "SESSION_ABSOLUTE_TIMEOUT", absolute)
        return cls(
            idle_timeout=idle,
            absolute_timeout=absolute,
            per_user=env.integer("SESSIONS_PER_USER", cls.per_user, minimum=1, maximum=1000),
        )


@dataclass(frozen=True)
class PasswordSettings:
    """argon2id cost; the defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane)."""

    time_cost: int = 2
    memory_cost_kib: int = 19 * 1024
    parallelism: int = 1
    #: Hashes run at once; 0 sizes the pool from the container's CPU quota and memory limit.
    workers: int = 0
    #: Logins that may wait for a hashing thread; one more is answered 503 at once.
    queue: int = 8

    @classmethod
    def from_environ(cls, env: Environ) -> PasswordSettings:
        return cls(
            time_cost=env.integer("ARGON2_TIME_COST", cls.time_cost, minimum=1, maximum=100),
            memory_cost_kib=env.integer(
                "ARGON2_MEMORY_KIB", cls.memory_cost_kib, minimum=8, maximum=4 * 1024 * 1024
            ),
            parallelism=env.integer("ARGON2_PARALLELISM", cls.parallelism, minimum=1, maximum=64),
            workers=env.integer("HASHING_WORKERS", cls.workers, minimum=0, maximum=256),
            queue=env.integer("HASHING_QUEUE", cls.queue, minimum=0, maximum=10_000),
        )


@dataclass(frozen=True)
class ThrottleSettings:
    """Per-account throttling of failed logins, shared through Redis by every replica.

    Clients that never logged in to an account share one budget of failures for it; a client
    holding a device cookie from an earlier login to that account has a budget of its own, so
    an attacker who spends the shared budget slows himself down without locking the user out.
    """

    #: Failed logins per budget and window before further attempts get 429.
    failures: int = 10
    window: float = 15 * 60
    device_cookie_name: str = HOST_PREFIX + "authscale_device"
    device_lifetime: float = 30 * 24 * 60 * 60
    #: Known devices remembered per account; a login from one more forgets the oldest.
    devices_per_user: int = 10

    @classmethod
    def from_environ(cls, env: Environ) -> ThrottleSettings:
        return cls(
            failures=env.integer("LOGIN_FAILURES_PER_WINDOW", cls.failures, minimum=1),
            window=env.seconds("LOGIN_FAILURE_WINDOW", cls.window, minimum=1),
            device_lifetime=env.seconds("DEVICE_COOKIE_LIFETIME", cls.device_lifetime, minimum=60),
            device_cookie_name=cookie_name(
                "authscale_device", HOST_PREFIX, secure=env.boolean("COOKIE_SECURE", True)
            ),
            devices_per_user=env.integer(
                "DEVICES_PER_USER", cls.devices_per_user, minimum=1, maximum=1000
            ),
        )


@dataclass(frozen=True)
class Settings:
    #: ``None`` for a role that runs without Redis (a token replica outside denylist mode).
    redis: RedisSettings | None
    replica_id: str = field(default_factory=default_replica_id)
    cookies: CookieSettings = CookieSettings()
    sessions: SessionSettings = SessionSettings()
    passwords: PasswordSettings = PasswordSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    #: Browser origins allowed to call with credentials (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    #: Proxies in front of the replica whose X-Forwarded-* headers are trusted (the gateway).
    trusted_hops: int = 1
    max_body_bytes: int = 16 * 1024
    log_level: str = "INFO"

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, uses_redis: bool = True
    ) -> Settings:
        """Read every base setting; ``uses_redis=False`` ignores the Redis variables entirely."""
        env = Environ(os.environ if environ is None else environ)
        origins = env.strings("CORS_ORIGINS")
        for origin in origins:
            if (
                origin == "*"
                or not urlsplit(origin).scheme
                or urlsplit(origin).path not in {"", "/"}
            ):
                raise ConfigError(
                    f"{PREFIX}CORS_ORIGINS entries must be exact origins such as "
                    f"http://localhost:5173 (credentials forbid '*'), got {origin!r}."
                )
        level = env.string("LOG_LEVEL", cls.log_level).upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(
                f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}."
            )
        return cls(
            redis=RedisSettings.from_environ(env) if uses_redis else None,
            replica_id=env.raw("REPLICA_ID") or default_replica_id(),
            cookies=CookieSettings.from_environ(env),
            sessions=SessionSettings.from_environ(env),
            passwords=PasswordSettings.from_environ(env),
            throttle=ThrottleSettings.from_environ(env),
            cors_origins=tuple(origin.rstrip("/") for origin in origins),
            trusted_hops=env.integer("TRUSTED_HOPS", cls.trusted_hops, minimum=0, maximum=10),
            max_body_bytes=env.integer("MAX_BODY_BYTES", cls.max_body_bytes, minimum=256),
            log_level=level,
        )
