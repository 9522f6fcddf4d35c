"""The session variant's HTTP contract, with a real Redis behind the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from authscale.core.slots import user_tag
from authscale.session.app import create_app
from tests.conftest import (
    CLUSTER,
    PASSWORD,
    SINGLE,
    add_user,
    create_user,
    make_settings,
    start_redis,
)

#: The contract holds on one Redis and on a Redis Cluster (tests/conftest.py).
REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[Quart]:
    application = create_app(make_settings(redis_url))
    async with application.test_app():
        yield application


@pytest.fixture
def client(app: Quart) -> Client:
    return app.test_client()


@pytest.fixture
def username(redis_url: str) -> str:
    return add_user(redis_url)


async def login(client: Client, username: str, password: str = PASSWORD) -> str:
    response = await client.post(
        "/session/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, await response.get_data()
    body = await response.get_json()
    assert body["message"] == "Login successful"
    return str(body["csrf_token"])


async def test_login_sets_a_hardened_cookie(client: Client, username: str) -> None:
    response = await client.post(
        "/session/login", json={"username": username, "password": PASSWORD}
    )
    cookies = response.headers.get_all("Set-Cookie")
    cookie = next(value for value in cookies if value.startswith("__Host-authscale_session="))
    for attribute in ("HttpOnly", "Path=/", "SameSite=Lax", "Secure"):
        assert attribute in cookie
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Replica"] == "test-replica"


async def test_dashboard_needs_a_session(client: Client, username: str) -> None:
    response = await client.get("/session/dashboard")
    assert response.status_code == 401
    assert await response.get_json() == {"message": "Unauthorized"}
    await login(client, username)
    response = await client.get("/session/dashboard")
    assert await response.get_json() == {"message": f"Welcome, {username}"}


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: Client, username: str
) -> None:
    wrong = await client.post("/session/login", json={"username": username, "password": "nope"})
    unknown = await client.post("/session/login", json={"username": "ghost", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert await wrong.get_json() == await unknown.get_json() == {"message": "Invalid credentials"}


async def test_me_returns_the_csrf_token_after_a_reload(client: Client, username: str) -> None:
    csrf = await login(client, username)
    response = await client.get("/session/me")
    assert await response.get_json() == {"username": username, "csrf_token": csrf}


async def test_a_cookie_planted_before_login_never_becomes_valid(
    client: Client, username: str
) -> None:
    planted = f"{user_tag(username)}.{'A' * 43}"  # well-formed, on the user's own shard
    client.set_cookie("localhost", "__Host-authscale_session", planted)
    await login(client, username)
    assert session_cookie(client) != planted
    attacker = create_test_client_with_cookie(client, planted)
    assert (await attacker.get("/session/dashboard")).status_code == 401


async def test_another_tag_on_a_real_session_id_finds_nothing(
    client: Client, username: str
) -> None:
    """The tag routes a lookup to a Redis Cluster slot; the key hashes the whole id, so a session id
    with its tag changed (to any other user's, or any tag at all) is just an unknown id."""
    await login(client, username)
    tag, _, random = session_cookie(client).partition(".")
    assert tag == user_tag(username)
    for other in ("0000", "ffff", user_tag("someone-else")):
        attacker = create_test_client_with_cookie(client, f"{other}.{random}")
        assert (await attacker.get("/session/dashboard")).status_code == 401
    assert (await client.get("/session/dashboard")).status_code == 200


def session_cookie(client: Client) -> str:
    assert client.cookie_jar is not None
    return next(c.value for c in client.cookie_jar if c.name == "__Host-authscale_session")


def create_test_client_with_cookie(client: Client, value: str) -> Client:
    other = client.app.test_client()
    other.set_cookie("localhost", "__Host-authscale_session", value)
    return other


async def test_login_again_ends_the_previous_session(client: Client, username: str) -> None:
    await login(client, username)
    first = session_cookie(client)
    await login(client, username)
    replay = create_test_client_with_cookie(client, first)
    assert (await replay.get("/session/dashboard")).status_code == 401


@pytest.mark.parametrize("header", [None, "", "wrong-token"])
async def test_logout_without_the_csrf_token_is_forbidden(
    client: Client, username: str, header: str | None
) -> None:
    await login(client, username)
    headers = {} if header is None else {"X-CSRF-Token": header}
    for path in ("/session/logout", "/session/logout-all"):
        response = await client.post(path, headers=headers)
        assert response.status_code == 403
        assert await response.get_json() == {"message": "Missing or invalid CSRF token"}
    assert (await client.get("/session/dashboard")).status_code == 200


async def test_logout_ends_the_session_and_clears_the_cookie(client: Client, username: str) -> None:
    csrf = await login(client, username)
    stolen = session_cookie(client)
    response = await client.post("/session/logout", headers={"X-CSRF-Token": csrf})
    assert await response.get_json() == {"message": "Logged out successfully"}
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    replay = create_test_client_with_cookie(client, stolen)
    assert (await replay.get("/session/dashboard")).status_code == 401
    assert (await client.post("/session/logout", headers={"X-CSRF-Token": csrf})).status_code == 401


async def test_logout_all_ends_every_session_of_the_user(app: Quart, username: str) -> None:
    laptop, phone = app.test_client(), app.test_client()
    csrf = await login(laptop, username)
    await login(phone, username)
    response = await laptop.post("/session/logout-all", headers={"X-CSRF-Token": csrf})
    assert (await response.get_json())["sessions_ended"] == 2
    assert (await phone.get("/session/dashboard")).status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'"a string"', "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"username": ["admin"], "password": "x"}', "application/json"),
        (b'{"username": "admin", "password": null}', "application/json"),
        (b"username=admin&password=x", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00", "application/json"),
    ],
)
async def test_malformed_logins_are_4xx_never_500(
    client: Client, body: bytes, content_type: str
) -> None:
    response = await client.post(
        "/session/login", data=body, headers={"Content-Type": content_type}
    )
    assert 400 <= response.status_code < 500
    assert "message" in await response.get_json()


