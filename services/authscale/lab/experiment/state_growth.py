"""``authscale experiment state-growth``: Redis memory per signed-in user, and whether the session
lookup slows down as the store grows, on one Redis and on a Redis Cluster.

For each deployment (``--redis-shards``; 0 is one Redis) a local stack with one session replica
starts. For each size the store is then filled up to that many signed-in users, each with one
session and one refresh family, written by the product's own scripts with the product's own
arguments (:meth:`Sessions.creation`, :meth:`RefreshTokens.start_call`) in pipelines, and
measured: ``used_memory`` (``INFO memory``, summed over the masters) before and after each kind
gives bytes per session and per family; then the demo user's dashboard and the ping through the
gateway, in interleaved rounds, give p50/p99 and the dashboard/ping throughput ratio.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx

from authscale.core.indexed import STALE
from authscale.core.redis_url import is_cluster
from authscale.core.settings import RedisSettings, SessionSettings
from authscale.core.slots import user_tag
from authscale.core.storage import RedisStore
from authscale.lab import run
from authscale.lab.experiment.growth_report import write_report
from authscale.lab.experiment.growth_results import GrowthConfig, Latency, SizeResult
from authscale.lab.stack.cluster import free_block
from authscale.lab.stack.config import DEMO_USER, StackConfig
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import StackError, free_port
from authscale.session.store import CREATE_SCRIPT, Sessions, index_key
from authscale.tokens.refresh import START_SCRIPT, RefreshTokens, family_key, user_index_key
from authscale.tokens.settings import RefreshSettings

#: Scripts per pipeline while filling: large enough that the round trip is noise.
FILL_BATCH = 500
#: Users per size that sign in a second time, for the cost of one more session or family.
EXTRA_SAMPLE = 1_000


def run_state_growth(config: GrowthConfig, say: run.Progress = run.say) -> Path:
    out = run.results_folder(config.results_dir, "state-growth-")
    results: list[SizeResult] = []
    for shards in config.shards:
        results.extend(_deployment(config, shards, out, say))
        _write(out, config, results)
    say(f"state-growth: results in {out}")
    return out


def _deployment(
    config: GrowthConfig, shards: int, out: Path, say: run.Progress
) -> list[SizeResult]:
    name = "one Redis" if shards == 0 else f"a Redis Cluster of {shards} masters"
    say(f"state-growth: {name}")
    stack = LocalStack(
        StackConfig(
            run_dir=out / "stacks" / f"shards-{shards}",
            replicas={"session": 1},
            gateway_port=free_port("127.0.0.1"),
            redis_port=free_block("127.0.0.1", 2 * shards) if shards else free_port("127.0.0.1"),
            redis_shards=shards,
            base_port=None,
            redis_maxmemory=config.redis_maxmemory,
            server=config.server,
        )
    )
    stack.start()
    try:
        return asyncio.run(_measure(config, shards, stack, say))
    finally:
        stack.stop()


async def _measure(
    config: GrowthConfig, shards: int, stack: LocalStack, say: run.Progress
) -> list[SizeResult]:
    store = RedisStore(RedisSettings(stack.redis_url, timeout=60, pool_size=8))
    store.open()
    results = []
    try:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as gateway:
            login = await gateway.post(
                "/session/login", json={"username": DEMO_USER[0], "password": DEMO_USER[1]}
            )
            login.raise_for_status()
            filled = 0
            for size in config.sizes:
                began = time.monotonic()
                result = await _grow(store, shards, filled, size)
                filled = size
                dashboard, ping = await _latencies(gateway, config)
                result = replace(
                    result,
                    dashboard=dashboard,
                    ping=ping,
                    ratio=dashboard.per_second / ping.per_second,
                )
                results.append(result)
                say(
                    f"  {size:>9,} users: {result.bytes_per_session:,.0f} B/session, "
                    f"{result.bytes_per_extra_session:,.0f} B/extra session, "
                    f"{result.bytes_per_family:,.0f} B/family, dashboard p50 "
                    f"{dashboard.p50_ms:.2f} ms p99 {dashboard.p99_ms:.2f} ms, ratio "
                    f"{result.ratio:.2f} ({run.elapsed(began)})"
                )
    finally:
        await store.close()
    return results


async def _grow(store: RedisStore, shards: int, start: int, stop: int) -> SizeResult:
    """Users ``start``..``stop - 1`` sign in: one session and one family each; then a sample of
    them signs in a second time, for the cost of one more session or family of a user."""
    users = range(start, stop)
    sample = range(start, start + min(len(users), EXTRA_SAMPLE))
    costs = {}
    for kind in ("session", "family"):
        before = await used_memory(store)
        first = await _fill(store, kind, users, {})
        after_first = await used_memory(store)
        indexes = [_index_of(kind, f"grow{number}") for number in sample]
        indexes_before = await memory_usage(store, indexes)
        second = await _fill(store, kind, sample, first)
        # One more session or family: its own key(s) and what its index grew by, each measured
        # with MEMORY USAGE (a used_memory delta this small would be swamped by the main
        # dictionary's rehashing, which doubles its table at a power of two keys).
        added = await memory_usage(store, [_key_of(kind, number, second) for number in sample])
        grown = await memory_usage(store, indexes) - indexes_before
        costs[kind] = ((after_first - before) / len(users), (added + grown) / len(sample))
    nothing = Latency(0, 0, 0)
    return SizeResult(
        shards=shards,
        size=stop,
        bytes_per_session=costs["session"][0],
        bytes_per_extra_session=costs["session"][1],
        bytes_per_family=costs["family"][0],
        bytes_per_extra_family=costs["family"][1],
        dashboard=nothing,
        ping=nothing,
        ratio=0,
        keys_per_master=await keys_per_master(store),
    )


async def _fill(
    store: RedisStore, kind: str, numbers: range, existing: dict[int, str]
) -> dict[int, str]:
    """Users ``grow<number>`` each get one session or one family, stored by the product's own
    script with the product's own arguments; ``existing`` holds what each user's index already
    lists (nothing for a first sign-in), which the script checks. Returns the index member each
    new session or family added."""
    # Idle expiry as long as the absolute one, so no filled session expires during a long run
    # (an expiry is a number in the key's metadata: the bytes are the same).
    lifetime = SessionSettings().absolute_timeout
    sessions = Sessions(store, SessionSettings(idle_timeout=lifetime))
    families = RefreshTokens(store, RefreshSettings(), access_retention=900)
    async with store.reaching(f"fill_{kind}") as client:
        sha = await client.script_load(CREATE_SCRIPT if kind == "session" else START_SCRIPT)
    added: dict[int, str] = {}
    for first in range(numbers.start, numbers.stop, FILL_BATCH):
        async with store.reaching(f"fill_{kind}") as client:
            pipe = client.pipeline(transaction=False)
            for number in range(first, min(first + FILL_BATCH, numbers.stop)):
                username = f"grow{number}"
                members = [existing[number]] if number in existing else []
                if kind == "session":
                    session = sessions.new(username)
                    call = sessions.creation(session, epoch=0, members=members)
                    added[number] = call.keys[0]
                else:
                    new = families.new_family(username)
                    call = families.start_call(
                        new, secrets.token_urlsafe(32), epoch=0, csrf=None, families=members
                    )
                    added[number] = new.family
                pipe.execute_command("EVALSHA", sha, len(call.keys), *call.keys, *call.args)
            answers = await pipe.execute()
        refused = [answer for answer in answers if answer is None or answer == STALE]
        if refused:
            raise StackError(f"state-growth: {len(refused)} of {kind} refused while filling")
    return added


def _index_of(kind: str, username: str) -> str:
    return index_key(username) if kind == "session" else user_index_key(username)


def _key_of(kind: str, number: int, added: dict[int, str]) -> str:
    if kind == "session":
        return added[number]
    return family_key(user_tag(f"grow{number}"), added[number])


async def memory_usage(store: RedisStore, keys: Sequence[str]) -> int:
    """The summed ``MEMORY USAGE`` of ``keys`` (every element counted: ``SAMPLES 0``)."""
    async with store.reaching("state_growth_info") as client:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
    return sum(int(size or 0) for size in sizes)


async def used_memory(store: RedisStore) -> int:
    """``used_memory`` of the single Redis, or summed over a cluster's masters."""
    return sum(int(info["used_memory"]) for info in await _per_master(store, "INFO", "memory"))


