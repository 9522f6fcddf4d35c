"""The Redis connection every role shares, with bounded waits and errors mapped to 503.

redis-py's own defaults wait up to 20 s for a pooled connection, 5 s per socket operation and
retry three times with backoff: a replica would hang for a minute while Redis is down. Here every
wait is bounded by one setting, the pool blocks (up to that bound) instead of failing, and a
single immediate retry covers the stale pooled connection left behind by a Redis restart.

The same store runs on one Redis or on a Redis Cluster (a ``redis+cluster://`` URL, see
:mod:`authscale.core.redis_url`). redis-py's cluster client keeps a pool per node that raises
``MaxConnectionsError`` at once when it is full, so on a cluster a semaphore of the pool's size
makes callers wait for a free connection instead, within the same bound: no node ever sees more
connections from a replica than the pool size, and a burst queues rather than failing. A master
lost costs only the keys of its shard: shared pipelines are split by node, and the cluster client
does not retry (its retry closes every node's connections), it relearns the slots instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
import traceback
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from authscale.core.errors import DependencyUnavailable
from authscale.core.metrics import REDIS_BATCH, REDIS_ERRORS, REDIS_LATENCY
from authscale.core.redis_url import cluster_address, is_cluster
from authscale.core.settings import RedisSettings

#: Errors that mean "Redis cannot serve right now", as opposed to a bug in our commands.
UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    redis_errors.BusyLoadingError,
    redis_errors.AuthenticationError,
    # A cluster between a master's failure and its replica's promotion, or with no node reachable.
    redis_errors.ClusterError,
    redis_errors.TryAgainError,
    redis_errors.RedisClusterException,
    TimeoutError,
    OSError,
)
#: Cluster errors that are a bug in our commands (they would fail the same way on every retry):
#: keys in several slots, a command with no key to route by, one a cluster pipeline refuses.
_OUR_BUG = (redis_errors.ClusterCrossSlotError, redis_errors.CrossSlotTransactionError)
_OUR_BUG_SAYS = ("same key slot", "No way to dispatch", "blocked when running redis in cluster")


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, _OUR_BUG) or any(words in str(error) for words in _OUR_BUG_SAYS):
        return False
    return isinstance(error, UNAVAILABLE) or _closed_under_the_client(error)


def _closed_under_the_client(error: BaseException) -> bool:
    """redis-py 8.1's asyncio client writing on a connection closed under it (by the server, or by
    its own cluster client's reinitialization) raises AttributeError or TypeError from inside its
    connection code instead of ConnectionError (redis/redis-py#4287). It is a lost connection, so
    a 503, when the error comes from redis-py's own frames; anywhere else it stays a bug."""
    if not isinstance(error, AttributeError | TypeError) or error.__traceback__ is None:
        return False
    *_, last = traceback.extract_tb(error.__traceback__)
    return f"{os.sep}redis{os.sep}asyncio{os.sep}" in last.filename


class RedisStore:
    """The role's Redis client: opened before serving, closed after, every call bounded in time."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.cluster = is_cluster(settings.url)
        self._client: Any = None
        self._batch = _Batch(self)
        # Only a cluster needs it: a single Redis's blocking pool already waits.
        self._free: asyncio.Semaphore | None = None
        self._topology_known = False
        self._learning_topology = asyncio.Lock()
        self._relearning: asyncio.Future[None] | None = None

    @property
    def client(self) -> Any:
        """A ``redis.asyncio.Redis``, or a ``RedisCluster`` with the same command methods."""
        if self._client is None:
            raise RuntimeError("Redis is used before the app started serving")
        return self._client

    def open(self) -> None:
        """A client over a bounded, blocking pool. Nothing is sent until the first command."""
        if self.cluster:
            self._client = self._cluster_client()
            self._free = asyncio.Semaphore(self.settings.pool_size)
            return
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

    def _cluster_client(self) -> RedisCluster:
        address = cluster_address(self.settings.url)
        timeout = self.settings.timeout
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
            username=address.username,
            password=address.password,
            ssl=address.tls,
            max_connections=self.settings.pool_size,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # No retry on a cluster: redis-py's cluster pipeline retries by closing the client's
            # connections to every node, in flight or not, so one master lost failed requests of
            # every shard (27 users of the other shards got a 503 in a failover run). A command
            # that fails instead makes the client relearn the topology gracefully, in-flight
            # connections kept (see relearn_topology for the pipelined path).
            retry=Retry(NoBackoff(), 0),
            # The servers run with cluster-require-full-coverage no: a shard without a master
            # costs its own users a 503, not everyone's; the client must not refuse to start.
            require_full_coverage=False,
            decode_responses=True,
            client_name="authscale",
        )

    async def close(self) -> None:
        if self._client is None:
            return
        if self._relearning is not None:
            self._relearning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relearning
            self._relearning = None
        await self._client.aclose()
        if not self.cluster:
            await self._client.connection_pool.disconnect()
        self._client = None
        self._topology_known = False

    @contextlib.asynccontextmanager
    async def connection_slot(self) -> AsyncIterator[None]:
        """On a cluster, wait for one of ``pool_size`` slots; a single Redis's pool waits itself."""
        if self._free is None:
            yield
            return
        if not self._topology_known:
            await self._learn_topology()
        async with self._free:
            yield

    async def _learn_topology(self) -> None:
        """Ask the cluster for its slots once, before any command goes out.

        redis-py's cluster client learns its topology on first use; a burst of first commands
        (a replica's first requests) would each start opening node connections while it does, and
        its reinitialization closes them under each other: tens of thousands of reconnects and
        failed requests in a trial of 64 concurrent logins, none after one call up front.
        """
        async with self._learning_topology:
            if not self._topology_known:
                await self.client.initialize()
                self._topology_known = True

    def relearn_topology(self) -> None:
        """Ask the cluster for its slots again, in the background, once at a time.

        A single command that cannot reach its node makes redis-py relearn the topology before
        the next command; a pipeline does not (it would have closed every connection and
        retried, which the client's retry of 0 forbids). Without this, pipelined commands
        would keep going to a dead master after its replica took over.
        """
        if self._relearning is not None and not self._relearning.done():
            return
        self._relearning = asyncio.ensure_future(self._relearn())

    async def _relearn(self) -> None:
        try:
            async with asyncio.timeout(self.settings.timeout):
                await self.client.nodes_manager.initialize()
        except Exception as error:
            # The next failing batch asks again; a cluster without a master for a slot is
            # exactly when this fails, and the requests themselves already got their 503s.
            if not _unavailable(error):
                raise

    @asynccontextmanager
    async def reaching(self, operation: str) -> AsyncIterator[Any]:
        """Bound one logical Redis operation in time; unavailability becomes a 503."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.timeout), self.connection_slot():
                yield self.client
        except Exception as exc:
            if not _unavailable(exc):
                raise
            REDIS_ERRORS.labels(operation).inc()
            raise DependencyUnavailable("Service temporarily unavailable, retry shortly") from exc
        REDIS_LATENCY.labels(operation).observe(time.perf_counter() - started)

    async def command(self, operation: str, *args: str | int) -> Any:
        """One command, bounded and mapped like :meth:`reaching`, sent in a shared pipeline.

        Every command issued in the same turn of the event loop travels in one pipeline
        (auto-pipelining, as ioredis and redis-rs do it). For the caller it is still one round
        trip; for the replica it is most of the cost saved: redis-py spends about 180 µs of CPU
        on a lone GETEX on our benchmark machine and 40-90 µs per command in a batch of 4-32,
        which is what concurrent requests to a busy replica form. Meant for the per-request hot
        path (one independent command per request); anything else uses :meth:`reaching`.
        """
        started = time.perf_counter()
        try:
            # No timer per request: the pipeline as a whole is bounded by the timeout.
            value = await self._batch.send(args)
        except Exception as exc:
            if not _unavailable(exc):
                raise
            REDIS_ERRORS.labels(operation).inc()
            raise DependencyUnavailable("Service temporarily unavailable, retry shortly") from exc
        _latency(operation).observe(time.perf_counter() - started)
        return value

    async def ping(self) -> None:
        async with self.reaching("ping") as redis:
            await redis.ping()


@functools.cache
def _latency(operation: str) -> Any:
    # The labelled child, looked up once: labels() takes a lock and a dict lookup per call.
    return REDIS_LATENCY.labels(operation)


#: A command's arguments and the future its caller awaits.
Waiting = tuple[Sequence[str | int], asyncio.Future[Any]]


class _Batch:
    """Commands waiting for the end of this loop turn, then sent together."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._waiting: list[Waiting] = []
        # The loop keeps only weak references to tasks: hold them until they finish.
        self._sending: set[asyncio.Task[None]] = set()

    def send(self, args: Sequence[str | int]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((args, answer))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return answer

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        REDIS_BATCH.observe(len(batch))
        task = asyncio.ensure_future(self._execute(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _execute(self, batch: list[Waiting]) -> None:
        groups = self._by_node(batch) if self._store.cluster else [batch]
        if len(groups) == 1:
            await self._send(batch)
            return
        await asyncio.gather(*(self._send(group) for group in groups))

    def _by_node(self, batch: list[Waiting]) -> list[list[Waiting]]:
        """The batch split by the cluster node that serves each command's key.

        redis-py's cluster pipeline sends to every node at once, but a node it cannot reach
        fails the whole pipeline: while one master is down and not yet replaced, every request
        batched with one of its keys got a 503 (27 for users of the other shards in a failover
        run). One pipeline per node confines a lost master to its own keys. Before the client
        knows its topology (or for a slot it thinks unserved), the batch stays whole.
        """
        groups: dict[str, list[Waiting]] = {}
        for waiting in batch:
            args = waiting[0]
            try:
                node = self._store.client.get_node_from_key(str(args[1])) if len(args) > 1 else None
            except redis_errors.RedisClusterException:
                node = None
            groups.setdefault(node.name if node is not None else "", []).append(waiting)
        return [batch] if "" in groups else list(groups.values())

    async def _send(self, batch: list[Waiting]) -> None:
        try:
            async with (
                asyncio.timeout(self._store.settings.timeout),
                self._store.connection_slot(),
                self._store.client.pipeline(transaction=False) as pipe,
            ):
                for args, _ in batch:
                    pipe.execute_command(*args)
                # One waiter's bad command must not fail the others' answers.
                answers = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _, answer in batch:
                answer.cancel()
            raise
        except Exception as error:  # every waiter gets it, and maps it in its own command()
            if self._store.cluster and len(batch) > 1 and not _unavailable(error):
                # A cluster pipeline routes every command before sending any, so one command it
                # cannot route fails the lot: send them one by one, each to its own answer.
                await self._one_by_one(batch)
                return
            if self._store.cluster and _unavailable(error):
                self._store.relearn_topology()
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
            return
        self._answer(batch, answers)

    async def _one_by_one(
        self, batch: list[tuple[Sequence[str | int], asyncio.Future[Any]]]
    ) -> None:
        answers: list[Any] = []
        try:
            async with (
                asyncio.timeout(self._store.settings.timeout),
                self._store.connection_slot(),
            ):
                for args, _ in batch:
                    try:
                        answers.append(await self._store.client.execute_command(*args))
                    except Exception as error:  # this waiter's alone
                        answers.append(error)
        except TimeoutError as error:
            answers += [error] * (len(batch) - len(answers))
        self._answer(batch, answers)

    @staticmethod
    def _answer(
        batch: list[tuple[Sequence[str | int], asyncio.Future[Any]]], answers: list[Any]
    ) -> None:
        for (_, answer), value in zip(batch, answers, strict=True):
            # A waiter whose request went away has cancelled its future already.
            if answer.done():
                continue
            if isinstance(value, Exception):
                answer.set_exception(value)
            else:
                answer.set_result(value)
