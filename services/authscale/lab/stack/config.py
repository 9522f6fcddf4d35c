"""What a local stack is started with: its roles' replicas, ports, budgets and server."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authscale.core import servers
from authscale.lab.budgets import CpuBudgets
from authscale.lab.stack import cluster, gateway, rundir, web
from authscale.lab.stack.processes import StackError

#: Where ``authscale up`` keeps its state unless told otherwise.
DEFAULT_RUN_DIR = rundir.DEFAULT_RUN_DIR


#: Role -> the offset of its replicas' ports from the base port. Start order matters: token
#: replicas fetch their keys from an issuer.
ROLE_PORT_OFFSETS = {"session": 0, "issuer": 200, "token": 100}

DEMO_USER = ("admin", "password123")
DEV_ORIGIN = web.origin(web.DEFAULT_PORT)


@dataclass(frozen=True)
class StackConfig:
    run_dir: Path = DEFAULT_RUN_DIR
    #: Replicas per role; a role missing here gets none.
    replicas: Mapping[str, int] = field(
        default_factory=lambda: {"session": 2, "token": 2, "issuer": 1}
    )
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    #: The single Redis's port; with shards, the cluster's nodes count up from it.
    redis_port: int = 6390
    #: 0: one Redis. N (1 or more): a Redis Cluster of N masters with a replica each.
    redis_shards: int = 0
    #: Replica ports count up from here (session +1.., token +101.., issuer +201..);
    #: ``None`` picks free ports, as the tests do.
    base_port: int | None = 8100
    login_rate: str = "10r/s"
    login_burst: int = 20
    demo_user: bool = True
    cors_origins: tuple[str, ...] = (DEV_ORIGIN,)
    #: Where the tutorial's page is served (its origin joins the CORS allow-list); ``None``
    #: serves none, as the tests and experiments that need no browser do.
    web_port: int | None = None
    redis_maxmemory: str = "256mb"
    #: AUTHSCALE_* settings for every replica, on top of the caller's environment.
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout: float = 30.0
    #: The ASGI server of every replica (authscale.core.servers).
    server: str = servers.DEFAULT_SERVER
    #: A CPU budget per process (:mod:`.budgets`), or ``None``: every process shares the machine.
    cpu_budgets: CpuBudgets | None = None

    def __post_init__(self) -> None:
        cluster.check_shards(self.redis_shards)
        if self.server not in servers.SERVERS:
            raise StackError(
                f"unknown server {self.server!r}; servers are {', '.join(servers.SERVERS)}"
            )
        for role, count in self.replicas.items():
            if role not in ROLE_PORT_OFFSETS:
                raise StackError(f"unknown role {role!r}; roles are {', '.join(ROLE_PORT_OFFSETS)}")
            if count < 0:
                raise StackError(f"replica count for {role} must be 0 or more, got {count}")


def gateway_config(
    config: StackConfig, run_dir: Path, upstreams: Mapping[str, Sequence[str]]
) -> gateway.GatewayConfig:
    """The gateway of a local stack: everything in its run directory, one worker."""
    return gateway.GatewayConfig(
        listen=f"{config.host}:{config.gateway_port}",
        upstreams=upstreams,
        pid_file=str(run_dir / "gateway" / "nginx.pid"),
        error_log=str(run_dir / "logs" / "gateway-error.log"),
        access_log=str(run_dir / "logs" / "gateway-access.log"),
        temp_dir=str(run_dir / "gateway" / "temp"),
        login_rate=config.login_rate,
        login_burst=config.login_burst,
        worker_processes="1",
        # nginx started as root hands its workers to an unprivileged user.
        user="nobody nogroup" if os.geteuid() == 0 else None,
    )