async def keys_per_master(store: RedisStore) -> list[int]:
    return [int(count) for count in await _per_master(store, "DBSIZE")]


async def _per_master(store: RedisStore, *command: str) -> list[Any]:
    async with store.reaching("state_growth_info") as client:
        if not is_cluster(store.settings.url):
            return [await client.execute_command(*command)]
        masters = sorted(client.get_primaries(), key=lambda node: node.name)
        return [await client.execute_command(*command, target_nodes=node) for node in masters]


async def _latencies(gateway: httpx.AsyncClient, config: GrowthConfig) -> tuple[Latency, Latency]:
    """Dashboard and ping in alternating rounds, so a change of machine speed hits both alike."""
    per_round = config.requests // config.rounds
    timings: dict[str, list[float]] = {"dashboard": [], "ping": []}
    seconds = {"dashboard": 0.0, "ping": 0.0}
    for _ in range(config.rounds):
        for route in ("dashboard", "ping"):
            began = time.perf_counter()
            timings[route] += await _round(gateway, f"/session/{route}", per_round, config)
            seconds[route] += time.perf_counter() - began
    dashboard, ping = (
        Latency(
            p50_ms=statistics.median(timings[route]) * 1000,
            p99_ms=statistics.quantiles(timings[route], n=100)[98] * 1000,
            per_second=len(timings[route]) / seconds[route],
        )
        for route in ("dashboard", "ping")
    )
    return dashboard, ping


async def _round(
    gateway: httpx.AsyncClient, path: str, count: int, config: GrowthConfig
) -> list[float]:
    gate = asyncio.Semaphore(config.concurrency)

    async def one() -> float:
        async with gate:
            began = time.perf_counter()
            response = await gateway.get(path)
            if response.status_code != 200:
                raise StackError(f"state-growth: {path} answered {response.status_code}")
            return time.perf_counter() - began

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _write(out: Path, config: GrowthConfig, results: list[SizeResult]) -> None:
    (out / "results.json").write_text(
        json.dumps(
            {"config": _jsonable(asdict(config)), "results": [asdict(r) for r in results]},
            indent=2,
        )
        + "\n"
    )
    write_report(out, config, results)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in value.items()}
