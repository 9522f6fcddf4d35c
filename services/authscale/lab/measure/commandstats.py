"""Redis's own count of the commands it ran (``INFO commandstats``), to divide by requests."""

from __future__ import annotations

from collections.abc import Mapping

import redis

from authscale.core.redis_url import cluster_address, is_cluster

#: Commands the measurement sends, and connection set-up: neither is a per-request cost.
NOT_PER_REQUEST = frozenset(
    {"info", "ping", "client|setname", "client|setinfo", "hello", "auth", "command|docs"}
)


def read(url: str) -> dict[str, int]:
    """Calls so far per command (lower case, subcommands as ``client|setname``); on a cluster
    URL, summed over the nodes it names (the local stack names the masters, which run them)."""
    if not is_cluster(url):
        return _calls(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))
    address = cluster_address(url)
    total: dict[str, int] = {}
    for host, port in address.nodes:
        node = redis.Redis(
            host=host,
            port=port,
            username=address.username,
            password=address.password,
            ssl=address.tls,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        for name, calls in _calls(node).items():
            total[name] = total.get(name, 0) + calls
    return total


def _calls(client: redis.Redis) -> dict[str, int]:
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): int(values["calls"])
        for name, values in stats.items()
        if isinstance(values, dict)
    }


def parse(text: str) -> dict[str, int]:
    """The same counters from ``INFO commandstats`` as redis-cli prints it, where no client
    library reaches Redis (the compose backend asks through ``docker exec ... redis-cli``)."""
    calls = {}
    for line in text.splitlines():
        name, _, values = line.strip().partition(":")
        if not name.startswith("cmdstat_"):
            continue
        fields = dict(field.partition("=")[::2] for field in values.split(","))
        calls[name.removeprefix("cmdstat_")] = int(fields["calls"])
    return calls


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Calls between two readings, without the measurement's and connection set-up."""
    return {
        name: calls - before.get(name, 0)
        for name, calls in after.items()
        if name not in NOT_PER_REQUEST and calls > before.get(name, 0)
    }
