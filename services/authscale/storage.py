"""The Redis connection every role shares, with bounded waits and errors mapped to 503.

redis-py's own defaults wait up to 20 s for a pooled connection, 5 s per socket operation and
retry three times with backoff: a replica would hang for a minute while Redis is down. Here every
wait is bounded by one setting, the pool blocks (up to that bound) instead of failing, and a
single immediate retry covers the stale pooled connection left behind by a Redis restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from authscale.errors import DependencyUnavailable
from authscale.metrics import REDIS_ERRORS, REDIS_LATENCY
from authscale.settings import RedisSettings

#: Errors that mean "Redis cannot serve right now", as opposed to a bug in our commands.
UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    redis_errors.BusyLoadingError,
    redis_errors.AuthenticationError,
    TimeoutError,
    OSError,
)


class RedisStore:
    """The role's Redis client: opened before serving, closed after, every call bounded in time."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._client: Redis | None = None

    @property
    def client(self) -> Redis:
        if self._client is None:
            raise RuntimeError("Redis is used before the app started serving")
        return self._client

    def open(self) -> None:
        """A client over a bounded, blocking pool. Nothing is sent until the first command."""
        pool = BlockingConnectionPool.from_url(
            self.settings.url,
            max_connections=self.settings.pool_size,
            timeout=self.settings.timeout,
            socket_timeout=self.settings.timeout,
            socket_connect_timeout=self.settings.timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
            client_name="authscale",
        )
        self._client = Redis(connection_pool=pool)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            await self._client.connection_pool.disconnect()
            self._client = None

    @asynccontextmanager
    async def reaching(self, operation: str) -> AsyncIterator[Redis]:
        """Bound one logical Redis operation in time; unavailability becomes a 503."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.timeout):
                yield self.client
        except UNAVAILABLE as exc:
            REDIS_ERRORS.labels(operation).inc()
            raise DependencyUnavailable("Service temporarily unavailable, retry shortly") from exc
        REDIS_LATENCY.labels(operation).observe(time.perf_counter() - started)

    async def ping(self) -> None:
        async with self.reaching("ping") as redis:
            await redis.ping()
