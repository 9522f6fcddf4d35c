"""A Redis Cluster on loopback: N masters with one replica each, for the local stack and the tests.

Each node is a redis-server configured like the stack's single Redis (:mod:`.redis_node`) plus
the cluster lines below, with its data in ``RUN_DIR/redis/cluster/PORT``. The first start joins
them (:meth:`LocalCluster._create`: the first half masters, the second their replicas); a node
directory that already holds ``nodes.conf`` rejoins its cluster on the next start, as the single
Redis reopens its append-only file.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from authscale.lab.stack import processes, redis_node, topology
from authscale.lab.stack.processes import ProcessSpec, Running, StackError
from authscale.lab.stack.redis_node import RedisNode
from authscale.lab.stack.topology import ClusterNode
from authscale.tokens.denylist import ACL_USER

#: A spec as it starts inside its CPU budget, and the step that enters it (:mod:`.budgets`).
Budgeted = Callable[[ProcessSpec], tuple[ProcessSpec, Callable[[], None] | None]]
#: Redis listens for its cluster bus on each node's port plus this.
BUS_OFFSET = 10000
#: A master silent this long is suspected; once most masters agree, its replica takes over
#: within about a second more. Redis's default (15 s) suits networks that hiccup; on loopback a
#: node that does not answer for 2 s is gone, and a failover measured in seconds keeps a fault
#: scenario short. Much lower would turn a node starved of CPU on a busy 2-core machine into a
#: false failover.
NODE_TIMEOUT_MS = 2000
CLUSTER_LINES = (
    "cluster-enabled yes",
    "cluster-config-file nodes.conf",
    f"cluster-node-timeout {NODE_TIMEOUT_MS}",
    # Every user's keys share one hash tag, so a user lives on one shard. With the default (yes),
    # one shard without a master stops every node from answering, and every user gets a 503;
    # with no, the other shards keep serving their users and only the lost shard's users wait.
    "cluster-require-full-coverage no",
)


def check_shards(shards: int) -> None:
    if shards < 0:
        raise StackError(
            f"--redis-shards must be 0 (one Redis) or N >= 1 (a cluster of N masters), got {shards}"
        )


def free_ports(host: str, count: int) -> list[int]:
    """``count`` free ports whose cluster bus ports are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = processes.free_port(host, span=BUS_OFFSET)
        if port not in ports and processes.port_is_free(host, port + BUS_OFFSET):
            ports.append(port)
    return ports


def free_block(host: str, count: int) -> int:
    """The first of ``count`` consecutive free ports whose cluster bus ports are free too: what
    ``--redis-port`` takes for a cluster of ``count // 2`` shards."""
    while True:
        first = processes.free_port(host, span=count + BUS_OFFSET)
        if all(
            processes.port_is_free(host, port) and processes.port_is_free(host, port + BUS_OFFSET)
            for port in range(first, first + count)
        ):
            return first


@dataclass(frozen=True)
class ClusterConfig:
    run_dir: Path
    #: One port per node, masters and replicas alike: two per shard.
    ports: Sequence[int]
    password: str
    #: The denylist-only user's (:data:`~authscale.tokens.denylist.ACL_USER`).
    token_password: str
    host: str = "127.0.0.1"
    maxmemory: str = "256mb"
    #: Bounds each wait: a node's start, the cluster's creation, its health, a promotion.
    ready_timeout: float = 30.0
    #: More redis.conf lines for every node (:data:`authscale.lab.budgets.REDIS_LINES`).
    extra: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_shards(self.shards)
        if len(self.ports) % 2 or not self.ports:
            raise StackError(f"a cluster needs two ports per shard, got {len(self.ports)}")

    @property
    def shards(self) -> int:
        return len(self.ports) // 2


@dataclass(frozen=True)
class Failover:
    """A master killed for the slot of ``key``; its replicas are who may take over."""

    key: str
    slot: int
    master: ClusterNode
    replicas: tuple[ClusterNode, ...]
    killed_at: float


@dataclass(frozen=True)
class Promotion:
    replica: ClusterNode
    #: From the kill until the replica, asked itself, serves the slot as a master.
    seconds: float


