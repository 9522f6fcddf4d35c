"""CLUSTER NODES and CLUSTER INFO as redis-server 7.0 prints them, read into a cluster's shape."""

from __future__ import annotations

from itertools import pairwise

from authscale.lab.stack import topology

# After a failover: 6391 was killed and 6394, its replica, serves its slots.
NODES = """\
a1 127.0.0.1:6390@16390 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:6391@16391 master,fail - 1700000000000 1700000000000 2 disconnected
c3 127.0.0.1:6392@16392 master - 0 1700000000000 3 connected 10923-16383 [16000->-a1]
d4 127.0.0.1:6393@16393 slave a1 0 1700000000000 1 connected
e5 127.0.0.1:6394@16394 master - 0 1700000000000 7 connected 5461-10922
f6 127.0.0.1:6395@16395 slave c3 0 1700000000000 3 connected
"""


def test_slots_are_split_into_even_contiguous_ranges() -> None:
    assert topology.slot_ranges(1) == [(0, 16383)]
    assert topology.slot_ranges(3) == [(0, 5460), (5461, 10921), (10922, 16383)]
    for shards in range(1, 9):
        ranges = topology.slot_ranges(shards)
        assert ranges[0][0] == 0 and ranges[-1][1] == topology.SLOTS - 1
        assert all(before[1] + 1 == after[0] for before, after in pairwise(ranges))
        sizes = [last - first + 1 for first, last in ranges]
        assert len(sizes) == shards and max(sizes) - min(sizes) <= 1


def test_nodes_are_read_with_their_role_slots_and_failure() -> None:
    nodes = {node.port: node for node in topology.parse_nodes(NODES)}
    assert nodes[6390].myself and nodes[6390].is_master and nodes[6390].slots == ((0, 5460),)
    assert nodes[6391].failed and not nodes[6391].slots
    # A slot being migrated is not one the node serves at rest.
    assert nodes[6392].slots == ((10923, 16383),)
    assert nodes[6393].master_id == "a1" and not nodes[6393].is_master
    assert nodes[6394].describe_slots() == "5461-10922"


def test_the_master_serving_a_slot_is_never_a_failed_one() -> None:
    view = topology.parse_nodes(NODES)
    serving = topology.master_serving(view, 6000)
    assert serving is not None and serving.address == "127.0.0.1:6394"
    assert topology.master_serving(view, 0) == view[0]


def test_a_shard_without_a_replica_is_named() -> None:
    problem = topology.shards_problem(topology.parse_nodes(NODES), 3)
    assert problem == "master 127.0.0.1:6394 has no replica"


def test_info_names_the_first_value_that_is_not_healthy() -> None:
    info = topology.parse_info(
        "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:10923\r\n"
        "cluster_known_nodes:6\r\n"
    )
    assert topology.info_problem("127.0.0.1:6390", info, 6) == (
        "127.0.0.1:6390 reports cluster_slots_ok:10923, not 16384"
    )
    info["cluster_slots_ok"] = "16384"
    assert topology.info_problem("127.0.0.1:6390", info, 6) is None
