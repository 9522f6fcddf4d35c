"""What the state-growth run is asked and what it found; its targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authscale.core.servers import DEFAULT_SERVER
from authscale.lab.stack.cluster import check_shards
from authscale.lab.stack.processes import StackError

#: The targets the run is held to: a session with its index entry (one more session of a
#: signed-in user: the session and its index entry, not the index's own key), and how far the
#: session lookup's cost may move from the smallest size to the largest (the dashboard/ping
#: ratio, measured side by side: the machine's speed cancels out of it).
SESSION_BYTES_TARGET = 300
LATENCY_DRIFT_TARGET = 0.10


@dataclass(frozen=True)
class GrowthConfig:
    sizes: Sequence[int] = (1_000, 10_000, 100_000, 1_000_000)
    #: 0 is one Redis; 1 or more a Redis Cluster of that many masters.
    shards: Sequence[int] = (0, 3)
    #: Requests per route and size, in ``rounds`` alternating rounds.
    requests: int = 2_000
    rounds: int = 4
    concurrency: int = 16
    redis_maxmemory: str = "4gb"
    server: str = DEFAULT_SERVER
    results_dir: Path = Path("results")
    command: str = "authscale experiment state-growth"

    def __post_init__(self) -> None:
        if not self.sizes or any(b <= a for a, b in zip(self.sizes, self.sizes[1:], strict=False)):
            raise StackError(f"--sizes must rise, e.g. 1000,10000; got {list(self.sizes)}")
        if self.sizes[0] < 1 or self.requests < self.rounds or self.rounds < 1:
            raise StackError("sizes must be 1 or more, and requests at least one per round")
        for shards in self.shards:
            check_shards(shards)


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    per_second: float


@dataclass(frozen=True)
class SizeResult:
    shards: int
    size: int
    #: A signed-in user's one session with the user's session index: the session variant's cost.
    bytes_per_session: float
    #: One more session of a user who has one: the session and its entry in the index.
    bytes_per_extra_session: float
    #: A signed-in user's one refresh family with the user's family index: the token variant's.
    bytes_per_family: float
    bytes_per_extra_family: float
    dashboard: Latency
    ping: Latency
    #: Dashboard throughput over ping throughput, measured side by side.
    ratio: float
    keys_per_master: list[int] = field(default_factory=list)
