"""The token role: local verification, every forged or malformed token refused with 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from prometheus_client import REGISTRY
from quart.typing import TestClientProtocol as Client

from authscale.core.errors import ConfigError
from authscale.lab.stack.local import LocalStack
from authscale.tokens.bearer import BEARER
from authscale.tokens.keys.jwk import generate_private_key, private_pem, public_jwk, thumbprint
from authscale.tokens.keys.keyring import Keyring
from authscale.tokens.settings import AccessTokenSettings
from tests.conftest import CHEAP_ARGON2, CLUSTER, SINGLE, add_user, stack_config
from tests.tokens.fixtures import PASSWORD, bearer, client_of, login, token_app

#: The contract holds on one Redis and on a Redis Cluster (tests/conftest.py).
REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)


ISSUER, AUDIENCE = "urn:authscale:issuer", "urn:authscale:token"
#: Secure cookies (the apps' default) carry the __Secure- prefix.
ACCESS_COOKIE = AccessTokenSettings.cookie_name


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(
    header: dict[str, Any], payload: dict[str, Any], key: rsa.RSAPrivateKey | None = None
) -> str:
    """A JWS built by hand, the way an attacker would, signed RS256 with ``key`` if given."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b""
    if key is not None:
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 600,
        "jti": "jti-1",
        "sid": "family-1",
    }
    for name, value in changes.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


@pytest.fixture
def signing(keys_dir: Path) -> tuple[str, rsa.RSAPrivateKey]:
    kid = Keyring(keys_dir).entries()[0].kid
    return kid, Keyring(keys_dir).private_key(kid)


def header(key_id: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"alg": "RS256", "typ": "at+jwt", "kid": key_id, **changes}
    return {name: value for name, value in values.items() if value is not None}


async def assert_refused(client: Client, headers: dict[str, str]) -> None:
    response = await client.get("/token/dashboard", headers=headers)
    assert response.status_code == 401, await response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="authscale"')
    assert (await response.get_json()) == {"message": "Invalid or expired access token"}


async def test_a_forged_by_hand_valid_token_is_accepted(token_client, signing):
    # The forging helper is right, so every refusal below is about the one thing each changes.
    kid, key = signing
    response = await token_client.get(
        "/token/dashboard", headers=bearer(forge(header(kid), claims(), key))
    )
    assert response.status_code == 200
    assert (await response.get_json()) == {"message": "Welcome, alice"}


async def test_an_issued_token_is_accepted_with_any_case_of_the_scheme(issuer_client, token_client):
    body = await login(issuer_client)
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = await token_client.get(
            "/token/dashboard", headers={"Authorization": f"{scheme} {body['token']}"}
        )
        assert response.status_code == 200


def test_only_the_scheme_ignores_case():
    assert BEARER.fullmatch("bEaReR a.b.c") is not None
    # A pattern-wide IGNORECASE let [A-Za-z] match the Kelvin sign and the long s, which fold
    # to k and s: a token68 is ASCII and nothing else.
    assert BEARER.fullmatch("Bearer a.b.\u212a") is None
    assert BEARER.fullmatch("Bearer a.b.\u017f") is None


def _hs256_with_public_key(kid: str, key: rsa.RSAPrivateKey) -> str:
    secret = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{b64(json.dumps(header(kid, alg='HS256')).encode())}.{b64(json.dumps(claims()).encode())}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _tampered(kid: str, key: rsa.RSAPrivateKey) -> str:
    head, _, signature = forge(header(kid), claims(), key).split(".")
    return f"{head}.{b64(json.dumps(claims(sub='admin')).encode())}.{signature}"


OTHER_KEY = generate_private_key()
OTHER_KID = thumbprint(OTHER_KEY.public_key())
NOW = int(time.time())

