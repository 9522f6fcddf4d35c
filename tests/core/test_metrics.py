"""The request-duration histogram, scraped from the ``/metrics`` of real apps on a real Redis.

prometheus-client's registry is one per process and shared by every app a test creates, so each
test compares a scrape after its requests with one before them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from itertools import pairwise

import pytest
from prometheus_client.parser import text_string_to_metric_families
from quart.typing import TestClientProtocol as Client

from authscale.core.metrics import UNMATCHED_ROUTE
from authscale.session.app import create_app
from tests.conftest import PASSWORD, create_user, make_settings
from tests.tokens.fixtures import login

HISTOGRAM = "authscale_request_duration_seconds"

Series = dict[tuple[tuple[str, str], ...], float]


async def scrape(client: Client) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return await response.get_data(as_text=True)


def samples(text: str, name: str) -> Series:
    """Every sample called ``name`` in a scrape, keyed by its sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def count(series: Series, **labels: str) -> float:
    """The number of observations of the one histogram series with these labels (0 if none)."""
    return series.get(tuple(sorted(labels.items())), 0.0)


def increase(before: str, after: str, **labels: str) -> float:
    name = f"{HISTOGRAM}_count"
    return count(samples(after, name), **labels) - count(samples(before, name), **labels)


@pytest.fixture
async def session_client(redis_url: str) -> AsyncIterator[Client]:
    app = create_app(make_settings(redis_url))
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def test_session_requests_are_timed_by_route_and_status(
    session_client: Client, redis_url: str
) -> None:
    username = await create_user(redis_url)
    before = await scrape(session_client)
    login = await session_client.post(
        "/session/login", json={"username": username, "password": PASSWORD}
    )
    assert login.status_code == 200
    assert (await session_client.get("/session/dashboard")).status_code == 200
    assert (await session_client.post("/session/logout")).status_code == 403  # no CSRF token
    after = await scrape(session_client)

    route = {"role": "session", "method": "POST", "route": "/session/login"}
    assert increase(before, after, **route, status="200") == 1
    dashboard = {"role": "session", "method": "GET", "route": "/session/dashboard"}
    assert increase(before, after, **dashboard, status="200") == 1
    logout = {"role": "session", "method": "POST", "route": "/session/logout"}
    assert increase(before, after, **logout, status="403") == 1


async def test_unknown_paths_share_one_label(session_client: Client) -> None:
    paths = [f"/no-such-route/{uuid.uuid4().hex}" for _ in range(3)]
    before = await scrape(session_client)
    for path in paths:
        assert (await session_client.get(path)).status_code == 404
    after = await scrape(session_client)

    unmatched = {"role": "session", "method": "GET", "route": UNMATCHED_ROUTE, "status": "404"}
    assert increase(before, after, **unmatched) == 3
    for path in paths:
        assert path not in after


async def test_buckets_resolve_sub_millisecond_to_seconds(session_client: Client) -> None:
    await session_client.get("/healthz")
    text = await scrape(session_client)
    bounds = {
        float(dict(labels)["le"])
        for labels in samples(text, f"{HISTOGRAM}_bucket")
        if dict(labels)["route"] == "/healthz"
    }
    assert min(bounds) < 0.001
    assert max(bound for bound in bounds if bound != float("inf")) >= 5
    # Each bound at most 2.5 times the one below it, so a quantile is never off by more.
    finite = sorted(bound for bound in bounds if bound != float("inf"))
    assert all(high / low <= 2.5 for low, high in pairwise(finite))


async def test_token_replicas_time_refusals_too(token_client: Client) -> None:
    before = await scrape(token_client)
    assert (await token_client.get("/token/dashboard")).status_code == 401
    after = await scrape(token_client)

    route = {"role": "token", "method": "GET", "route": "/token/dashboard", "status": "401"}
    assert increase(before, after, **route) == 1


async def test_the_issuer_times_its_requests(issuer_client: Client, user: tuple[str, str]) -> None:
    before = await scrape(issuer_client)
    await login(issuer_client)
    after = await scrape(issuer_client)

    route: Mapping[str, str] = {"role": "issuer", "method": "POST", "route": "/token/login"}
    assert increase(before, after, **route, status="200") == 1
    # The sum grows by a positive duration: the clock ran between before and after the handler.
    name = f"{HISTOGRAM}_sum"
    grown = count(samples(after, name), **route, status="200") - count(
        samples(before, name), **route, status="200"
    )
    assert grown > 0
