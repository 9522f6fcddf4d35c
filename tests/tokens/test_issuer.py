"""The issuer: logins in body and cookie mode, refresh rotation, logout, the public keys."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from authscale.core.errors import ConfigError
from authscale.tokens.keys.jwk import PRIVATE_MEMBERS
from authscale.tokens.refresh import REFRESH_TOKEN_PATTERN
from authscale.tokens.settings import AccessTokenSettings, RefreshSettings
from tests.conftest import CLUSTER, SINGLE
from tests.tokens.fixtures import (
    PASSWORD,
    USERNAME,
    bearer,
    client_of,
    issuer_app,
    login,
    token_app,
)

#: The contract holds on one Redis and on a Redis Cluster (tests/conftest.py).
REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)


#: Secure cookies (the apps' default) carry the __Secure- prefix.
ACCESS_COOKIE = AccessTokenSettings.cookie_name
REFRESH_COOKIE = RefreshSettings.cookie_name


async def refresh(client: Client, refresh_token: str) -> Any:
    return await client.post("/token/refresh", json={"refresh_token": refresh_token})


async def dashboard_status(client: Client, access_token: str) -> int:
    response = await client.get("/token/dashboard", headers=bearer(access_token))
    return int(response.status_code)


def cookies_set(response: Any) -> dict[str, str]:
    """Each Set-Cookie header by cookie name."""
    return {value.split("=", 1)[0]: value for value in response.headers.getlist("Set-Cookie")}


def cookie_value(response: Any, name: str) -> str:
    return cookies_set(response)[name].split(";", 1)[0].split("=", 1)[1]


async def test_login_answers_the_tutorial_contract(issuer_client):
    body = await login(issuer_client)
    assert set(body) == {"token", "access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token"] == body["access_token"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    # A 128-bit family handle and a 256-bit secret, base64url.
    assert REFRESH_TOKEN_PATTERN.fullmatch(body["refresh_token"])


@pytest.mark.parametrize(
    ("credentials", "status"),
    [
        ({"username": USERNAME, "password": "wrong"}, 401),
        ({"username": "nobody", "password": PASSWORD}, 401),
        ({"username": USERNAME}, 400),
        ({"username": "a b", "password": "x"}, 400),
        ({"username": USERNAME, "password": "x" * 300}, 400),
        (["not", "an", "object"], 400),
    ],
)
async def test_bad_logins_are_refused(issuer_client, credentials, status):
    response = await issuer_client.post("/token/login", json=credentials)
    assert response.status_code == status
    if status == 401:
        assert (await response.get_json()) == {"message": "Invalid credentials"}


async def test_a_login_with_an_unknown_mode_is_refused(issuer_client):
    response = await issuer_client.post(
        "/token/login?mode=url", json={"username": USERNAME, "password": PASSWORD}
    )
    assert response.status_code == 400


async def test_the_key_set_holds_public_keys_with_their_kid(issuer_client, keys_dir):
    response = await issuer_client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = (await response.get_json())["keys"]
    assert len(keys) == 1
    assert keys[0]["kid"] and keys[0]["alg"] == "RS256" and keys[0]["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(keys[0])


async def test_refresh_rotates_and_the_new_pair_works(issuer_client, token_client):
    first = await login(issuer_client)
    response = await refresh(issuer_client, first["refresh_token"])
    assert response.status_code == 200
    second = await response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    dashboard = await token_client.get("/token/dashboard", headers=bearer(second["token"]))
    assert dashboard.status_code == 200
    assert (await refresh(issuer_client, second["refresh_token"])).status_code == 200


@pytest.fixture
async def strict_issuer(issuer_environ, user):
    """No grace period: strict RFC 9700 reuse detection."""
    environ = {**issuer_environ, "AUTHSCALE_REFRESH_GRACE_PERIOD": "0"}
    async with client_of(issuer_app(environ)) as client:
        yield client


async def test_an_already_rotated_token_revokes_its_whole_family(strict_issuer):
    first = await login(strict_issuer)
    second = await (await refresh(strict_issuer, first["refresh_token"])).get_json()
    reused = await refresh(strict_issuer, first["refresh_token"])
    assert reused.status_code == 401
    assert (await reused.get_json()) == {"message": "Invalid refresh token"}
    # The legitimate holder's newer token died with the family.
    assert (await refresh(strict_issuer, second["refresh_token"])).status_code == 401
    # Another login of the same user is another family, untouched.
    other = await login(strict_issuer)
    assert (await refresh(strict_issuer, other["refresh_token"])).status_code == 200


async def test_within_the_grace_period_the_previous_token_may_be_presented_again(
    issuer_client,
):
    # Default grace: 10 s. The response carrying `lost` never reached the client.
    first = await login(issuer_client)
    lost = await (await refresh(issuer_client, first["refresh_token"])).get_json()
    retried = await refresh(issuer_client, first["refresh_token"])
    assert retried.status_code == 200
    kept = await retried.get_json()
    assert (await refresh(issuer_client, kept["refresh_token"])).status_code == 200
    # The pair that was superseded during the grace counts as reuse if it ever shows up.
    assert (await refresh(issuer_client, lost["refresh_token"])).status_code == 401


async def test_after_the_grace_period_the_previous_token_is_reuse(issuer_environ, user):
    environ = {**issuer_environ, "AUTHSCALE_REFRESH_GRACE_PERIOD": "0.3"}
    async with client_of(issuer_app(environ)) as client:
        first = await login(client)
        second = await (await refresh(client, first["refresh_token"])).get_json()
        await asyncio.sleep(0.5)
        assert (await refresh(client, first["refresh_token"])).status_code == 401
        assert (await refresh(client, second["refresh_token"])).status_code == 401


async def test_concurrent_refreshes_of_one_token_cannot_both_rotate(strict_issuer):
    first = await login(strict_issuer)
    responses = await asyncio.gather(
        *(refresh(strict_issuer, first["refresh_token"]) for _ in range(5))
    )
    statuses = sorted(response.status_code for response in responses)
    # One wins; the others are reuse, which revokes the family, winner included.
    assert statuses == [200, 401, 401, 401, 401]
    winner = next(r for r in responses if r.status_code == 200)
    token = (await winner.get_json())["refresh_token"]
    assert (await refresh(strict_issuer, token)).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"refresh_token": "abcd." + "h" * 22 + "." + "x" * 43},
        {"refresh_token": "x" * 43},
        {"refresh_token": "é" * 66},
    ],
)
async def test_unknown_or_malformed_refresh_tokens_are_401(issuer_client, body):
    response = await issuer_client.post("/token/refresh", json=body)
    assert response.status_code == 401


@pytest.mark.parametrize("body", [{"refresh_token": 7}, ["refresh_token"], "text"])
async def test_refresh_bodies_of_the_wrong_shape_are_400(issuer_client, body):
    assert (await issuer_client.post("/token/refresh", json=body)).status_code == 400


async def test_refresh_without_any_token_is_401(issuer_client):
    assert (await issuer_client.post("/token/refresh")).status_code == 401


async def test_logout_with_the_refresh_token_revokes_its_family(issuer_client):
    body = await login(issuer_client)
    response = await issuer_client.post(
        "/token/logout", json={"refresh_token": body["refresh_token"]}
    )
    assert response.status_code == 200
    assert (await refresh(issuer_client, body["refresh_token"])).status_code == 401


async def test_logout_answers_the_same_for_an_unknown_refresh_token(issuer_client):
    response = await issuer_client.post("/token/logout", json={"refresh_token": "y" * 43})
    assert response.status_code == 200


async def test_logout_with_the_access_token_revokes_its_family(issuer_client):
    body = await login(issuer_client)
    other = await login(issuer_client)
    response = await issuer_client.post("/token/logout", headers=bearer(body["token"]))
    assert response.status_code == 200
    assert (await refresh(issuer_client, body["refresh_token"])).status_code == 401
    assert (await refresh(issuer_client, other["refresh_token"])).status_code == 200


async def test_logout_without_credentials_is_401_with_a_challenge(issuer_client):
    response = await issuer_client.post("/token/logout")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_logout_all_revokes_every_family_of_the_user(issuer_client):
    logins = [await login(issuer_client) for _ in range(3)]
    response = await issuer_client.post("/token/logout-all", headers=bearer(logins[0]["token"]))
    assert response.status_code == 200
    assert (await response.get_json())["families_revoked"] == 3
    for body in logins:
        assert (await refresh(issuer_client, body["refresh_token"])).status_code == 401


async def test_logout_all_needs_a_valid_access_token(issuer_client):
    for headers in ({}, bearer("a.b.c"), {"Authorization": "Basic eA=="}):
        response = await issuer_client.post("/token/logout-all", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_denylist_mode_refuses_a_logged_out_familys_access_tokens(
    issuer_client, token_environ, redis_url
):
    kept, dropped = await login(issuer_client), await login(issuer_client)
    stateless = token_app(token_environ)
    denying = token_app(
        {**token_environ, "AUTHSCALE_TOKEN_DENYLIST": "true", "AUTHSCALE_REDIS_URL": redis_url}
    )
    async with client_of(stateless) as plain, client_of(denying) as checked:
        assert (
            await checked.get("/token/dashboard", headers=bearer(dropped["token"]))
        ).status_code == 200
        await issuer_client.post("/token/logout", json={"refresh_token": dropped["refresh_token"]})
        refused = await checked.get("/token/dashboard", headers=bearer(dropped["token"]))
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert (
            await checked.get("/token/dashboard", headers=bearer(kept["token"]))
        ).status_code == 200
        # Without the denylist a replica is stateless: the token lives until it expires.
        assert (
            await plain.get("/token/dashboard", headers=bearer(dropped["token"]))
        ).status_code == 200
        ready = await checked.get("/readyz")
        assert (await ready.get_json())["dependencies"] == {"redis": "ok", "jwks": "ok"}


async def test_denylist_mode_covers_logout_all_and_reuse(
    issuer_environ, user, token_environ, redis_url
):
    environ = {**issuer_environ, "AUTHSCALE_REFRESH_GRACE_PERIOD": "0"}
    denying = token_app(
        {**token_environ, "AUTHSCALE_TOKEN_DENYLIST": "true", "AUTHSCALE_REDIS_URL": redis_url}
    )
    async with client_of(issuer_app(environ)) as issuer, client_of(denying) as checked:
        stolen = await login(issuer)
        await refresh(issuer, stolen["refresh_token"])
        await refresh(issuer, stolen["refresh_token"])  # reuse: family revoked
        assert (
            await checked.get("/token/dashboard", headers=bearer(stolen["token"]))
        ).status_code == 401
        everywhere = [await login(issuer) for _ in range(2)]
        await issuer.post("/token/logout-all", headers=bearer(everywhere[0]["token"]))
        for body in everywhere:
            assert (
                await checked.get("/token/dashboard", headers=bearer(body["token"]))
            ).status_code == 401


async def test_denylist_mode_fails_closed_without_redis(issuer_client, token_environ):
    body = await login(issuer_client)
    environ = {
        **token_environ,
        "AUTHSCALE_TOKEN_DENYLIST": "true",
        # Nothing listens on the discard port: Redis is unreachable.
        "AUTHSCALE_REDIS_URL": "redis://:a-real-password@127.0.0.1:9/0",
        "AUTHSCALE_REDIS_TIMEOUT": "0.2",
    }
    async with client_of(token_app(environ)) as client:
        response = await client.get("/token/dashboard", headers=bearer(body["token"]))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"


async def test_the_issuer_answers_503_when_redis_is_unreachable(issuer_environ):
    environ = {
        **issuer_environ,
        "AUTHSCALE_REDIS_URL": "redis://:a-real-password@127.0.0.1:9/0",
        "AUTHSCALE_REDIS_TIMEOUT": "0.2",
    }
    async with client_of(issuer_app(environ)) as client:
        response = await client.post(
            "/token/login", json={"username": USERNAME, "password": PASSWORD}
        )
        assert response.status_code == 503
        assert (
            await client.post(
                "/token/refresh", json={"refresh_token": "abcd." + "h" * 22 + "." + "z" * 43}
            )
        ).status_code == 503
        # The public keys need no Redis.
        assert (await client.get("/.well-known/jwks.json")).status_code == 200


def test_an_issuer_without_keys_stops_at_start(issuer_environ, tmp_path):
    with pytest.raises(ConfigError, match=r"AUTHSCALE_SIGNING_KEYS_DIR=.*holds no key"):
        issuer_app({**issuer_environ, "AUTHSCALE_SIGNING_KEYS_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"AUTHSCALE_SIGNING_KEYS_DIR=.*not a directory"):
        issuer_app({**issuer_environ, "AUTHSCALE_SIGNING_KEYS_DIR": str(tmp_path / "none")})
    missing = {k: v for k, v in issuer_environ.items() if k != "AUTHSCALE_SIGNING_KEYS_DIR"}
    with pytest.raises(ConfigError, match="AUTHSCALE_SIGNING_KEYS_DIR is missing"):
        issuer_app(missing)


# Cookie mode


async def cookie_login(client: Client) -> tuple[Any, str]:
    response = await client.post(
        "/token/login?mode=cookie", json={"username": USERNAME, "password": PASSWORD}
    )
    assert response.status_code == 200
    return response, (await response.get_json())["csrf_token"]


async def test_cookie_login_sets_two_httponly_cookies_and_no_token_in_the_body(issuer_client):
    response, csrf = await cookie_login(issuer_client)
    body = await response.get_json()
    assert set(body) == {"message", "expires_in", "csrf_token"}
    assert len(csrf) == 43
    cookies = cookies_set(response)
    access = [part.strip() for part in cookies[ACCESS_COOKIE].split(";")]
    assert {"HttpOnly", "Secure", "SameSite=Lax", "Path=/token", "Max-Age=900"} <= set(access)
    refresh_cookie = [part.strip() for part in cookies[REFRESH_COOKIE].split(";")]
    assert {"HttpOnly", "Secure", "SameSite=Strict", "Path=/token/refresh"} <= set(refresh_cookie)


async def test_cookies_are_not_secure_only_where_the_deployment_says_plain_http(
    issuer_environ, user
):
    environ = {**issuer_environ, "AUTHSCALE_COOKIE_SECURE": "false"}
    async with client_of(issuer_app(environ)) as client:
        response, _ = await cookie_login(client)
        assert all("Secure" not in value for value in cookies_set(response).values())


async def test_a_cookie_token_works_on_a_token_replica_for_reads(issuer_client, token_client):
    response, _ = await cookie_login(issuer_client)
    access = cookie_value(response, ACCESS_COOKIE)
    dashboard = await token_client.get(
        "/token/dashboard", headers={"Cookie": f"{ACCESS_COOKIE}={access}"}
    )
    assert dashboard.status_code == 200


async def test_cookie_refresh_needs_the_csrf_token(issuer_client):
    response, csrf = await cookie_login(issuer_client)
    cookie = {"Cookie": f"{REFRESH_COOKIE}={cookie_value(response, REFRESH_COOKIE)}"}
    issuer_client.cookie_jar.clear()  # send exactly the cookies each request names
    missing = await issuer_client.post("/token/refresh", headers=cookie)
    assert missing.status_code == 403
    wrong = await issuer_client.post("/token/refresh", headers={**cookie, "X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    # A refused CSRF token changed nothing: the right one still rotates.
    right = await issuer_client.post("/token/refresh", headers={**cookie, "X-CSRF-Token": csrf})
    assert right.status_code == 200
    assert (await right.get_json())["csrf_token"] == csrf
    assert {ACCESS_COOKIE, REFRESH_COOKIE} <= set(cookies_set(right))


async def test_cookie_logout_needs_the_csrf_token_and_clears_the_cookies(issuer_client):
    response, csrf = await cookie_login(issuer_client)
    refresh_cookie = {"Cookie": f"{REFRESH_COOKIE}={cookie_value(response, REFRESH_COOKIE)}"}
    access = {"Cookie": f"{ACCESS_COOKIE}={cookie_value(response, ACCESS_COOKIE)}"}
    issuer_client.cookie_jar.clear()
    assert (await issuer_client.post("/token/logout", headers=access)).status_code == 403
    bad = await issuer_client.post("/token/logout", headers={**access, "X-CSRF-Token": "no"})
    assert bad.status_code == 403
    done = await issuer_client.post("/token/logout", headers={**access, "X-CSRF-Token": csrf})
    assert done.status_code == 200
    cleared = cookies_set(done)
    assert "Max-Age=0" in cleared[ACCESS_COOKIE] and "Path=/token;" in cleared[ACCESS_COOKIE] + ";"
    assert "Path=/token/refresh" in cleared[REFRESH_COOKIE]
    again = await issuer_client.post(
        "/token/refresh", headers={**refresh_cookie, "X-CSRF-Token": csrf}
    )
    assert again.status_code == 401


async def test_cookie_logout_all_needs_the_csrf_token(issuer_client):
    response, csrf = await cookie_login(issuer_client)
    access = {"Cookie": f"{ACCESS_COOKIE}={cookie_value(response, ACCESS_COOKIE)}"}
    issuer_client.cookie_jar.clear()
    assert (await issuer_client.post("/token/logout-all", headers=access)).status_code == 403
    done = await issuer_client.post("/token/logout-all", headers={**access, "X-CSRF-Token": csrf})
    assert done.status_code == 200


async def test_a_bearer_token_needs_no_csrf_token(issuer_client):
    body = await login(issuer_client)
    response = await issuer_client.post("/token/logout-all", headers=bearer(body["token"]))
    assert response.status_code == 200


async def test_a_body_mode_token_in_the_cookie_cannot_pass_csrf(issuer_client):
    # Body-mode tokens carry no CSRF value, so a page can never use them as cookies to change state.
    body = await login(issuer_client)
    issuer_client.cookie_jar.clear()
    response = await issuer_client.post(
        "/token/logout-all",
        headers={"Cookie": f"{ACCESS_COOKIE}={body['token']}", "X-CSRF-Token": ""},
    )
    assert response.status_code == 403
