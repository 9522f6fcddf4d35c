"""The OpenAPI 3.1 description matches the routes the apps register, and the gateway serves it."""

from __future__ import annotations

import json

import httpx
from quart import Quart

from authscale.core.service import OPENAPI
from authscale.session.app import create_app as session_app
from tests.conftest import make_settings
from tests.tokens.fixtures import issuer_app, token_app

#: Replica routes for operators and probes: the gateway never routes them (it answers 404).
OPERATOR_ROUTES = {"/readyz", "/metrics"}
#: Answered by nginx itself, never by a replica.
GATEWAY_ROUTES = {("get", "/healthz")}


def registered(app: Quart) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in OPERATOR_ROUTES or rule.endpoint == "static":
            continue
        for method in rule.methods or ():
            if method not in {"HEAD", "OPTIONS"}:
                routes.add((method.lower(), rule.rule))
    return routes


def described() -> set[tuple[str, str]]:
    contract = json.loads(OPENAPI.read_text())
    return {(method, path) for path, item in contract["paths"].items() for method in item}


def test_the_description_is_openapi_3_1() -> None:
    contract = json.loads(OPENAPI.read_text())
    assert contract["openapi"].startswith("3.1.")
    assert {"sessionCookie", "bearer"} <= set(contract["components"]["securitySchemes"])


def test_every_registered_route_is_described_and_every_described_route_exists(
    redis_url: str, issuer_environ: dict[str, str], token_environ: dict[str, str]
) -> None:
    apps = [
        session_app(make_settings(redis_url)),
        issuer_app(issuer_environ),
        token_app(token_environ),
    ]
    routes = set().union(*(registered(app) for app in apps))
    assert routes - described() == set(), "registered but not described"
    assert described() - routes - GATEWAY_ROUTES == set(), "described but not registered"


def test_the_gateway_serves_the_description(gateway: httpx.Client) -> None:
    response = gateway.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(OPENAPI.read_text())
