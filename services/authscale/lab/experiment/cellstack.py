"""Where an experiment's cells run: the seam between the experiment and a backend.

A *backend* brings up a stack for each cell, seeds its accounts, and reads what every
component has spent so far; the experiment does the rest (Locust, the window, the report) the
same way whatever runs the stack. The local backend starts processes on loopback
(:class:`authscale.lab.stack.local.LocalStack`); the compose backend lives in
:mod:`authscale.lab.compose.backend`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from authscale.core.settings import PasswordSettings, RedisSettings
from authscale.core.storage import RedisStore
from authscale.lab.experiment.cells import Cell
from authscale.lab.measure import commandstats, cpu
from authscale.lab.stack.local import LocalStack, StackConfig
from authscale.lab.stack.processes import StackError, free_port
from authscale.login.command import seed_users
from authscale.login.passwords import Passwords

#: CPU seconds per component so far, and Redis's command counters, at one moment.
Sample = tuple[cpu.CpuSample, dict[str, int]]
#: Where the gateway lets the load generator log every simulated user in at once.
LOGIN_RATE = "100000r/s"
LOGIN_BURST = 100000


class CellStack(Protocol):
    """A running stack serving one cell."""

    @property
    def gateway_url(self) -> str: ...

    def seed(self, users: int) -> None:
        """Create (or reset) the accounts loaduser0..loaduser{users-1}."""

    def sample(self, locust_pid: int) -> Sample:
        """CPU so far of every component (Locust's process tree included) and Redis's calls."""


class StackPlan(Protocol):
    """What a backend needs to know of the experiment."""

    @property
    def issuer_replicas(self) -> int: ...

    @property
    def ready_timeout(self) -> float: ...

    @property
    def env(self) -> Mapping[str, str]: ...


class Backend(Protocol):
    name: str
    #: Roughly how long bringing a cell's stack up and down takes, for the progress estimate.
    overhead_seconds: float

    def describe(self) -> str:
        """One line for the report: what ran the stack."""

    def prepare(self, plan: StackPlan) -> None:
        """Check what the backend needs and build what it builds once per experiment."""

    def stack(self, plan: StackPlan, cell: Cell, out: Path) -> AbstractContextManager[CellStack]:
        """The cell's stack, ready; stopped (or handed to the next cell) on leaving."""

    def close(self) -> None:
        """Stop whatever is still running; safe to call more than once."""


class LocalCell:
    """A :class:`LocalStack` as a cell's stack: CPU from /proc, Redis over loopback."""

    def __init__(self, local: LocalStack) -> None:
        self.local = local

    @property
    def gateway_url(self) -> str:
        return self.local.gateway_url

    def seed(self, users: int) -> None:
        asyncio.run(seed_accounts(self.local.redis_url, users))

    def sample(self, locust_pid: int) -> Sample:
        components: dict[str, list[int]] = {}
        for running in self.local.running.values():
            components.setdefault(running.spec.role, []).append(running.pid)
        components["locust"] = [locust_pid]
        return cpu.sample(components, time.time()), commandstats.read(self.local.redis_url)


class LocalBackend:
    """A fresh local stack per cell: redis-server, Hypercorn replicas and nginx on loopback."""

    name = "local"
    overhead_seconds = 12.0

    def describe(self) -> str:
        return "local (fresh per cell): redis-server, Hypercorn replicas, nginx, loopback"

    def prepare(self, plan: StackPlan) -> None:
        return None

    @contextmanager
    def stack(self, plan: StackPlan, cell: Cell, out: Path) -> Iterator[CellStack]:
        local = LocalStack(
            StackConfig(
                run_dir=out / "stacks" / cell.slug,
                replicas=cell.stack_replicas(plan.issuer_replicas),
                gateway_port=free_port(),
                redis_port=free_port(),
                base_port=None,
                login_rate=LOGIN_RATE,
                login_burst=LOGIN_BURST,
                demo_user=False,
                env={"AUTHSCALE_LOG_LEVEL": "WARNING", **plan.env, **cell.variant.env},
                ready_timeout=plan.ready_timeout,
            )
        )
        try:
            local.start()
        except StackError as error:
            raise StackError(f"{cell.label}: the stack never got ready: {error}") from error
        try:
            yield LocalCell(local)
        finally:
            local.stop()
            # Logs stay for reading; the signing keys and Redis's data (password included) go.
            for secret in ("keys", "redis"):
                shutil.rmtree(local.run_dir / secret, ignore_errors=True)

    def close(self) -> None:
        return None


async def seed_accounts(redis_url: str, count: int) -> None:
    """Seed ``count`` load-test accounts straight into a stack's Redis."""
    store = RedisStore(RedisSettings(url=redis_url, timeout=10))
    passwords = Passwords(PasswordSettings(), workers=1)
    store.open()
    try:
        await seed_users(store, passwords, count)
    finally:
        passwords.close()
        await store.close()
