"""Settings of the token variant, kept apart from the base
:class:`~authscale.core.settings.Settings`.

The session role never reads these. The issuer reads :class:`IssuerSettings`, a token replica
:class:`TokenSettings`, and ``authscale keys`` :class:`KeyringSettings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from authscale.core.errors import ConfigError
from authscale.core.settings import (
    HOST_PREFIX,
    PREFIX,
    SECURE_PREFIX,
    Environ,
    check_cookie_name,
    cookie_name,
)

#: RFC 8725 asks for a small leeway; more than this hides clock problems instead of absorbing them.
MAX_LEEWAY = 30.0
#: The longest access lifetime accepted, so every key can be retired within a known time.
MAX_ACCESS_LIFETIME = 24 * 60 * 60.0
#: How often an issuer replica looks for changes in the signing keys directory.
KEYRING_RELOAD_INTERVAL = 1.0


def _environ(environ: Mapping[str, str] | None) -> Environ:
    return Environ(os.environ if environ is None else environ)


def _cookie_name(env: Environ, name: str, base: str) -> str:
    secure = env.boolean("COOKIE_SECURE", True)
    value = env.string(name, cookie_name(base, SECURE_PREFIX, secure=secure))
    if value.startswith(HOST_PREFIX):
        # __Host- demands Path=/, and these cookies are scoped to /token and /token/refresh.
        raise ConfigError(
            f"{PREFIX}{name} {value!r}: the __Host- prefix needs Path=/, but token cookies are "
            "scoped to /token; use the __Secure- prefix instead."
        )
    return check_cookie_name(name, value, secure=secure)


@dataclass(frozen=True)
class AccessTokenSettings:
    """What the issuer writes into an access token and what every verifier demands of one."""

    issuer: str = "urn:authscale:issuer"
    audience: str = "urn:authscale:token"
    lifetime: float = 15 * 60.0
    leeway: float = 10.0
    cookie_name: str = SECURE_PREFIX + "authscale_access"

    @property
    def retention(self) -> float:
        """How long after its issue an access token can still be accepted by some verifier."""
        return self.lifetime + self.leeway

    @classmethod
    def from_environ(cls, env: Environ) -> AccessTokenSettings:
        return cls(
            issuer=env.string("TOKEN_ISSUER", cls.issuer),
            audience=env.string("TOKEN_AUDIENCE", cls.audience),
            lifetime=env.seconds(
                "ACCESS_TOKEN_LIFETIME", cls.lifetime, minimum=1, maximum=MAX_ACCESS_LIFETIME
            ),
            leeway=env.seconds("TOKEN_LEEWAY", cls.leeway, minimum=0, maximum=MAX_LEEWAY),
            cookie_name=_cookie_name(env, "ACCESS_COOKIE_NAME", "authscale_access"),
        )


@dataclass(frozen=True)
class RefreshSettings:
    #: How long one refresh token stays usable if it is not rotated (sliding).
    token_lifetime: float = 24 * 60 * 60.0
    #: How long a family (every token descending from one login) lives at most (absolute).
    family_lifetime: float = 7 * 24 * 60 * 60.0
    #: How long the immediately previous token may be presented again without counting as reuse.
    grace_period: float = 10.0
    cookie_name: str = SECURE_PREFIX + "authscale_refresh"
    #: Live families (logins) per user; one more revokes the oldest.
    families_per_user: int = 20

    @classmethod
    def from_environ(cls, env: Environ) -> RefreshSettings:
        token = env.seconds("REFRESH_TOKEN_LIFETIME", cls.token_lifetime, minimum=1)
        family = env.seconds("REFRESH_FAMILY_LIFETIME", cls.family_lifetime, minimum=1)
        env.ordered("REFRESH_TOKEN_LIFETIME", token, "REFRESH_FAMILY_LIFETIME", family)
        return cls(
            token_lifetime=token,
            family_lifetime=family,
            grace_period=env.seconds("REFRESH_GRACE_PERIOD", cls.grace_period, maximum=300),
            cookie_name=_cookie_name(env, "REFRESH_COOKIE_NAME", "authscale_refresh"),
            families_per_user=env.integer(
                "REFRESH_FAMILIES_PER_USER", cls.families_per_user, minimum=1, maximum=1000
            ),
        )


@dataclass(frozen=True)
class JwksSettings:
    """Where a token replica finds the public keys, and how often it looks again."""

    url: str | None = None
    file: Path | None = None
    #: Every replica re-reads the key set this often: this bounds how long a revoked key or a
    #: newly published one takes to reach it.
    refresh_interval: float = 60.0
    #: The least time between two fetches, so tokens with made-up ``kid`` values cannot make a
    #: replica hammer the issuer.
    min_refetch_interval: float = 5.0
    fetch_timeout: float = 2.0

    @property
    def source(self) -> str:
        return self.url or str(self.file)

    @property
    def variable(self) -> str:
        """The variable that names the source, for error messages."""
        return f"{PREFIX}JWKS_URL" if self.url else f"{PREFIX}JWKS_FILE"

    @classmethod
    def from_environ(cls, env: Environ) -> JwksSettings:
        url = env.raw("JWKS_URL")
        file = env.path("JWKS_FILE")
        if url and file:
            raise ConfigError(
                f"{PREFIX}JWKS_URL and {PREFIX}JWKS_FILE are both set; set exactly one."
            )
        if not url and not file:
            raise ConfigError(
                f"{PREFIX}JWKS_URL is missing, and has no default. Point it at the issuer's "
                f"/.well-known/jwks.json, or set {PREFIX}JWKS_FILE to a JWKS document."
            )
        if url and (urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).netloc):
            raise ConfigError(f"{PREFIX}JWKS_URL must be an http(s):// URL, got {url!r}.")
        interval, minimum, timeout = timing(env)
        return cls(
            url=url,
            file=file,
            refresh_interval=interval,
            min_refetch_interval=minimum,
            fetch_timeout=timeout,
        )


def timing(env: Environ) -> tuple[float, float, float]:
    """The token replicas' key-set timing; ``authscale keys rotate`` checks its delay against it."""
    interval = env.seconds("JWKS_REFRESH_INTERVAL", JwksSettings.refresh_interval, minimum=0.1)
    minimum = env.seconds(
        "JWKS_MIN_REFETCH_INTERVAL", JwksSettings.min_refetch_interval, minimum=0.1
    )
    env.ordered("JWKS_MIN_REFETCH_INTERVAL", minimum, "JWKS_REFRESH_INTERVAL", interval)
    timeout = env.seconds("JWKS_FETCH_TIMEOUT", JwksSettings.fetch_timeout, minimum=0.1, maximum=30)
    return interval, minimum, timeout


