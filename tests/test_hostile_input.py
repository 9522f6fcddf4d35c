"""No input reaches a 500: hostile bodies and tokens through the real gateway, on every route.

Each case is one the attacker's review of issue 10 found answering 500, or one of its class.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from authscale.lab.stack.local import LocalStack
from tests.conftest import add_user

JSON_ROUTES = [
    "/session/login",
    "/token/login",
    "/token/login?mode=cookie",
    "/token/refresh",
    "/token/logout",
]
TOKEN_ROUTES = [
    ("GET", "/token/dashboard"),
    ("GET", "/token/me"),
    ("POST", "/token/logout"),
    ("POST", "/token/logout-all"),
]

HOSTILE_BODIES = {
    "1,000 [": b"[" * 1000,
    "100,000 [": b"[" * 100_000,
    "1,000 nested objects": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "lone surrogate password": b'{"username": "alice", "password": "\\ud800"}',
    "lone surrogate username": b'{"username": "\\udfff", "password": "x"}',
    "lone surrogate key": b'{"\\ud800": 1}',
    "lone surrogate refresh token": b'{"refresh_token": "\\ud800"}',
    "refresh token a list": b'{"refresh_token": ["x"]}',
    "refresh token an object": b'{"refresh_token": {"a": 1}}',
    "not UTF-8": b'{"username": "\xff\xfe"}',
    "a bare number": b"1e999999",
    "NaN": b"NaN",
    "duplicate keys": b'{"username": "a", "username": ["b"], "password": "x"}',
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assert_refused_in_json(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["message"], str)


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_hostile_bodies_get_a_json_4xx(gateway: httpx.Client, route: str, case: str) -> None:
    response = gateway.post(
        route, content=HOSTILE_BODIES[case], headers={"Content-Type": "application/json"}
    )
    assert_refused_in_json(response)


NON_STRINGS = {"list": ["at+jwt"], "object": {"a": 1}, "number": 7, "null": None, "bool": True}


@pytest.mark.parametrize(("method", "route"), TOKEN_ROUTES)
@pytest.mark.parametrize("member", ["typ", "alg", "kid", "crit"])
@pytest.mark.parametrize("kind", sorted(NON_STRINGS))
def test_non_string_jwt_header_values_get_a_401(
    gateway: httpx.Client, method: str, route: str, member: str, kind: str
) -> None:
    kid = gateway.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
    header = {"alg": "RS256", "typ": "at+jwt", "kid": kid, member: NON_STRINGS[kind]}
    token = f"{b64(json.dumps(header).encode())}.{b64(b'{}')}.{b64(b'signature')}"
    response = gateway.request(method, route, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_lone_surrogate_password_costs_no_hash_and_leaves_the_budget(
    gateway: httpx.Client, stack: LocalStack
) -> None:
    """Refused as a malformed body before the throttle: no hash ran, so no guess was made."""
    username = add_user(stack.redis_url)
    body = b'{"username": "%s", "password": "\\ud800"}' % username.encode()
    for _ in range(30):  # three times the default budget
        response = gateway.post(
            "/session/login", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
    right = gateway.post(
        "/session/login", json={"username": username, "password": "correct horse battery staple"}
    )
    assert right.status_code == 200
