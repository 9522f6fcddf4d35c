"""What a fault scenario drives: a stack it can break and repair, local processes or compose.

The scenarios speak only this small interface, so each runs unchanged on local processes
(:class:`LocalFaultStack`) and on compose containers (:mod:`authscale.lab.faults.compose`). Names
are the replicas' own (``session-1``, ``token-2``, ``redis``); a replica's URL reaches it directly,
not through the gateway, which is what the revocation probes and the readiness waits need.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path
from typing import Protocol

from authscale.lab.experiment.cellstack import seed_accounts
from authscale.lab.measure import cpu
from authscale.lab.stack.local import LocalStack, StackConfig
from authscale.tokens.keys.keyring import Keyring


class FaultStack(Protocol):
    #: ``local`` or ``compose``: the report says which.
    backend: str
    #: What the stack had to do beyond the scenario's plan, for the report.
    notes: list[str]

    @property
    def gateway_url(self) -> str: ...

    def up(self) -> None:
        """Start everything and wait until it is ready."""

    def down(self) -> None:
        """Stop everything and delete its secrets (keys, Redis's data); safe to call twice."""

    def seed(self, count: int) -> None:
        """Create the load-test accounts loaduser0..loaduser{count-1}."""

    def replicas(self, role: str | None = None) -> dict[str, str]:
        """Replica name -> its own URL (not through the gateway), in start order."""

    def kill(self, name: str) -> None:
        """Kill at once (SIGKILL), as a crash or an OOM kill does."""

    def stop(self, name: str) -> None:
        """Stop gracefully (SIGTERM): in-flight requests finish."""

    def start(self, name: str) -> None:
        """Start again what ``kill`` or ``stop`` ended (returns once it was started)."""

    def rotate_keys(self, activation_delay: float) -> None:
        """Publish a new signing key that signs after ``activation_delay`` seconds."""

    def memory(self) -> dict[str, int]:
        """Resident bytes of every running component, by name."""


class LocalFaultStack:
    """The local stack: redis-server, Hypercorn replicas and nginx as processes on loopback."""

    backend = "local"

    def __init__(self, config: StackConfig) -> None:
        self.local = LocalStack(config)
        self.notes: list[str] = []

    @property
    def gateway_url(self) -> str:
        return self.local.gateway_url

    def up(self) -> None:
        self.local.start()

    def down(self) -> None:
        self.local.stop()
        # Logs stay for reading; the signing keys and Redis's data (password included) go.
        for secret in ("keys", "redis"):
            shutil.rmtree(self.local.run_dir / secret, ignore_errors=True)

    def seed(self, count: int) -> None:
        asyncio.run(seed_accounts(self.local.redis_url, count))

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


#: The roles that run as replicas (Redis and the gateway are one of each).
ROLES = ("session", "token", "issuer")


def role_of(name: str) -> str:
    """``session-2`` -> ``session``."""
    return name.rsplit("-", 1)[0]


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