def keys_dir(env: Environ) -> Path:
    path = env.path("SIGNING_KEYS_DIR")
    if path is None:
        raise ConfigError(
            f"{PREFIX}SIGNING_KEYS_DIR is missing, and has no default. Point it at the directory "
            "holding the issuer's private keys (create one with `authscale keys generate`)."
        )
    return path


@dataclass(frozen=True)
class IssuerSettings:
    keys_dir: Path
    access: AccessTokenSettings = AccessTokenSettings()
    refresh: RefreshSettings = RefreshSettings()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> IssuerSettings:
        env = _environ(environ)
        return cls(
            keys_dir=keys_dir(env),
            access=AccessTokenSettings.from_environ(env),
            refresh=RefreshSettings.from_environ(env),
        )


@dataclass(frozen=True)
class TokenSettings:
    """A token replica: public keys only, and Redis only in denylist mode."""

    jwks: JwksSettings
    access: AccessTokenSettings = AccessTokenSettings()
    #: Remembered verifications (0 turns the cache off).
    verified_cache_size: int = 10_000
    #: Check every request's token family against a denylist in Redis (fails closed).
    denylist: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> TokenSettings:
        env = _environ(environ)
        if env.raw("SIGNING_KEYS_DIR") is not None:
            raise ConfigError(
                f"{PREFIX}SIGNING_KEYS_DIR is set on a token replica: token replicas verify with "
                "public keys only and must never see a private key. Unset it, and set "
                f"{PREFIX}JWKS_URL or {PREFIX}JWKS_FILE instead."
            )
        denylist = env.boolean("TOKEN_DENYLIST", cls.denylist)
        if not denylist and env.raw("REDIS_URL") is not None:
            # Least privilege: a replica that never uses Redis holds neither its password nor a
            # reason to reach it.
            raise ConfigError(
                f"{PREFIX}REDIS_URL is set on a token replica outside denylist mode, which never "
                f"uses Redis: unset it (or set {PREFIX}TOKEN_DENYLIST=true, with the denylist-only "
                "Redis user)."
            )
        return cls(
            jwks=JwksSettings.from_environ(env),
            access=AccessTokenSettings.from_environ(env),
            verified_cache_size=env.integer(
                "VERIFIED_TOKEN_CACHE_SIZE", cls.verified_cache_size, maximum=10_000_000
            ),
            denylist=denylist,
        )


@dataclass(frozen=True)
class KeyringSettings:
    """What ``authscale keys`` needs: the directory and when a rotated key starts signing."""

    keys_dir: Path
    #: A new key is published this long before it signs anything. It must exceed the time every
    #: token replica can take to see it: the issuer's reload, their refresh interval and a fetch.
    activation_delay: float = 150.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> KeyringSettings:
        env = _environ(environ)
        delay = env.seconds("KEY_ACTIVATION_DELAY", cls.activation_delay, minimum=0)
        interval, _, timeout = timing(env)
        needed = KEYRING_RELOAD_INTERVAL + interval + timeout
        if delay <= needed:
            raise ConfigError(
                f"{PREFIX}KEY_ACTIVATION_DELAY ({delay:g} s) must exceed the time a token replica "
                f"can take to learn a new key: {KEYRING_RELOAD_INTERVAL:g} s issuer reload + "
                f"{PREFIX}JWKS_REFRESH_INTERVAL ({interval:g} s) + "
                f"{PREFIX}JWKS_FETCH_TIMEOUT ({timeout:g} s) = {needed:g} s."
            )
        return cls(keys_dir=keys_dir(env), activation_delay=delay)
