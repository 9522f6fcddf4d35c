"""A Redis Cluster as one of its nodes sees it: ``CLUSTER NODES`` and ``CLUSTER INFO``, parsed.

Each node answers for its own view; the cluster is healthy when every node's view is.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

SLOTS = 16384


@dataclass(frozen=True)
class ClusterNode:
    id: str
    host: str
    port: int
    #: The master it replicates; ``None`` for a master.
    master_id: str | None
    #: Inclusive slot ranges it serves (a master's only).
    slots: tuple[tuple[int, int], ...]
    #: The answering node flags it failed (``fail``) or suspects it (``fail?``).
    failed: bool
    #: The answering node itself.
    myself: bool

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_master(self) -> bool:
        return self.master_id is None

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)

    def describe_slots(self) -> str:
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.slots)


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """The 16384 slots in ``shards`` contiguous inclusive ranges, as even as they divide."""
    bounds = [shard * SLOTS // shards for shard in range(shards + 1)]
    return [(first, after - 1) for first, after in pairwise(bounds)]


def parse_nodes(text: str) -> list[ClusterNode]:
    """``CLUSTER NODES``: ``id host:port@bus flags master ping pong epoch link slot...``."""
    nodes = []
    for line in text.strip().splitlines():
        fields = line.split()
        address = fields[1].split("@")[0]
        host, _, port = address.rpartition(":")
        flags = set(fields[2].split(","))
        slots = []
        for item in fields[8:]:
            # Slots being migrated appear as [slot->-node]; a cluster at rest has none.
            if item.startswith("["):
                continue
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        nodes.append(
            ClusterNode(
                id=fields[0],
                host=host,
                port=int(port),
                master_id=None if fields[3] == "-" else fields[3],
                slots=tuple(slots),
                failed=bool(flags & {"fail", "fail?"}),
                myself="myself" in flags,
            )
        )
    return nodes


def parse_info(text: str) -> dict[str, str]:
    """``CLUSTER INFO``: ``name:value`` lines."""
    pairs = (line.partition(":") for line in text.strip().splitlines())
    return {name.strip(): value.strip() for name, _, value in pairs}


def info_problem(address: str, info: dict[str, str], nodes: int) -> str | None:
    """What keeps this node's view from a healthy cluster of ``nodes`` nodes, if anything."""
    wanted = {
        "cluster_state": "ok",
        "cluster_slots_assigned": str(SLOTS),
        # cluster-require-full-coverage no keeps the state ok while a shard has no master, so
        # the slots' own health is checked too.
        "cluster_slots_ok": str(SLOTS),
        "cluster_known_nodes": str(nodes),
    }
    for name, value in wanted.items():
        if info.get(name) != value:
            return f"{address} reports {name}:{info.get(name, '(missing)')}, not {value}"
    return None


def shards_problem(view: list[ClusterNode], shards: int) -> str | None:
    """What keeps ``view`` from ``shards`` masters each with a replica attached, if anything."""
    masters = [node for node in view if node.is_master and node.slots and not node.failed]
    if len(masters) != shards:
        return f"{len(masters)} masters serve slots, not {shards}"
    for master in masters:
        if not replicas_of(view, master):
            return f"master {master.address} has no replica"
    return None


def replicas_of(view: list[ClusterNode], master: ClusterNode) -> list[ClusterNode]:
    return [node for node in view if node.master_id == master.id and not node.failed]


def master_serving(view: list[ClusterNode], slot: int) -> ClusterNode | None:
    for node in view:
        if node.is_master and not node.failed and node.serves(slot):
            return node
    return None
