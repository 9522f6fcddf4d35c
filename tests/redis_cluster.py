"""Fixtures: a real Redis Cluster, 3 masters with a replica each, on free loopback ports.

Started by the lab's own :class:`~authscale.lab.stack.cluster.LocalCluster`, the code behind
``authscale up --redis-shards``. The shared cluster is session-scoped and emptied per test;
tests that kill a node, or want another number of masters, start a cluster of their own with
:func:`running_cluster`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from authscale.lab.stack import redis_node
from authscale.lab.stack.cluster import ClusterConfig, LocalCluster, free_ports

SHARDS = 3


@contextmanager
def running_cluster(directory: Path, shards: int = SHARDS) -> Iterator[LocalCluster]:
    config = ClusterConfig(
        run_dir=directory,
        ports=free_ports("127.0.0.1", 2 * shards),
        password=secrets.token_hex(16),
        token_password=secrets.token_hex(16),
        # A generous bound: the machine is shared, and a bound proves "does not hang" only.
        ready_timeout=60.0,
    )
    cluster = LocalCluster(config)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster: LocalCluster) -> str:
    """The shared cluster, emptied for this test: ``redis+cluster://:PASSWORD@HOST:PORT,...``."""
    for node in redis_cluster.view():
        if node.is_master:
            password = redis_cluster.config.password
            with redis_node.client(node.host, node.port, password) as master:
                master.flushall()
    return redis_cluster.url()
