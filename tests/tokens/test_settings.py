"""Token-variant settings: defaults, limits, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from authscale.core.errors import ConfigError
from authscale.tokens.settings import IssuerSettings, KeyringSettings, TokenSettings

TOKEN = {"AUTHSCALE_JWKS_URL": "http://127.0.0.1:8000/.well-known/jwks.json"}
ISSUER = {"AUTHSCALE_SIGNING_KEYS_DIR": "/run/authscale/keys"}


def test_defaults_are_the_safe_ones():
    token = TokenSettings.from_environ(TOKEN)
    assert token.denylist is False
    assert token.verified_cache_size == 10_000
    assert token.access.lifetime == 15 * 60 and token.access.leeway <= 30
    assert token.jwks.refresh_interval == 60 and token.jwks.min_refetch_interval == 5
    issuer = IssuerSettings.from_environ(ISSUER)
    assert issuer.keys_dir == Path("/run/authscale/keys")
    assert issuer.access == token.access
    assert issuer.refresh.grace_period == 10
    assert issuer.refresh.token_lifetime <= issuer.refresh.family_lifetime


def test_every_variable_is_read():
    environ = {
        **TOKEN,
        "AUTHSCALE_TOKEN_ISSUER": "https://id.example",
        "AUTHSCALE_TOKEN_AUDIENCE": "https://api.example",
        "AUTHSCALE_ACCESS_TOKEN_LIFETIME": "300",
        "AUTHSCALE_TOKEN_LEEWAY": "30",
        "AUTHSCALE_ACCESS_COOKIE_NAME": "__Secure-access",
        "AUTHSCALE_JWKS_REFRESH_INTERVAL": "30",
        "AUTHSCALE_JWKS_MIN_REFETCH_INTERVAL": "2",
        "AUTHSCALE_JWKS_FETCH_TIMEOUT": "1",
        "AUTHSCALE_VERIFIED_TOKEN_CACHE_SIZE": "0",
        "AUTHSCALE_TOKEN_DENYLIST": "true",
    }
    token = TokenSettings.from_environ(environ)
    assert (token.access.issuer, token.access.audience) == (
        "https://id.example",
        "https://api.example",
    )
    assert (token.access.lifetime, token.access.leeway) == (300, 30)
    assert token.access.cookie_name == "__Secure-access"
    assert (token.jwks.refresh_interval, token.jwks.min_refetch_interval) == (30, 2)
    assert token.jwks.fetch_timeout == 1
    assert token.verified_cache_size == 0 and token.denylist is True
    issuer = IssuerSettings.from_environ(
        {
            **ISSUER,
            "AUTHSCALE_REFRESH_TOKEN_LIFETIME": "60",
            "AUTHSCALE_REFRESH_FAMILY_LIFETIME": "120",
            "AUTHSCALE_REFRESH_GRACE_PERIOD": "0",
            "AUTHSCALE_REFRESH_COOKIE_NAME": "__Secure-refresh",
        }
    )
    assert (issuer.refresh.token_lifetime, issuer.refresh.family_lifetime) == (60, 120)
    assert issuer.refresh.grace_period == 0
    assert issuer.refresh.cookie_name == "__Secure-refresh"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "AUTHSCALE_JWKS_URL is missing"),
        ({**TOKEN, "AUTHSCALE_JWKS_FILE": "/x"}, "AUTHSCALE_JWKS_URL and AUTHSCALE_JWKS_FILE"),
        ({"AUTHSCALE_JWKS_URL": "file:///etc/jwks.json"}, "AUTHSCALE_JWKS_URL must be"),
        ({"AUTHSCALE_JWKS_URL": "issuer:8000"}, "AUTHSCALE_JWKS_URL must be"),
        ({**TOKEN, **ISSUER}, "AUTHSCALE_SIGNING_KEYS_DIR is set on a token replica"),
        ({**TOKEN, "AUTHSCALE_TOKEN_LEEWAY": "31"}, "AUTHSCALE_TOKEN_LEEWAY must be at most"),
        ({**TOKEN, "AUTHSCALE_ACCESS_TOKEN_LIFETIME": "0"}, "AUTHSCALE_ACCESS_TOKEN_LIFETIME"),
        ({**TOKEN, "AUTHSCALE_ACCESS_TOKEN_LIFETIME": "90000"}, "AUTHSCALE_ACCESS_TOKEN_LIFETIME"),
        ({**TOKEN, "AUTHSCALE_TOKEN_DENYLIST": "maybe"}, "AUTHSCALE_TOKEN_DENYLIST"),
        ({**TOKEN, "AUTHSCALE_VERIFIED_TOKEN_CACHE_SIZE": "-1"}, "CACHE_SIZE"),
        ({**TOKEN, "AUTHSCALE_ACCESS_COOKIE_NAME": "a b"}, "AUTHSCALE_ACCESS_COOKIE_NAME"),
        ({**TOKEN, "AUTHSCALE_ACCESS_COOKIE_NAME": "__Host-a"}, "__Secure- prefix"),
        (
            {**TOKEN, "AUTHSCALE_JWKS_MIN_REFETCH_INTERVAL": "90"},
            "AUTHSCALE_JWKS_MIN_REFETCH_INTERVAL (90) must not exceed",
        ),
    ],
)
def test_token_replica_errors_name_the_variable(environ, variable):
    with pytest.raises(ConfigError, match=variable.replace("(", r"\(").replace(")", r"\)")):
        TokenSettings.from_environ(environ)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "AUTHSCALE_SIGNING_KEYS_DIR is missing"),
        (
            {
                **ISSUER,
                "AUTHSCALE_REFRESH_TOKEN_LIFETIME": "100",
                "AUTHSCALE_REFRESH_FAMILY_LIFETIME": "50",
            },
            "AUTHSCALE_REFRESH_TOKEN_LIFETIME",
        ),
        ({**ISSUER, "AUTHSCALE_REFRESH_GRACE_PERIOD": "301"}, "AUTHSCALE_REFRESH_GRACE_PERIOD"),
        ({**ISSUER, "AUTHSCALE_REFRESH_COOKIE_NAME": "x;y"}, "AUTHSCALE_REFRESH_COOKIE_NAME"),
    ],
)
def test_issuer_errors_name_the_variable(environ, variable):
    with pytest.raises(ConfigError, match=variable):
        IssuerSettings.from_environ(environ)


def test_the_activation_delay_must_outlast_a_replicas_refresh():
    assert KeyringSettings.from_environ(ISSUER).activation_delay == 150
    with pytest.raises(
        ConfigError, match=r"AUTHSCALE_KEY_ACTIVATION_DELAY .*JWKS_REFRESH_INTERVAL"
    ):
        KeyringSettings.from_environ({**ISSUER, "AUTHSCALE_KEY_ACTIVATION_DELAY": "60"})
    fast = {
        **ISSUER,
        "AUTHSCALE_KEY_ACTIVATION_DELAY": "5",
        "AUTHSCALE_JWKS_REFRESH_INTERVAL": "2",
        "AUTHSCALE_JWKS_MIN_REFETCH_INTERVAL": "1",
        "AUTHSCALE_JWKS_FETCH_TIMEOUT": "1",
    }
    assert KeyringSettings.from_environ(fast).activation_delay == 5


def test_token_cookies_get_the_secure_prefix_when_secure() -> None:
    secure = TokenSettings.from_environ(TOKEN)
    assert secure.access.cookie_name == "__Secure-authscale_access"
    plain = TokenSettings.from_environ({**TOKEN, "AUTHSCALE_COOKIE_SECURE": "false"})
    assert plain.access.cookie_name == "authscale_access"
    with pytest.raises(ConfigError, match="only accept on Secure cookies"):
        TokenSettings.from_environ(
            {
                **TOKEN,
                "AUTHSCALE_COOKIE_SECURE": "false",
                "AUTHSCALE_ACCESS_COOKIE_NAME": "__Secure-a",
            }
        )


def test_a_token_replica_outside_denylist_mode_refuses_a_redis_url() -> None:
    redis = {"AUTHSCALE_REDIS_URL": "redis://:a-real-password@127.0.0.1:6379/0"}
    with pytest.raises(ConfigError, match="outside denylist mode"):
        TokenSettings.from_environ({**TOKEN, **redis})
    assert TokenSettings.from_environ(
        {**TOKEN, **redis, "AUTHSCALE_TOKEN_DENYLIST": "true"}
    ).denylist
