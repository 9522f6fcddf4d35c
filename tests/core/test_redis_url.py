"""Reading a Redis Cluster URL: seeds, credentials, TLS."""

from __future__ import annotations

import pytest

from authscale.core.errors import ConfigError
from authscale.core.redis_url import ClusterAddress, cluster_address, is_cluster


def test_a_cluster_url_lists_its_seed_nodes() -> None:
    address = cluster_address("redis+cluster://:s%40cret@10.0.0.1:7000,node-2:7001,[::1]:7002")
    assert address == ClusterAddress(
        nodes=(("10.0.0.1", 7000), ("node-2", 7001), ("::1", 7002)),
        username=None,
        password="s@cret",
        tls=False,
    )


def test_user_and_tls() -> None:
    address = cluster_address("rediss+cluster://authscale-token:pw@redis-0:6379")
    assert (address.username, address.password, address.tls) == ("authscale-token", "pw", True)


@pytest.mark.parametrize(
    ("url", "cluster"),
    [
        ("redis+cluster://:pw@h:1", True),
        ("REDISS+CLUSTER://:pw@h:1", True),
        ("redis://:pw@h:1/0", False),
        ("unix:///run/redis.sock", False),
        ("h:1", False),
    ],
)
def test_is_cluster(url: str, cluster: bool) -> None:
    assert is_cluster(url) is cluster


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://:pw@h:1?ssl=true",
        "redis+cluster://:pw@h:1#x",
        "redis+cluster://:pw@:1",
        "redis+cluster://:pw@h:port",
        "redis+cluster://:pw@h:0",
        "redis+cluster://:pw@[::1]",
    ],
)
def test_malformed_cluster_urls_name_the_variable(url: str) -> None:
    with pytest.raises(ConfigError, match="AUTHSCALE_REDIS_URL"):
        cluster_address(url)