# Each case: a name and a function of the replica's (kid, private key) giving the token.
FORGED = {
    "alg none, no signature": lambda kid, key: forge(header(kid, alg="none"), claims()),
    "alg none with a signature": lambda kid, key: (
        forge(header(kid, alg="none"), claims(), key).rsplit(".", 1)[0] + ".c2ln"
    ),
    "HS256 keyed with the public key": _hs256_with_public_key,
    "RS512 instead of RS256": lambda kid, key: forge(header(kid, alg="RS512"), claims(), key),
    "typ JWT": lambda kid, key: forge(header(kid, typ="JWT"), claims(), key),
    "no typ": lambda kid, key: forge(header(kid, typ=None), claims(), key),
    "no kid": lambda kid, key: forge(header(kid, kid=None), claims(), key),
    "kid not a string": lambda kid, key: forge(header(kid, kid=7), claims(), key),
    "wrong aud": lambda kid, key: forge(header(kid), claims(aud="someone-else"), key),
    "aud as a list": lambda kid, key: forge(header(kid), claims(aud=[AUDIENCE, "x"]), key),
    "wrong iss": lambda kid, key: forge(header(kid), claims(iss="https://evil.example"), key),
    "expired beyond leeway": lambda kid, key: forge(
        header(kid), claims(iat=NOW - 3600, exp=NOW - 60), key
    ),
    "nbf in the future": lambda kid, key: forge(header(kid), claims(nbf=NOW + 3600), key),
    "iat in the future": lambda kid, key: forge(header(kid), claims(iat=NOW + 3600), key),
    "exp as a string": lambda kid, key: forge(header(kid), claims(exp=str(NOW + 600)), key),
    "missing exp": lambda kid, key: forge(header(kid), claims(exp=None), key),
    "missing sub": lambda kid, key: forge(header(kid), claims(sub=None), key),
    "empty sub": lambda kid, key: forge(header(kid), claims(sub=""), key),
    "missing iat": lambda kid, key: forge(header(kid), claims(iat=None), key),
    "missing jti": lambda kid, key: forge(header(kid), claims(jti=None), key),
    "missing iss": lambda kid, key: forge(header(kid), claims(iss=None), key),
    "missing aud": lambda kid, key: forge(header(kid), claims(aud=None), key),
    "missing sid": lambda kid, key: forge(header(kid), claims(sid=None), key),
    "unknown kid": lambda kid, key: forge(header(OTHER_KID), claims(), OTHER_KEY),
    "payload tampered": _tampered,
    "another RSA key under a known kid": lambda kid, key: forge(header(kid), claims(), OTHER_KEY),
    "jku pointing elsewhere": lambda kid, key: forge(
        header(kid, jku="https://evil.example/jwks.json"), claims(), OTHER_KEY
    ),
    "x5u pointing elsewhere": lambda kid, key: forge(
        header(kid, x5u="https://evil.example/cert.pem"), claims(), OTHER_KEY
    ),
    "jwk embedding the attacker's key": lambda kid, key: forge(
        header(kid, jwk=public_jwk(OTHER_KEY.public_key(), kid)), claims(), OTHER_KEY
    ),
    "jku with the attacker's kid": lambda kid, key: forge(
        header(OTHER_KID, jku="https://evil.example/jwks.json"), claims(), OTHER_KEY
    ),
    "unknown crit extension": lambda kid, key: forge(
        header(kid, crit=["exp-ext"], **{"exp-ext": 1}), claims(), key
    ),
    "b64 false": lambda kid, key: forge(header(kid, b64=False, crit=["b64"]), claims(), key),
    "garbage base64": lambda kid, key: "!!!.???.###",
    "three words": lambda kid, key: "abc.def.ghi",
    "header not JSON": lambda kid, key: f"{b64(b'not json')}.{b64(b'{}')}.{b64(b'x')}",
    "header a JSON list": lambda kid, key: f"{b64(b'[1]')}.{b64(b'{}')}.{b64(b'x')}",
    "payload a JSON list": lambda kid, key: forge(header(kid), [], key),  # type: ignore[arg-type]
    "two segments": lambda kid, key: ".".join(forge(header(kid), claims(), key).split(".")[:2]),
    "four segments": lambda kid, key: forge(header(kid), claims(), key) + ".x",
    "token with padding": lambda kid, key: forge(header(kid), claims(), key) + "==",
    "non-ASCII": lambda kid, key: "ëyJ.ëyJ.ë",
    "64 KiB": lambda kid, key: "eyJ" + "A" * (64 * 1024) + ".e30.x",
}


