"""Prometheus metrics shared by every role, served at ``/metrics`` (never routed by the gateway)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from quart import Quart, Response

REQUESTS = Counter(
    "authscale_requests_total", "HTTP requests answered", ["role", "route", "method", "status"]
)
AUTH_FAILURES = Counter(
    "authscale_auth_failures_total",
    "Requests refused authentication, by reason",
    ["role", "reason"],
)
REDIS_LATENCY = Histogram(
    "authscale_redis_seconds",
    "Redis round trips, by operation",
    ["operation"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REDIS_BATCH = Histogram(
    "authscale_redis_batch_commands",
    "Commands per shared pipeline on the per-request hot path (see RedisStore.command)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
REDIS_ERRORS = Counter(
    "authscale_redis_errors_total", "Redis round trips that failed or timed out", ["operation"]
)
VERIFIED_CACHE = Counter(
    "authscale_verified_token_cache_total", "Verified-token cache lookups", ["result"]
)

JWKS_FETCHES = Counter(
    "authscale_jwks_fetches_total",
    "Public key set fetches by token replicas, by trigger (start, timer, unknown_kid) and result",
    ["trigger", "result"],
)
REFRESH_OUTCOMES = Counter(
    "authscale_refresh_total", "Refresh token presentations, by outcome", ["outcome"]
)


def register_metrics_route(app: Quart) -> None:
    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)
