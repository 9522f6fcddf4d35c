"""The local Redis Cluster: it forms healthy (from one master up), is configured like the single
Redis, survives a master's death through its replica, and ``authscale up --redis-shards``/``down``
leave nothing."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise
from pathlib import Path

import pytest
from redis.asyncio.cluster import ClusterNode as ClientNode
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterCrossSlotError

from authscale.core.settings import RedisSettings
from authscale.core.storage import RedisStore
from authscale.lab.stack import clients, cluster, processes, redis_node, topology
from authscale.lab.stack.cluster import ClusterConfig, LocalCluster
from authscale.lab.stack.config import StackConfig
from authscale.lab.stack.processes import StackError
from authscale.tokens.denylist import ACL_USER
from tests.lab.stack.test_local import alive, authscale, recorded_pids
from tests.redis_cluster import running_cluster


def client_of(cluster: LocalCluster) -> RedisCluster:
    nodes = [ClientNode(*seed.split(":")) for seed in cluster.seeds]
    return RedisCluster(startup_nodes=nodes, password=cluster.config.password)


@pytest.mark.cluster
def test_the_cluster_forms_with_every_slot_served_and_a_replica_per_master(
    redis_cluster: LocalCluster,
) -> None:
    assert redis_cluster.health_problem() is None
    view = redis_cluster.view()
    masters = [node for node in view if node.is_master]
    assert len(masters) == 3 and len(view) == 6
    assert all(len(topology.replicas_of(view, master)) == 1 for master in masters)
    assert len(redis_cluster.describe()) == 3
    assert len(redis_cluster.seeds) == 3
    assert redis_cluster.url().startswith(f"redis+cluster://:{redis_cluster.config.password}@")
    assert redis_cluster.url().endswith(",".join(redis_cluster.seeds))


@pytest.mark.cluster
def test_every_node_is_configured_like_the_single_redis(redis_cluster: LocalCluster) -> None:
    password = redis_cluster.config.password
    wanted = {
        "requirepass": password,
        # A replica authenticates to its master, and a demoted master to the new one.
        "masterauth": password,
        "appendonly": "yes",
        "maxmemory-policy": "noeviction",
        "cluster-require-full-coverage": "no",
        "cluster-node-timeout": "2000",
    }
    for node in redis_cluster.nodes:
        with redis_node.client(node.host, node.port, password) as each:
            for name, value in wanted.items():
                assert each.config_get(name) == {name: value}, node.name
            # ACLs are per node: the denylist user must exist on every one.
            assert each.acl_getuser(ACL_USER)["enabled"], node.name


@pytest.mark.cluster
def test_keys_sharing_a_hash_tag_run_in_one_script_and_others_are_refused(
    redis_cluster_url: str, redis_cluster: LocalCluster
) -> None:
    script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('SET', KEYS[2], ARGV[1])"

    async def run() -> None:
        client = client_of(redis_cluster)
        try:
            assert await client.eval(script, 2, "{user:1}:a", "{user:1}:b", "x")
            assert await client.get("{user:1}:b") == b"x"
        finally:
            await client.aclose()

    asyncio.run(run())
    # The server itself refuses a script whose keys live in two slots.
    node = redis_cluster.nodes[0]
    with (
        redis_node.client(node.host, node.port, redis_cluster.config.password) as one_node,
        pytest.raises(ClusterCrossSlotError),
    ):
        one_node.eval(script, 2, "{user:1}:a", "{user:2}:b", "x")


def test_a_negative_shard_count_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"0 \(one Redis\) or N >= 1 .*got -1"):
        StackConfig(run_dir=tmp_path, redis_shards=-1)
    with pytest.raises(StackError, match="two ports per shard"):
        ClusterConfig(
            run_dir=tmp_path, ports=[1, 2, 3, 4, 5, 6, 7], password="p", token_password="t"
        )
    result = authscale("up", "--run-dir", str(tmp_path), "--redis-shards", "-1")
    assert result.returncode == 1 and "--redis-shards must be 0" in result.stderr


@pytest.mark.cluster
@pytest.mark.parametrize("shards", [1, 2])
async def test_fewer_than_three_masters_form_a_cluster_the_store_uses_on_every_shard(
    tmp_path: Path, shards: int
) -> None:
    with running_cluster(tmp_path, shards) as small:
        assert small.health_problem() is None
        view = small.view()
        masters = [node for node in view if node.is_master]
        assert len(masters) == shards and len(view) == 2 * shards
        # Even contiguous ranges that leave no slot unserved.
        ranges = sorted(slots for master in masters for slots in master.slots)
        assert len(ranges) == shards
        assert ranges[0][0] == 0 and ranges[-1][1] == topology.SLOTS - 1
        assert all(a[1] + 1 == b[0] for a, b in pairwise(ranges))
        sizes = [last - first + 1 for first, last in ranges]
        assert max(sizes) - min(sizes) <= 1
        password = small.config.password
        for index, master_node in enumerate(small.nodes[:shards]):
            # The pairing is fixed: the node ``shards`` places on replicates master ``index``.
            master = next(node for node in view if node.port == master_node.port)
            (replica,) = topology.replicas_of(view, master)
            assert replica.port == small.nodes[shards + index].port
            with redis_node.client(replica.host, replica.port, password) as each:
                replication = each.info("replication")
            assert replication["master_link_status"] == "up"
            assert replication["master_port"] == master.port
        # One key per shard, written and read through the product's own store.
        keys = {}
        for n in range(1000):
            key = f"{{user:{n}}}:session"
            owner = topology.master_serving(view, small.slot_of(key))
            assert owner is not None
            keys.setdefault(owner.id, key)
            if len(keys) == shards:
                break
        assert len(keys) == shards
        store = RedisStore(RedisSettings(url=small.url(), timeout=2))
        store.open()
        try:
            async with store.reaching("setup") as client:
                for key in keys.values():
                    await client.set(key, f"on {key}")
            answers = await asyncio.gather(
                *(store.command("test_get", "GET", key) for key in keys.values())
            )
        finally:
            await store.close()
        assert answers == [f"on {key}" for key in keys.values()]
        for master in masters:
            with redis_node.client(master.host, master.port, password) as each:
                assert each.get(keys[master.id]) == f"on {keys[master.id]}"
                # Its replica acknowledges the write too: in sync, not merely attached.
                assert each.execute_command("WAIT", 1, 5000) == 1


@pytest.mark.cluster
def test_a_replica_takes_over_when_its_master_is_killed(tmp_path: Path) -> None:
    key = "{user:42}:session"
    with running_cluster(tmp_path) as cluster:
        password = cluster.config.password
        master = topology.master_serving(cluster.view(), cluster.slot_of(key))
        assert master is not None
        pid = cluster.running[f"redis-{master.port}"].pid
        with redis_node.client(master.host, master.port, password) as before:
            before.set(key, "alive")
            # Replication is asynchronous: WAIT makes this key one the replica surely has.
            assert before.execute_command("WAIT", 1, 5000) == 1
        failover = cluster.kill_master_for(key)
        assert failover.master.id == master.id and len(failover.replicas) == 1
        assert not processes.group_members(pid)
        promotion = cluster.wait_promoted(failover)
        assert promotion.replica.id == failover.replicas[0].id
        assert promotion.replica.serves(failover.slot) and promotion.seconds > 0
        with redis_node.client(promotion.replica.host, promotion.replica.port, password) as after:
            assert after.get(key) == "alive"
        # The killed master comes back as its old replica's replica: the shard is whole again.
        cluster.start_node(f"redis-{master.port}")
        cluster.wait_healthy()


@pytest.mark.cluster
def test_a_stopped_cluster_rejoins_with_its_data(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        client = redis_node.client
        password = cluster.config.password
        master = topology.master_serving(cluster.view(), cluster.slot_of("{user:7}:u"))
        assert master is not None
        with client(master.host, master.port, password) as each:
            each.set("{user:7}:u", "kept")
        cluster.stop()
        assert not cluster.running
        cluster.start()
        with client(master.host, master.port, password) as each:
            assert each.get("{user:7}:u") == "kept"


@pytest.mark.lab
def test_up_with_redis_shards_then_down_leaves_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    redis_port = cluster.free_block("127.0.0.1", 6)
    up = authscale(
        "up",
        "--detach",
        "--replicas",
        "1",
        "--redis-shards",
        "3",
        "--run-dir",
        str(run_dir),
        *("--gateway-port", str(processes.free_port())),
        *("--redis-port", str(redis_port), "--base-port", "0"),
        env={"AUTHSCALE_ARGON2_MEMORY_KIB": "1024"},
        timeout=180,
    )
    assert up.returncode == 0, up.stderr
    assert "redis     cluster of 3 masters with a replica each" in up.stdout
    pids = recorded_pids(run_dir)
    state = json.loads((run_dir / "stack.json").read_text())
    nodes = [entry["name"] for entry in state["processes"] if entry["name"].startswith("redis-")]
    assert sorted(nodes) == [f"redis-{port}" for port in range(redis_port, redis_port + 6)]
    assert state["redis_url"].startswith("redis+cluster://:")
    gateway = f"http://127.0.0.1:{state['gateway_url'].rsplit(':', 1)[1]}"
    assert clients.log_in(gateway, "session").startswith("Cookie: ")
    assert clients.log_in(gateway, "token").startswith("Authorization: Bearer ")
    down = authscale("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stderr
    assert not any(alive(*pid) for pid in pids)
    assert not (run_dir / "stack.json").exists()