@pytest.mark.parametrize("case", sorted(FORGED))
async def test_forged_and_malformed_tokens_are_refused_with_401(token_client, signing, case):
    token = FORGED[case](*signing)
    if not BEARER.fullmatch(f"Bearer {token}"):
        # Not even an RFC 6750 token68: the header itself is malformed (invalid_request).
        response = await token_client.get("/token/dashboard", headers=bearer(token))
        assert response.status_code == 400
        return
    await assert_refused(token_client, bearer(token))


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer ", "Bearer  ", "Bearer a b", "bearer ?"]
)
async def test_a_malformed_bearer_header_is_400_invalid_request(token_client, authorization):
    """RFC 6750 section 3.1: a malformed request is invalid_request, 400."""
    for route in ("/token/dashboard", "/token/me"):
        response = await token_client.get(route, headers={"Authorization": authorization})
        assert response.status_code == 400
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="authscale", error="invalid_request"'
        )
        assert (await response.get_json()) == {"message": "Malformed Authorization header"}


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Token abc", "abc"])
async def test_another_scheme_is_401_with_a_bare_challenge(token_client, authorization):
    """RFC 6750 section 3.1: a request without bearer credentials gets no error code."""
    response = await token_client.get("/token/dashboard", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="authscale"'


async def test_no_credentials_at_all_get_a_bare_challenge(token_client):
    response = await token_client.get("/token/dashboard")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="authscale"'


async def test_a_forged_token_in_the_cookie_is_refused(token_client, signing):
    kid, _ = signing
    token = forge(header(kid), claims(), OTHER_KEY)
    await assert_refused(token_client, {"Cookie": f"{ACCESS_COOKIE}={token}"})


async def test_the_header_wins_over_the_cookie(token_client, signing):
    kid, key = signing
    good = forge(header(kid), claims(), key)
    response = await token_client.get(
        "/token/dashboard",
        headers={"Authorization": "Basic eA==", "Cookie": f"{ACCESS_COOKIE}={good}"},
    )
    assert response.status_code == 401


async def test_ping_needs_no_token(token_client):
    response = await token_client.get("/token/ping")
    assert response.status_code == 200
    assert (await response.get_json()) == {"message": "pong"}


async def test_me_names_the_user_and_gives_cookie_tokens_their_csrf(issuer_client, token_client):
    body = await login(issuer_client)
    response = await token_client.get("/token/me", headers=bearer(body["token"]))
    assert (await response.get_json())["username"] == "alice"
    assert "csrf_token" not in await response.get_json()

    cookie_login = await issuer_client.post(
        "/token/login?mode=cookie", json={"username": "alice", "password": PASSWORD}
    )
    csrf = (await cookie_login.get_json())["csrf_token"]
    access = _cookie_value(cookie_login, ACCESS_COOKIE)
    response = await token_client.get("/token/me", headers={"Cookie": f"{ACCESS_COOKIE}={access}"})
    assert (await response.get_json())["csrf_token"] == csrf


def _cookie_value(response: Any, name: str) -> str:
    for value in response.headers.getlist("Set-Cookie"):
        if value.startswith(f"{name}="):
            return str(value.split(";", 1)[0].split("=", 1)[1])
    raise AssertionError(f"no {name} cookie set")


async def test_the_token_role_needs_no_redis_and_is_ready_with_a_key_set(token_client):
    response = await token_client.get("/readyz")
    assert response.status_code == 200
    assert (await response.get_json())["dependencies"] == {"jwks": "ok"}


async def test_a_replica_without_keys_is_not_ready_and_answers_503(tmp_path):
    # A URL where nothing listens: the issuer is not up yet.
    environ = {
        "AUTHSCALE_JWKS_URL": "http://127.0.0.1:9/.well-known/jwks.json",
        "AUTHSCALE_JWKS_FETCH_TIMEOUT": "0.5",
        "AUTHSCALE_TRUSTED_HOPS": "0",
    }
    async with client_of(token_app(environ)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert (await ready.get_json())["dependencies"] == {"jwks": "unreachable"}
        response = await client.get("/token/dashboard", headers=bearer("a.b.c"))
        assert response.status_code in {401, 503}
        forged = forge(header(OTHER_KID), claims(), OTHER_KEY)
        response = await client.get("/token/dashboard", headers=bearer(forged))
        assert response.status_code == 503


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        ("not json", "not JSON"),
        ('{"keys": []}', "no usable"),
        ("private-pem", "PEM private key"),
        ("private-jwk", "private key material"),
    ],
)
def test_unusable_key_files_stop_the_start_naming_the_variable(tmp_path, content, message):
    path = tmp_path / "jwks.json"
    key = generate_private_key()
    if content == "private-pem":
        path.write_bytes(private_pem(key))
    elif content == "private-jwk":
        jwk = {**public_jwk(key.public_key(), "k1"), "d": b64(b"\x01" * 32)}
        path.write_text(json.dumps({"keys": [jwk]}))
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="AUTHSCALE_JWKS_FILE") as raised:
        token_app({"AUTHSCALE_JWKS_FILE": str(path)})
    assert message in str(raised.value)


