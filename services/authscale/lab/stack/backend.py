"""The local backend: a fresh :class:`~authscale.lab.stack.local.LocalStack` per plan.

redis-server, replicas (on the plan's server) and nginx run as processes on loopback ports of
their own; CPU comes from /proc, Redis's counters over loopback. On leaving, the stack stops;
its logs stay, its signing keys and Redis's data (password included) go.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from authscale.core.settings import Environ, PasswordSettings, RedisSettings
from authscale.core.storage import RedisStore
from authscale.lab.backend import ROLES, Sample, StackPlan
from authscale.lab.measure import commandstats, cpu
from authscale.lab.stack.cluster import free_block
from authscale.lab.stack.config import StackConfig
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import StackError, free_port
from authscale.login.command import seed_users
from authscale.login.passwords import Passwords
from authscale.tokens.keys.keyring import Keyring

HOST = StackConfig.host


class LocalBackend:
    name = "local"
    overhead_seconds = 12.0

    def describe(self) -> str:
        return "local (fresh per cell): redis-server, replicas, nginx, loopback"

    def prepare(self, env: Mapping[str, str]) -> None:
        return None

    @contextmanager
    def stack(self, plan: StackPlan) -> Iterator[LocalRunning]:
        local = LocalStack(
            StackConfig(
                run_dir=plan.run_dir,
                replicas=plan.replicas,
                gateway_port=free_port(),
                # A cluster's nodes count up from its port, each with a bus port 10000 above.
                redis_port=free_block(HOST, 2 * plan.redis_shards)
                if plan.redis_shards
                else free_port(),
                redis_shards=plan.redis_shards,
                base_port=None,
                login_rate=plan.login_limit[0],
                login_burst=plan.login_limit[1],
                demo_user=False,
                env={"AUTHSCALE_LOG_LEVEL": "WARNING", **plan.env},
                ready_timeout=plan.ready_timeout,
                server=plan.server,
                cpu_budgets=plan.cpu_budgets,
            )
        )
        try:
            local.start()
        except StackError as error:
            raise StackError(f"{plan.label}: the stack never got ready: {error}") from error
        try:
            yield LocalRunning(local)
        finally:
            local.stop()
            for secret in ("keys", "redis"):
                shutil.rmtree(local.run_dir / secret, ignore_errors=True)

    def close(self) -> None:
        return None


class LocalRunning:
    """A started :class:`LocalStack` as a :class:`~authscale.lab.backend.Stack`."""

    backend = "local"

    def __init__(self, local: LocalStack) -> None:
        self.local = local
        self.notes: list[str] = []

    @property
    def gateway_url(self) -> str:
        return self.local.gateway_url

    def seed(self, count: int) -> None:
        # At the argon2id cost the replicas run with: a login then needs no rehash.
        passwords = PasswordSettings.from_environ(Environ(self.local.config.env))
        asyncio.run(seed_accounts(self.local.redis_url, count, passwords))

    def sample(self, locust_pid: int) -> Sample:
        processes = {
            name: (running.spec.role, running.pid) for name, running in self.local.running.items()
        }
        usage = cpu.sample({"locust": [locust_pid]}, time.time(), processes)
        return usage, commandstats.read(self.local.redis_url)

    def replicas(self, role: str | None = None) -> dict[str, str]:
        host = self.local.config.host
        return {
            name: f"http://{host}:{spec.port}"
            for name, spec in self.local.specs.items()
            if spec.role in ROLES and (role is None or spec.role == role)
        }

    def kill(self, name: str) -> None:
        # The whole process group, as a crash or an OOM kill of a container takes everything.
        self.local.stop_process(name, signal.SIGKILL)

    def stop(self, name: str) -> None:
        self.local.stop_process(name, signal.SIGTERM)

    def start(self, name: str) -> None:
        self.local.start_process(name)

    def rotate_keys(self, activation_delay: float) -> None:
        Keyring(self.local.run_dir / "keys").rotate(activation_delay)

    def memory(self) -> dict[str, int]:
        return {name: rss(running.pid) for name, running in self.local.running.items()}


async def seed_accounts(redis_url: str, count: int, cost: PasswordSettings | None = None) -> None:
    """Seed ``count`` load-test accounts straight into a stack's Redis."""
    store = RedisStore(RedisSettings(url=redis_url, timeout=10))
    passwords = Passwords(cost or PasswordSettings(), workers=1)
    store.open()
    try:
        await seed_users(store, passwords, count)
    finally:
        passwords.close()
        await store.close()


def rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every process below it; 0 if it is gone."""
    total = 0
    for each in cpu.descendants(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
