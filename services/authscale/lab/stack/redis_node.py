"""One redis-server of the local stack, alone or as a cluster node: its config file and its probe.

Every Redis the stack starts is configured alike: a password, the denylist-only user, append-only
persistence and no eviction. A cluster node adds its cluster lines (:mod:`.cluster`); ACLs and
passwords are per node, so each node gets all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from authscale.lab.stack import processes
from authscale.lab.stack.processes import ProcessSpec
from authscale.tokens.denylist import acl_line


@dataclass(frozen=True)
class RedisNode:
    name: str
    host: str
    port: int
    #: Its redis.conf, append-only file and (on a cluster) nodes.conf live here.
    data_dir: Path
    log_file: Path


def spec(
    node: RedisNode,
    *,
    password: str,
    token_password: str,
    maxmemory: str,
    extra: Sequence[str] = (),
) -> ProcessSpec:
    """Write ``node``'s redis.conf (readable by its owner only) and say how to start it."""
    node.data_dir.mkdir(parents=True, exist_ok=True)
    conf = node.data_dir / "redis.conf"
    lines = [
        f"bind {node.host}",
        f"port {node.port}",
        "protected-mode yes",
        f"requirepass {password}",
        # Token replicas in denylist mode connect as this user, and may only read the denylist.
        acl_line(token_password),
        f"dir {node.data_dir}",
        # Users and sessions survive a restart, and are never evicted silently.
        "appendonly yes",
        "appendfsync everysec",
        'save ""',
        f"maxmemory {maxmemory}",
        "maxmemory-policy noeviction",
        'logfile ""',
        *extra,
        "",
    ]
    conf.write_text("\n".join(lines))
    conf.chmod(0o600)
    return ProcessSpec(
        name=node.name,
        role="redis",
        argv=[processes.binary("redis-server"), str(conf)],
        log_file=node.log_file,
        port=None,
    )


def client(host: str, port: int, password: str) -> redis.Redis:
    """A plain client of one node (a cluster node answers for itself, never redirects)."""
    return redis.Redis(
        host=host, port=port, password=password, socket_timeout=1, decode_responses=True
    )


def answers(host: str, port: int, password: str) -> bool:
    try:
        with client(host, port, password) as node:
            return bool(node.ping())
    except redis.RedisError:
        return False