def test_a_signing_keys_dir_on_a_token_replica_stops_the_start(jwks_file, keys_dir):
    with pytest.raises(ConfigError, match="AUTHSCALE_SIGNING_KEYS_DIR is set on a token replica"):
        token_app(
            {"AUTHSCALE_JWKS_FILE": str(jwks_file), "AUTHSCALE_SIGNING_KEYS_DIR": str(keys_dir)}
        )


def _cache_count(result: str) -> float:
    value = REGISTRY.get_sample_value("authscale_verified_token_cache_total", {"result": result})
    return value or 0.0


async def test_repeat_requests_hit_the_verified_token_cache(token_client, signing):
    kid, key = signing
    token = forge(header(kid), claims(jti="cache-1"), key)
    hits, misses = _cache_count("hit"), _cache_count("miss")
    for _ in range(3):
        assert (
            await token_client.get("/token/dashboard", headers=bearer(token))
        ).status_code == 200
    assert _cache_count("miss") - misses == 1
    assert _cache_count("hit") - hits == 2


async def test_a_token_past_exp_but_within_leeway_is_never_cached(token_client, signing):
    kid, key = signing
    token = forge(header(kid), claims(iat=NOW - 600, exp=int(time.time()) - 2), key)
    hits = _cache_count("hit")
    for _ in range(2):
        assert (
            await token_client.get("/token/dashboard", headers=bearer(token))
        ).status_code == 200
    assert _cache_count("hit") == hits


async def test_the_cache_can_be_switched_off(token_environ, signing):
    kid, key = signing
    token = forge(header(kid), claims(jti="cache-off"), key)
    hits, misses = _cache_count("hit"), _cache_count("miss")
    environ = {**token_environ, "AUTHSCALE_VERIFIED_TOKEN_CACHE_SIZE": "0"}
    async with client_of(token_app(environ)) as client:
        for _ in range(3):
            assert (await client.get("/token/dashboard", headers=bearer(token))).status_code == 200
    assert (_cache_count("hit"), _cache_count("miss")) == (hits, misses)


async def test_nothing_answers_500_for_a_burst_of_junk(token_client, signing):
    kid, key = signing
    good = forge(header(kid), claims(), key)
    junk = [good[:cut] for cut in range(0, len(good), 37)] + [
        good.replace(".", ".."),
        good + good,
        "." * 50,
        "\x00" * 10,
        "e30." * 3,
    ]
    for token in junk:
        response = await token_client.get(
            "/token/dashboard", headers={"Authorization": f"Bearer {token}"}
        )
        malformed = not BEARER.fullmatch(f"Bearer {token}".strip())
        assert response.status_code == (400 if malformed else 401), token


# Through the gateway: real nginx, two token replicas, an issuer, a real Redis.


def token_login(client: httpx.Client, username: str, mode: str = "body") -> httpx.Response:
    path = "/token/login?mode=cookie" if mode == "cookie" else "/token/login"
    return client.post(path, json={"username": username, "password": PASSWORD})


def replicas_answering(client: httpx.Client, token: str, calls: int = 6) -> dict[str, int]:
    """Replica name -> status, over enough calls for nginx to reach every token replica."""
    seen: dict[str, int] = {}
    for _ in range(calls):
        response = client.get("/token/dashboard", headers=bearer(token))
        seen[response.headers["X-Replica"]] = response.status_code
    return seen


def test_a_token_issued_once_is_accepted_by_every_token_replica(gateway, stack):
    username = add_user(stack.redis_url)
    login = token_login(gateway, username)
    assert login.status_code == 200
    assert login.headers["X-Replica"].startswith("issuer-")
    seen = replicas_answering(gateway, login.json()["token"])
    assert set(seen) == {"token-1", "token-2"}
    assert set(seen.values()) == {200}


