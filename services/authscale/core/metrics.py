"""Prometheus metrics shared by every role, served at ``/metrics`` (never routed by the gateway)."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from quart import Quart, Response, g, request

#: The ``route`` label of a request no URL rule matched: raw paths would let any client create
#: a new time series per path it invents.
UNMATCHED_ROUTE = "unmatched"

REQUESTS = Counter(
    "authscale_requests_total", "HTTP requests answered", ["role", "route", "method", "status"]
)
REQUEST_DURATION = Histogram(
    "authscale_request_duration_seconds",
    "Time from the request reaching the app to its response, by role, route and status",
    ["role", "route", "method", "status"],
    # A token check answers in a fraction of a millisecond, a session read in about one, a login
    # (argon2id) in tens to hundreds, and a saturated replica queues for seconds: the buckets
    # resolve each of these, so p50 and p99 of every route land between two close bounds.
    buckets=(
        0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ),
)  # fmt: skip
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
#: What an autoscaler can scale session and issuer replicas on before a login flood shows as CPU
#: (deploy/k8s/base/autoscaling.yaml): logins hashing or queued for a hashing thread, and threads.
PASSWORD_HASHES_IN_FLIGHT = Gauge(
    "authscale_password_hashes_in_flight",
    "Logins hashing a password or queued for a hashing thread",
)
PASSWORD_HASHING_THREADS = Gauge(
    "authscale_password_hashing_threads", "Threads that hash passwords (one per usable core)"
)
REFRESH_OUTCOMES = Counter(
    "authscale_refresh_total", "Refresh token presentations, by outcome", ["outcome"]
)


def register_metrics(app: Quart, role: str) -> None:
    """Serve ``/metrics`` and count and time every request the app answers."""

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    @app.before_request
    async def start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    async def record(response: Response) -> Response:
        # The URL rule (``/session/dashboard``), never the raw path: bounded label values.
        rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        labels = (role, rule, request.method, str(response.status_code))
        REQUESTS.labels(*labels).inc()
        started: float | None = g.get("request_started")
        # Absent only when an earlier before_request hook failed before this one ran; such
        # an answer is counted but has no duration to record.
        if started is not None:
            REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)
        return response
