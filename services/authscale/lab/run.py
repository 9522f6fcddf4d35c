"""What every lab run shares: its configuration, its progress lines, its clock, its backend.

The scaling experiment (:class:`~authscale.lab.experiment.runner.ExperimentConfig`) and the fault
scenarios (:class:`~authscale.lab.faults.config.FaultConfig`) extend :class:`RunConfig` with their
own fields; the command line takes its defaults from these classes, so each number is written
once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from authscale.core.servers import DEFAULT_SERVER, SERVERS
from authscale.lab import load
from authscale.lab.backend import Backend
from authscale.lab.stack.processes import StackError

#: What runs a run's stacks: ``local`` processes on loopback, or ``compose`` (Docker).
BACKENDS = ("local", "compose")

Progress = Callable[[str], None]

#: Settings of a budgeted run (the scaling experiment and the fault scenarios), docs/scaling.md.
#: A login at the default argon2id cost (19 MiB, 2 passes) takes a second or more of a replica's
#: tenth of a core, and 48 of them overrun the warm-up: a budgeted run seeds and logs in its
#: accounts at 1 MiB and 1 pass (and queues up to 64 logins) instead. Logins happen in the
#: warm-up only, never in the measured window, so this changes nothing measured, only how long
#: the warm-up must be. A tenth of a core makes every step about ten times slower, so the
#: replicas' wait on Redis is stretched by as much (10 s for the default 1 s): a full Redis then
#: queues, as a full Redis on a real machine does, instead of turning the queue into 503s at a
#: tenth of its real depth.
BUDGETED_ENV = {
    "AUTHSCALE_ARGON2_MEMORY_KIB": "1024",
    "AUTHSCALE_ARGON2_TIME_COST": "1",
    "AUTHSCALE_HASHING_QUEUE": "64",
    "AUTHSCALE_REDIS_TIMEOUT": "10",
}


@dataclass(frozen=True)
class RunConfig:
    #: Simulated users (one seeded account each) and seconds of measured load.
    users: int = 48
    seconds: float = 30.0
    results_dir: Path = Path("results")
    locustfile: Path = load.DEFAULT_LOCUSTFILE
    ready_timeout: float = 60.0
    #: AUTHSCALE_* settings for every replica, on top of the stack's own.
    env: Mapping[str, str] = field(default_factory=dict)
    #: How the report says to reproduce it.
    command: str = "authscale experiment"
    backend: str = "local"
    #: The ASGI server of every replica (authscale.core.servers).
    server: str = DEFAULT_SERVER

    def __post_init__(self) -> None:
        if self.server not in SERVERS:
            raise StackError(f"unknown server {self.server}; servers are {', '.join(SERVERS)}")
        if self.backend not in BACKENDS:
            raise StackError(f"unknown backend {self.backend}; backends are {', '.join(BACKENDS)}")
        if self.users < 1 or self.seconds <= 0:
            raise StackError("users must be 1 or more, seconds above 0")


def make_backend(name: str, project: str) -> Backend:
    """The backend ``name``; on compose, every project it starts is named ``<project>-...``."""
    if name == "compose":
        from authscale.lab.compose.backend import ComposeBackend

        return ComposeBackend(project)
    from authscale.lab.stack.backend import LocalBackend

    return LocalBackend()


def results_folder(results_dir: Path, prefix: str = "") -> Path:
    """A fresh folder named after the UTC time: ``results/<prefix><timestamp>``."""
    out = results_dir / (prefix + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def clock(seconds: float) -> str:
    """``75`` -> ``1m15s``: elapsed and remaining time in progress lines."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def elapsed(began: float) -> str:
    """The :func:`clock` of the time since ``began`` (a :func:`time.monotonic` reading)."""
    return clock(time.monotonic() - began)


def say(line: str) -> None:
    """The progress printer of every lab command: a line, at once (runs take minutes)."""
    print(line, flush=True)