class LocalCluster:
    def __init__(
        self,
        config: ClusterConfig,
        *,
        die_with_parent: bool = True,
        running: dict[str, Running] | None = None,
        budgeted: Budgeted | None = None,
    ) -> None:
        self.config = config
        self.die_with_parent = die_with_parent
        #: How a node's process enters its CPU budget (the local stack's), if it has one.
        self.budgeted = budgeted
        #: The process table nodes are recorded in; the local stack passes its own, so its
        #: state file, ``authscale down`` and its samples see every node.
        self.running = running if running is not None else {}
        self.specs: dict[str, ProcessSpec] = {}
        self.nodes = [
            RedisNode(
                name=f"redis-{port}",
                host=config.host,
                port=port,
                data_dir=config.run_dir / "redis" / "cluster" / str(port),
                log_file=config.run_dir / "logs" / f"redis-{port}.log",
            )
            for port in config.ports
        ]
        #: The masters once healthy: the addresses clients start from.
        self.seeds: list[str] = []

    def url(self, user: str = "", password: str | None = None) -> str:
        password = self.config.password if password is None else password
        return f"redis+cluster://{user}:{password}@{','.join(self.seeds)}"

    @property
    def token_url(self) -> str:
        """The denylist-only user's URL (token replicas in denylist mode)."""
        return self.url(ACL_USER, self.config.token_password)

    # -- lifecycle ---------------------------------------------------------------------------

    def check_ports(self) -> None:
        for node in self.nodes:
            for port in (node.port, node.port + BUS_OFFSET):
                if port > 65535 or not processes.port_is_free(node.host, port):
                    raise StackError(
                        f"port {port} (redis cluster node {node.name}, or its bus) on "
                        f"{node.host} is not free; a cluster of {self.config.shards} shards "
                        f"uses {len(self.nodes)} ports from --redis-port and each port + "
                        f"{BUS_OFFSET}: stop what uses it or choose another --redis-port"
                    )

    def start(self) -> None:
        """Start every node, create the cluster (or let it rejoin) and wait until healthy."""
        self.check_ports()
        joined = [(node.data_dir / "nodes.conf").exists() for node in self.nodes]
        if any(joined) and not all(joined):
            raise StackError(
                f"only some nodes of the cluster in {self.config.run_dir / 'redis' / 'cluster'} "
                "were ever joined; delete that directory to start a fresh cluster"
            )
        try:
            for node in self.nodes:
                self.start_node(node.name)
            if not all(joined):
                self._create()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.seeds = [node.address for node in self.view() if node.is_master and node.slots]

    def start_node(self, name: str) -> None:
        """Start one node (again, after a kill: it rejoins, as a replica if it was replaced)."""
        node = next(node for node in self.nodes if node.name == name)
        spec = redis_node.spec(
            node,
            password=self.config.password,
            token_password=self.config.token_password,
            maxmemory=self.config.maxmemory,
            # A replica authenticates to its master (and a master, once demoted, to the new one).
            extra=(f"masterauth {self.config.password}", *CLUSTER_LINES, *self.config.extra),
        )
        self.specs[name] = spec
        started, enter = self.budgeted(spec) if self.budgeted else (spec, None)
        running = processes.start(started, die_with_parent=self.die_with_parent, enter=enter)
        self.running[name] = running
        processes.wait_ready(
            running,
            self.config.ready_timeout,
            lambda: redis_node.answers(node.host, node.port, self.config.password),
        )

    def stop(self) -> None:
        """Stop every node at once, by pid; each flushes its append-only file on SIGTERM."""
        mine = [self.running.pop(node.name) for node in self.nodes if node.name in self.running]
        processes.stop_all([(running.pid, running.started_ticks) for running in mine])
        for running in mine:
            running.process.wait()

    def _create(self) -> None:
        """Join fresh nodes: the first half masters of even slot ranges, node ``shards + i`` the
        replica of master ``i``. ``redis-cli --cluster create``'s steps, without its floor of
        three masters: a scaling run wants one and two as well."""
        shards = self.config.shards
        masters, replicas = self.nodes[:shards], self.nodes[shards:]
        # Distinct config epochs, as redis-cli sets them: no epoch collision to resolve once the
        # masters meet. A node takes one only while it knows no other node.
        for epoch, node in enumerate(self.nodes, start=1):
            self._tell(node, "CLUSTER", "SET-CONFIG-EPOCH", str(epoch))
        for master, (first, last) in zip(masters, topology.slot_ranges(shards), strict=True):
            self._tell(master, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
        ids = {node.name: self._tell(node, "CLUSTER", "MYID") for node in self.nodes}
        first_node = self.nodes[0]
        for node in self.nodes[1:]:
            self._tell(node, "CLUSTER", "MEET", first_node.host, str(first_node.port))
        self._wait_acquainted(set(ids.values()))
        for master, replica in zip(masters, replicas, strict=True):
            self._tell(replica, "CLUSTER", "REPLICATE", ids[master.name])

    def _tell(self, node: RedisNode, *command: str) -> str:
        try:
            return self._ask(node, *command)
        except redis.RedisError as error:
            raise StackError(
                f"creating the redis cluster, node {node.name} ({node.host}:{node.port}) "
                f"refused {' '.join(command[:2])}: {error}; read {node.log_file}"
            ) from error

    def _wait_acquainted(self, ids: set[str]) -> None:
        """Wait until every node knows every other by its id (a node still in its handshake
        with another lists it under a made-up id): a replica can only follow a master it knows."""
        deadline = time.monotonic() + self.config.ready_timeout
        for node in self.nodes:
            while (known := self._known_ids(node)) != ids:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"redis cluster node {node.name} ({node.host}:{node.port}) knows "
                        f"{len(known & ids)} of the {len(ids)} nodes after "
                        f"{self.config.ready_timeout:g} s; read {node.log_file}"
                    )
                time.sleep(0.05)

    def _known_ids(self, node: RedisNode) -> set[str]:
        try:
            return {each.id for each in topology.parse_nodes(self._ask(node, "CLUSTER", "NODES"))}
        except redis.RedisError:
            return set()

    # -- what the cluster says ---------------------------------------------------------------

    def _ask(self, node: RedisNode | ClusterNode, *command: str) -> str:
        with redis_node.client(node.host, node.port, self.config.password) as client:
            return str(client.execute_command(*command))

    def _alive(self) -> list[RedisNode]:
        return [node for node in self.nodes if node.name in self.running]

    def view(self) -> list[ClusterNode]:
        """``CLUSTER NODES`` from the first node that answers."""
        for node in self._alive():
            try:
                return topology.parse_nodes(self._ask(node, "CLUSTER", "NODES"))
            except redis.RedisError:
                continue
        raise StackError("no node of the redis cluster answers")

    def health_problem(self) -> str | None:
        """What keeps the cluster from healthy (every node sees every slot served, every
        master has a replica in sync), or ``None``."""
        try:
            for node in self.nodes:
                info = topology.parse_info(self._ask(node, "CLUSTER", "INFO"))
                problem = topology.info_problem(f"{node.host}:{node.port}", info, len(self.nodes))
                if problem:
                    return problem
            view = self.view()
            problem = topology.shards_problem(view, self.config.shards)
            if problem:
                return problem
            for replica in (node for node in view if not node.is_master):
                with redis_node.client(replica.host, replica.port, self.config.password) as client:
                    replication = client.info("replication")
                if replication.get("master_link_status") != "up":
                    return f"replica {replica.address} is not in sync with its master yet"
        except redis.RedisError as error:
            return f"a node does not answer: {error}"
        return None

    def wait_healthy(self, timeout: float | None = None) -> None:
        timeout = self.config.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while (problem := self.health_problem()) is not None:
            if time.monotonic() > deadline:
                raise StackError(
                    f"the redis cluster was not healthy after {timeout:g} s: {problem}; read "
                    f"{self.config.run_dir / 'logs'}/redis-*.log"
                )
            time.sleep(0.2)

    def describe(self) -> list[str]:
        """One line per shard: its master, its slots and its replicas."""
        view = self.view()
        return [
            f"{master.address} master of slots {master.describe_slots()}, replica "
            + ", ".join(replica.address for replica in topology.replicas_of(view, master))
            for master in sorted(view, key=lambda node: node.slots)
            if master.is_master and master.slots
        ]

    # -- a master lost -----------------------------------------------------------------------

    def slot_of(self, key: str) -> int:
        return int(self._ask(self._alive()[0], "CLUSTER", "KEYSLOT", key))

    def kill_master_for(self, key: str) -> Failover:
        """SIGKILL the master serving ``key``'s slot, as a crash would end it."""
        slot = self.slot_of(key)
        view = self.view()
        master = topology.master_serving(view, slot)
        if master is None:
            raise StackError(f"no master serves slot {slot} of {key!r}")
        name = f"redis-{master.port}"
        running = self.running.pop(name)
        processes.stop_pid(running.pid, running.started_ticks, signal.SIGKILL)
        running.process.wait()
        replicas = tuple(topology.replicas_of(view, master))
        return Failover(key, slot, master, replicas, killed_at=time.monotonic())

    def wait_promoted(self, failover: Failover, timeout: float | None = None) -> Promotion:
        """Wait until one of the killed master's replicas serves its slot as a master."""
        timeout = self.config.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for replica in failover.replicas:
                try:
                    own = topology.parse_nodes(self._ask(replica, "CLUSTER", "NODES"))
                except redis.RedisError:
                    continue
                myself = next(node for node in own if node.myself)
                if myself.is_master and myself.serves(failover.slot):
                    return Promotion(myself, time.monotonic() - failover.killed_at)
            time.sleep(0.05)
        replicas = ", ".join(replica.address for replica in failover.replicas) or "none"
        raise StackError(
            f"no replica of {failover.master.address} (replicas: {replicas}) took over slot "
            f"{failover.slot} within {timeout:g} s; read {self.config.run_dir / 'logs'}/"
            "redis-*.log"
        )
