"""One bench measurement, and the cores it was measured on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from authscale.lab.bench.wrk import WrkResult


@dataclass(frozen=True)
class Layout:
    """Which cores the replica, the generator, and the rest (nginx, Redis, issuer) may use."""

    replica: frozenset[int]
    generator: frozenset[int]
    rest: frozenset[int]
    note: str

    @classmethod
    def for_cpus(cls, cpus: Sequence[int]) -> Layout:
        if len(cpus) < 2:
            everything = frozenset(cpus)
            note = "one core: replica and generator share it, the ratio is only indicative"
            return cls(everything, everything, everything, note)
        replica, generator = frozenset(cpus[-1:]), frozenset(cpus[:1])
        rest = frozenset(cpus[1:-1]) or generator
        where = "its own" if rest != generator else "the generator's"
        note = (
            f"replica on core {cpus[-1]}, wrk on core {cpus[0]}, "
            f"nginx and Redis on {where} core(s) {sorted(rest)}"
        )
        return cls(replica, generator, rest, note)


@dataclass(frozen=True)
class Measurement:
    mode: str
    route: str
    path: str
    round: int
    result: WrkResult
    #: Fractions of one core over the run: the replica, and nginx + Redis beside wrk.
    replica_cpu: float
    rest_cpu: float
    #: CPU seconds the replica spent per answered request: the rate a saturated replica reaches
    #: is its inverse, whatever share of the core a neighbour took.
    replica_cpu_per_request: float
    #: What other processes (not ours) used of the replica's core: a shared machine's noise.
    neighbours_cpu: float = 0.0
    #: The ASGI server of the replica (authscale.core.servers).
    server: str = "hypercorn"
