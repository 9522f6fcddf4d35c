"""The seam between a lab run and what runs its stack: one protocol, local and compose behind it.

A run describes the stack it wants (:class:`StackPlan`); a :class:`Backend` brings it up and
hands back a :class:`Stack` the run can seed, sample, and break: kill, stop and start a replica,
rotate the signing keys, read memory. The scaling experiment uses the first half, the fault
scenarios all of it, the bench the local implementation only. Implementations:
:mod:`authscale.lab.stack.backend` (processes on loopback) and :mod:`authscale.lab.compose.backend`
(a compose project on Docker).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from authscale.core.servers import DEFAULT_SERVER
from authscale.lab.budgets import CpuBudgets
from authscale.lab.measure.cpu import CpuSample

#: CPU seconds per component so far, and Redis's command counters, at one moment.
Sample = tuple[CpuSample, dict[str, int]]
#: The gateway's login limit under load: every simulated user logs in from one address at once.
LOAD_LOGIN_LIMIT = ("100000r/s", 100000)
#: The roles that run as replicas (Redis and the gateway are one of each).
ROLES = ("session", "token", "issuer")


def role_of(name: str) -> str:
    """``session-2`` -> ``session``."""
    return name.rsplit("-", 1)[0]


@dataclass(frozen=True)
class StackPlan:
    """One stack to bring up: its replicas, settings, gateway limit, and where it writes."""

    #: Names the stack in errors and logs (``session x2``, ``redis-outage``).
    label: str
    replicas: Mapping[str, int]
    run_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    login_limit: tuple[str, int] = LOAD_LOGIN_LIMIT
    ready_timeout: float = 60.0
    #: Plans of one family may share a stack that is only rescaled between them (compose: one
    #: project per family, named ``<project>-<family>``); the local backend starts each afresh.
    family: str = "stack"
    #: The ASGI server of every replica, one of authscale.core.servers.SERVERS.
    server: str = DEFAULT_SERVER
    #: 0: one Redis. N (1 or more): a Redis Cluster of N masters with a replica each (the
    #: failover scenario's 3: fewer cannot fail over); the local backend only.
    redis_shards: int = 0
    #: A CPU budget per component (:mod:`authscale.lab.budgets`); ``None``: none.
    cpu_budgets: CpuBudgets | None = None


class Stack(Protocol):
    """A running stack. Names are the replicas' own: ``session-1``, ``token-2``, ``redis``."""

    #: ``local`` or ``compose``: the report says which.
    backend: str
    #: What the stack had to do beyond the plan, for the report.
    notes: list[str]

    @property
    def gateway_url(self) -> str: ...

    def seed(self, count: int) -> None:
        """Create (or reset) the load-test accounts loaduser0..loaduser{count-1}."""

    def sample(self, locust_pid: int) -> Sample:
        """CPU so far of every component (Locust's process tree included) and Redis's calls."""

    def replicas(self, role: str | None = None) -> dict[str, str]:
        """Replica name -> its own URL (not through the gateway), in start order."""

    def kill(self, name: str) -> None:
        """Kill at once (SIGKILL), as a crash or an OOM kill does."""

    def stop(self, name: str) -> None:
        """Stop gracefully (SIGTERM): in-flight requests finish."""

    def start(self, name: str) -> None:
        """Start again what ``kill`` or ``stop`` ended; returns once it is ready."""

    def rotate_keys(self, activation_delay: float) -> None:
        """Publish a new signing key that signs after ``activation_delay`` seconds."""

    def memory(self) -> dict[str, int]:
        """Resident bytes of every running component, by name."""


class Backend(Protocol):
    name: str
    #: Roughly how long bringing a stack up and down takes, for the progress estimate.
    overhead_seconds: float

    def describe(self) -> str:
        """One line for the report: what ran the stack."""

    def prepare(self, env: Mapping[str, str]) -> None:
        """Check what the backend needs (``env`` must reach the replicas); build what it builds."""

    def stack(self, plan: StackPlan) -> AbstractContextManager[Stack]:
        """The plan's stack, ready; stopped on leaving, or kept for the next plan of its family."""

    def close(self) -> None:
        """Stop whatever is still running; safe to call more than once."""