@pytest.mark.parametrize("case", ["alg none, no signature", "payload tampered", "unknown kid"])
def test_forged_tokens_are_refused_through_the_gateway(gateway, stack, case):
    kid = gateway.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
    token = FORGED[case](kid, OTHER_KEY)
    for _ in range(2):
        response = gateway.get("/token/dashboard", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_64_kib_token_is_refused_by_the_gateway_without_a_500(gateway):
    response = gateway.get("/token/dashboard", headers=bearer("eyJ" + "A" * 64 * 1024))
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/json")


def test_cookie_mode_through_the_gateway(stack):
    username = add_user(stack.redis_url)
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        login = token_login(client, username, mode="cookie")
        assert login.status_code == 200
        csrf = login.json()["csrf_token"]
        # The cookie jar honours Path: the refresh cookie only travels to /token/refresh.
        assert client.get("/token/dashboard").status_code == 200
        assert client.post("/token/refresh").status_code == 403
        refreshed = client.post("/token/refresh", headers={"X-CSRF-Token": csrf})
        assert refreshed.status_code == 200
        assert client.post("/token/logout").status_code == 403
        assert client.post("/token/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert client.get("/token/dashboard").status_code == 401
        assert client.post("/token/refresh", headers={"X-CSRF-Token": csrf}).status_code == 401


@pytest.fixture(scope="module")
def stateless_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: its Redis gets stopped."""
    local = LocalStack(
        stack_config(
            tmp_path_factory.mktemp("stateless"),
            env={**CHEAP_ARGON2, "AUTHSCALE_REDIS_TIMEOUT": "0.5"},
        )
    )
    local.start()
    yield local
    local.stop()


def test_tokens_keep_working_with_redis_down_while_sessions_and_logins_get_503(stateless_stack):
    username = add_user(stateless_stack.redis_url)
    with httpx.Client(base_url=stateless_stack.gateway_url, timeout=10) as client:
        assert (
            client.post(
                "/session/login", json={"username": username, "password": PASSWORD}
            ).status_code
            == 200
        )
        body = token_login(client, username).json()
        stateless_stack.stop_process("redis")
        try:
            seen = replicas_answering(client, body["token"])
            assert set(seen) == {"token-1", "token-2"}
            assert set(seen.values()) == {200}
            for _ in range(2):
                session = client.get("/session/dashboard")
                assert session.status_code == 503
                assert session.headers["X-Replica"].startswith("session-")
            login = token_login(client, username)
            assert login.status_code == 503
            assert login.headers["X-Replica"].startswith("issuer-")
            refresh = client.post("/token/refresh", json={"refresh_token": body["refresh_token"]})
            assert refresh.status_code == 503
            # The public keys need no Redis: replicas can still learn keys.
            assert client.get("/.well-known/jwks.json").status_code == 200
        finally:
            stateless_stack.start_process("redis")
        assert token_login(client, username).status_code == 200


@pytest.fixture(scope="module")
def denylist_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(
        stack_config(
            tmp_path_factory.mktemp("denylist"),
            env={
                **CHEAP_ARGON2,
                "AUTHSCALE_REDIS_TIMEOUT": "0.5",
                "AUTHSCALE_TOKEN_DENYLIST": "true",
            },
        )
    )
    local.start()
    yield local
    local.stop()


def test_denylist_mode_refuses_a_logged_out_token_on_every_replica(denylist_stack):
    username = add_user(denylist_stack.redis_url)
    with httpx.Client(base_url=denylist_stack.gateway_url, timeout=10) as client:
        kept, dropped = token_login(client, username).json(), token_login(client, username).json()
        assert set(replicas_answering(client, dropped["token"]).values()) == {200}
        logout = client.post("/token/logout", json={"refresh_token": dropped["refresh_token"]})
        assert logout.status_code == 200
        refused = replicas_answering(client, dropped["token"])
        assert set(refused) == {"token-1", "token-2"}
        assert set(refused.values()) == {401}
        assert set(replicas_answering(client, kept["token"]).values()) == {200}
        # Fails closed: with Redis down no token is let through unchecked.
        denylist_stack.stop_process("redis")
        try:
            closed = replicas_answering(client, kept["token"])
            assert set(closed) == {"token-1", "token-2"}
            assert set(closed.values()) == {503}
        finally:
            denylist_stack.start_process("redis")
