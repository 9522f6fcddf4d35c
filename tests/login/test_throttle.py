"""Per-account throttling of failed logins: an attacker slows down, the real user gets in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from authscale.core.settings import RedisSettings, ThrottleSettings
from authscale.core.storage import RedisStore
from authscale.login.epoch import StaleLogin, devices_key, user_key
from authscale.login.throttle import LoginThrottle
from authscale.session.app import create_app
from tests.conftest import (
    CLUSTER,
    PASSWORD,
    SINGLE,
    add_user,
    admin_client,
    create_user,
    make_settings,
)

#: The contract holds on one Redis and on a Redis Cluster (tests/conftest.py).
REDIS_DEPLOYMENTS = (SINGLE, CLUSTER)


BUDGET = 3


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[Quart]:
    application = create_app(
        # A queue for all 40 parallel guesses below: shedding is tested in test_capacity.py.
        make_settings(
            redis_url,
            AUTHSCALE_LOGIN_FAILURES_PER_WINDOW=str(BUDGET),
            AUTHSCALE_HASHING_QUEUE="100",
        )
    )
    async with application.test_app():
        yield application


@pytest.fixture
def username(redis_url: str) -> str:
    return add_user(redis_url)


async def attempt(client: Client, username: str, password: str) -> int:
    response = await client.post(
        "/session/login", json={"username": username, "password": password}
    )
    if response.status_code == 429:
        assert int(response.headers["Retry-After"]) > 0
        assert "Too many failed logins" in (await response.get_json())["message"]
    return response.status_code


def device_cookie(client: Client) -> str:
    assert client.cookie_jar is not None
    return next(c.value for c in client.cookie_jar if c.name == "__Host-authscale_device")


async def test_stuffing_one_account_is_throttled_from_any_client(app: Quart, username: str) -> None:
    statuses = [await attempt(app.test_client(), username, f"guess-{n}") for n in range(6)]
    assert statuses == [401] * BUDGET + [429] * 3
    # Even the right password from a client the account has never seen waits now.
    assert await attempt(app.test_client(), username, PASSWORD) == 429


async def test_the_real_user_on_a_known_device_is_never_locked_out(
    app: Quart, username: str
) -> None:
    owner = app.test_client()
    assert await attempt(owner, username, PASSWORD) == 200
    for n in range(BUDGET + 2):
        await attempt(app.test_client(), username, f"guess-{n}")
    assert await attempt(owner, username, PASSWORD) == 200


async def test_a_known_device_has_a_budget_of_its_own(app: Quart, username: str) -> None:
    owner = app.test_client()
    assert await attempt(owner, username, PASSWORD) == 200
    statuses = [await attempt(owner, username, "typo") for _ in range(BUDGET + 1)]
    assert statuses == [401] * BUDGET + [429]
    assert await attempt(app.test_client(), username, PASSWORD) == 200


async def test_unknown_accounts_are_throttled_alike(app: Quart) -> None:
    statuses = [await attempt(app.test_client(), "ghost", f"guess-{n}") for n in range(5)]
    assert statuses == [401] * BUDGET + [429] * 2


@pytest.mark.parametrize("forged", ["A" * 43, "not-a-device", ""])
async def test_forged_device_cookies_earn_no_budget(app: Quart, username: str, forged: str) -> None:
    for n in range(BUDGET):
        await attempt(app.test_client(), username, f"guess-{n}")
    attacker = app.test_client()
    attacker.set_cookie("localhost", "__Host-authscale_device", forged)
    assert await attempt(attacker, username, PASSWORD) == 429


async def test_a_device_of_another_account_earns_no_budget(
    app: Quart, username: str, redis_url: str
) -> None:
    attacker = app.test_client()
    own_account = await create_user(redis_url)
    assert await attempt(attacker, own_account, PASSWORD) == 200
    assert device_cookie(attacker)
    for n in range(BUDGET):
        await attempt(app.test_client(), username, f"guess-{n}")
    assert await attempt(attacker, username, PASSWORD) == 429


async def test_parallel_guesses_are_charged_before_any_is_hashed(app: Quart, username: str) -> None:
    guesses = [attempt(app.test_client(), username, f"guess-{n}") for n in range(40)]
    statuses = await asyncio.gather(*guesses)
    assert statuses.count(401) == BUDGET
    assert statuses.count(429) == 40 - BUDGET


async def test_parallel_guesses_from_a_known_device_are_charged_alike(
    app: Quart, username: str
) -> None:
    owner = app.test_client()
    assert await attempt(owner, username, PASSWORD) == 200
    device = device_cookie(owner)
    clients = [app.test_client() for _ in range(40)]
    for client in clients:
        client.set_cookie("localhost", "__Host-authscale_device", device)
    statuses = await asyncio.gather(*(attempt(c, username, "typo") for c in clients))
    assert statuses.count(401) == BUDGET
    assert statuses.count(429) == 40 - BUDGET


async def test_a_right_password_refunds_its_charge(app: Quart, username: str) -> None:
    for n in range(BUDGET - 1):
        assert await attempt(app.test_client(), username, f"guess-{n}") == 401
    for _ in range(3):  # new clients each time: no device budget, the account's shared one
        assert await attempt(app.test_client(), username, PASSWORD) == 200
    assert await attempt(app.test_client(), username, "last-guess") == 401
    assert await attempt(app.test_client(), username, "one-too-many") == 429


async def test_known_devices_are_capped_per_account(redis_url: str, username: str) -> None:
    application = create_app(make_settings(redis_url, AUTHSCALE_DEVICES_PER_USER="3"))
    async with application.test_app():
        clients = [application.test_client() for _ in range(5)]
        for client in clients:
            assert await attempt(client, username, PASSWORD) == 200
    devices = admin_client(redis_url).zcard(devices_key(username))
    assert devices == 3


async def test_a_login_that_raced_a_password_change_records_no_device(
    redis_url: str, username: str
) -> None:
    store = RedisStore(RedisSettings(url=redis_url))
    store.open()
    throttle = LoginThrottle(store, ThrottleSettings())
    attempt = await throttle.charge(username, None)
    admin_client(redis_url).hincrby(user_key(username), "epoch", 1)
    with pytest.raises(StaleLogin):
        await throttle.succeeded(attempt, epoch=0)
    assert admin_client(redis_url).exists(devices_key(username)) == 0
    await store.close()
