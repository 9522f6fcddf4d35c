"""What every role shares: the Quart app, Redis, health, readiness, CORS, errors and metrics.

A role module (``authscale.session.app``, ``authscale.tokens.app``, ``authscale.tokens.issuer``)
calls :func:`create_service` and registers its own routes; Hypercorn runs the module's
``create_app()``, e.g. ``"authscale.session.app:create_app()"``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from quart import Quart, Response, jsonify, request
from quart_cors import cors

from authscale.core.errors import ConfigError, DependencyUnavailable, register_error_handlers
from authscale.core.forwarding import TrustedProxyMiddleware
from authscale.core.logs import bind_request_id, configure_logging
from authscale.core.metrics import register_metrics
from authscale.core.settings import Settings
from authscale.core.storage import RedisStore

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]


@dataclass
class Service:
    """The running role's shared resources, opened before serving and closed after."""

    role: str
    settings: Settings
    app: Quart
    #: ``None`` for a role created with ``uses_redis=False``.
    store: RedisStore | None
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    #: Set once every readiness check has passed at least once (see ``/readyz``).
    started: bool = False

    @property
    def redis(self) -> RedisStore:
        if self.store is None:
            raise RuntimeError(f"the {self.role} role was created without Redis")
        return self.store


def create_service(role: str, settings: Settings, *, uses_redis: bool = True) -> Service:
    configure_logging(role, settings.replica_id, settings.log_level)
    app = Quart(f"authscale.{role}")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = 10
    app.config["JSON_SORT_KEYS"] = False
    store: RedisStore | None = None
    if uses_redis:
        if settings.redis is None:
            raise ConfigError(f"the {role} role needs Redis: set AUTHSCALE_REDIS_URL.")
        store = RedisStore(settings.redis)
    service = Service(role=role, settings=settings, app=app, store=store)

    if uses_redis:
        _open_redis_while_serving(service)
    _register_probes(service)
    _register_response_headers(service)
    register_error_handlers(app)
    register_metrics(app, role)
    if settings.cors_origins:
        cors(
            app,
            allow_origin=list(settings.cors_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", "X-CSRF-Token"],
            expose_headers=["X-Replica", "X-Request-ID"],
            max_age=600,
        )
    if settings.trusted_hops:
        # The gateway is the one trusted hop: client addresses come from its X-Forwarded-For.
        app.asgi_app = TrustedProxyMiddleware(  # type: ignore[method-assign]
            app.asgi_app, trusted_hops=settings.trusted_hops
        )
    return service


def _open_redis_while_serving(service: Service) -> None:
    @service.app.before_serving
    async def open_redis() -> None:
        service.redis.open()

    @service.app.after_serving
    async def close_redis() -> None:
        await service.redis.close()

    service.readiness_checks["redis"] = service.redis.ping


#: The HTTP contract of both variants (OpenAPI 3.1), served by every role and routed by the
#: gateway; tests check it against the registered routes and fuzz the live stack with it.
OPENAPI = Path(__file__).with_name("openapi.json")


def _register_probes(service: Service) -> None:
    app = service.app
    contract = json.loads(OPENAPI.read_text())

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return jsonify(contract)

    @app.get("/healthz")
    async def healthz() -> Response:
        return jsonify({"status": "alive", "role": service.role})

    @app.get("/readyz")
    async def readyz() -> tuple[Response, int]:
        """Ready once every dependency has answered since start; after that, always 200.

        Readiness gates the first traffic (the local stack, compose and Kubernetes wait on it).
        Once a replica has served, a blip of a shared dependency must not take every replica
        out of rotation at once: each replica then answers its own JSON 503 per request, which
        tells the client more than the gateway's 502 for an empty upstream. The body still says
        what is unreachable right now.
        """
        failed: dict[str, str] = {}
        for name, check in service.readiness_checks.items():
            try:
                await check()
            except DependencyUnavailable:
                failed[name] = "unreachable"
        if not failed:
            service.started = True
        status = 200 if service.started else 503
        body = {
            "status": "ready" if status == 200 else "starting",
            "role": service.role,
            "dependencies": {name: failed.get(name, "ok") for name in service.readiness_checks},
        }
        return jsonify(body), status


def _register_response_headers(service: Service) -> None:
    app = service.app
    replica = service.settings.replica_id

    @app.before_request
    async def remember_request_id() -> None:
        # The gateway's id, so a replica's log line can be matched to the gateway's access log.
        bind_request_id(request.headers.get("X-Request-ID"))

    @app.after_request
    async def stamp(response: Response) -> Response:
        response.headers["X-Replica"] = replica
        # Every answer here is per-user or about credentials; none may be cached anywhere.
        response.headers["Cache-Control"] = "no-store"
        return response
