"""Shared ``AUTHSCALE_*`` settings: secure defaults, refusals that name the variable."""

from __future__ import annotations

import pytest

from authscale.core.errors import ConfigError
from authscale.core.settings import Settings

URL = "redis://:s3cret-value@127.0.0.1:6379/0"


def settings(**environ: str) -> Settings:
    return Settings.from_environ({"AUTHSCALE_REDIS_URL": URL, **environ})


def test_defaults_are_the_secure_ones() -> None:
    loaded = settings()
    assert loaded.cookies.secure is True
    assert loaded.sessions.idle_timeout == 15 * 60
    assert loaded.sessions.absolute_timeout == 8 * 60 * 60
    assert loaded.cors_origins == ()
    assert loaded.redis.timeout == 1.0
    assert (loaded.passwords.memory_cost_kib, loaded.passwords.time_cost) == (19 * 1024, 2)


def test_missing_redis_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AUTHSCALE_REDIS_URL is missing"):
        Settings.from_environ({})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:6379/0", "carries no password"),
        ("redis://:changeme@127.0.0.1:6379/0", "placeholder password"),
        ("http://:pw-long-enough@127.0.0.1/0", "must start with redis://"),
        ("redis+cluster://127.0.0.1:7000", "carries no password"),
        ("redis+cluster://:password@127.0.0.1:7000", "placeholder password"),
        ("redis+cluster://:pw-long-enough@127.0.0.1:7000/0", "takes no database"),
        ("redis+cluster://:pw-long-enough@127.0.0.1", "HOST:PORT"),
        ("redis+cluster://:pw-long-enough@127.0.0.1:7000,", "HOST:PORT"),
        ("redis+cluster://:pw-long-enough@127.0.0.1:99999", "1-65535"),
        ("redis+sentinel://:pw-long-enough@127.0.0.1:26379", "must start with redis://"),
    ],
)
def test_unsafe_redis_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_environ({"AUTHSCALE_REDIS_URL": url})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUTHSCALE_REDIS_TIMEOUT", "soon", "AUTHSCALE_REDIS_TIMEOUT must be a number of seconds"),
        ("AUTHSCALE_REDIS_POOL_SIZE", "0", "AUTHSCALE_REDIS_POOL_SIZE must be at least 1"),
        ("AUTHSCALE_COOKIE_SECURE", "maybe", "AUTHSCALE_COOKIE_SECURE must be true or false"),
        ("AUTHSCALE_CORS_ORIGINS", "*", "AUTHSCALE_CORS_ORIGINS entries must be exact origins"),
        ("AUTHSCALE_CORS_ORIGINS", "localhost:5173/app", "must be exact origins"),
        ("AUTHSCALE_LOG_LEVEL", "LOUD", "AUTHSCALE_LOG_LEVEL must be"),
        ("AUTHSCALE_SESSION_COOKIE_NAME", "bad name;", "not a valid cookie name"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**{name: value})


def test_idle_timeout_cannot_exceed_absolute_timeout() -> None:
    with pytest.raises(ConfigError, match="SESSION_IDLE_TIMEOUT"):
        settings(AUTHSCALE_SESSION_IDLE_TIMEOUT="100", AUTHSCALE_SESSION_ABSOLUTE_TIMEOUT="10")


def test_host_prefix_requires_secure_cookies() -> None:
    with pytest.raises(ConfigError, match="only accept on Secure cookies"):
        settings(AUTHSCALE_SESSION_COOKIE_NAME="__Host-session", AUTHSCALE_COOKIE_SECURE="false")
    assert settings(AUTHSCALE_SESSION_COOKIE_NAME="__Host-session").cookies.session_name == (
        "__Host-session"
    )


def test_cors_origins_are_parsed_and_normalised() -> None:
    loaded = settings(AUTHSCALE_CORS_ORIGINS="http://localhost:5173/, https://app.example.com")
    assert loaded.cors_origins == ("http://localhost:5173", "https://app.example.com")


def test_secure_cookies_get_prefixed_names_by_default() -> None:
    secure = settings()
    assert secure.cookies.session_name == "__Host-authscale_session"
    assert secure.throttle.device_cookie_name == "__Host-authscale_device"
    plain = settings(AUTHSCALE_COOKIE_SECURE="false")
    assert plain.cookies.session_name == "authscale_session"
    assert plain.throttle.device_cookie_name == "authscale_device"