async def test_oversized_body_is_refused(client: Client) -> None:
    body = {"username": "admin", "password": "x" * 40_000}
    response = await client.post("/session/login", json=body)
    assert response.status_code == 413


async def test_over_long_password_is_refused_before_hashing(client: Client, username: str) -> None:
    response = await client.post(
        "/session/login", json={"username": username, "password": "x" * 257}
    )
    assert response.status_code == 400


async def test_unknown_routes_and_methods_answer_json(client: Client) -> None:
    assert (await client.get("/session/nope")).status_code == 404
    response = await client.delete("/session/dashboard")
    assert response.status_code == 405
    assert await response.get_json() == {"message": "Method Not Allowed"}


async def test_redis_down_answers_503_in_bounded_time_then_recovers(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    username = await create_user(server.url)
    app = create_app(make_settings(server.url, AUTHSCALE_REDIS_TIMEOUT="0.5"))
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/readyz")).status_code == 200
        await login(client, username)
        server.process.terminate()
        server.process.wait(10)
        started = time.monotonic()
        response = await client.get("/session/dashboard")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "message" in await response.get_json()
        login_response = await client.post(
            "/session/login", json={"username": username, "password": PASSWORD}
        )
        assert login_response.status_code == 503
        # Already served once: a blip keeps the replica in rotation (see service.py).
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert (await ready.get_json())["dependencies"] == {"redis": "unreachable"}
        assert time.monotonic() - started < 10  # bounded: never redis-py's minute of retries

        restarted = start_redis(tmp_path / "redis", url=server.url)
        try:
            # The same session, from the append-only file, with no restart of the app.
            response = await client.get("/session/dashboard")
            assert response.status_code == 200
        finally:
            restarted.process.terminate()
            restarted.process.wait(10)


async def test_readyz_is_503_until_redis_first_answers(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    server.process.terminate()
    server.process.wait(10)
    app = create_app(make_settings(server.url, AUTHSCALE_REDIS_TIMEOUT="0.2"))
    async with app.test_app():
        client = app.test_client()
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert (await response.get_json())["status"] == "starting"
        assert (await client.get("/healthz")).status_code == 200


async def test_idle_and_absolute_timeouts_end_sessions(redis_url: str) -> None:
    username = await create_user(redis_url)
    app = create_app(
        make_settings(
            redis_url,
            AUTHSCALE_SESSION_IDLE_TIMEOUT="2",
            AUTHSCALE_SESSION_ABSOLUTE_TIMEOUT="4",
        )
    )
    loop = asyncio.get_running_loop()
    async with app.test_app():
        idle, busy = app.test_client(), app.test_client()
        await login(idle, username)
        await login(busy, username)
        # The busy client asks every 0.1 s, far inside the idle timeout, until the idle one has
        # been left alone for longer than it (the idle one is not asked: asking slides it).
        idle_since = loop.time()
        while loop.time() < idle_since + 2.5:
            assert (await busy.get("/session/dashboard")).status_code == 200
            await asyncio.sleep(0.1)
        assert (await idle.get("/session/dashboard")).status_code == 401
        # Kept busy, the session still ends at the absolute timeout (30 s: does not hang).
        status = 200
        while status == 200 and loop.time() < idle_since + 30:
            await asyncio.sleep(0.1)
            status = (await busy.get("/session/dashboard")).status_code
        assert status == 401
