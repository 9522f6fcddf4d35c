"""The local stack without Docker: redis-server, replicas per role on one ASGI server, nginx
as the gateway and, for browsers, the tutorial's page on an origin of its own (:mod:`.web`).

Everything listens on loopback and writes into one run directory: a log file per process, the
Redis append-only file, the rendered gateway config and ``stack.json``, which records the pid
(and the kernel's start time) of every process so ``authscale down`` stops exactly those.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import secrets
import signal
from collections.abc import Callable
from pathlib import Path

from authscale.core import servers
from authscale.core.errors import ConfigError
from authscale.lab import budget_groups, budgets
from authscale.lab.stack import gateway, processes, redis_node, rundir, web
from authscale.lab.stack.cluster import ClusterConfig, LocalCluster
from authscale.lab.stack.config import DEMO_USER, ROLE_PORT_OFFSETS, StackConfig, gateway_config
from authscale.lab.stack.processes import ProcessSpec, Running, StackError
from authscale.lab.stack.redis_node import RedisNode
from authscale.tokens.denylist import ACL_USER


class LocalStack:
    def __init__(self, config: StackConfig, *, die_with_parent: bool = True) -> None:
        self.config = config
        self.run_dir = config.run_dir.resolve()
        self.die_with_parent = die_with_parent
        self.running: dict[str, Running] = {}
        self.specs: dict[str, ProcessSpec] = {}
        self.redis_password = ""
        self.cluster: LocalCluster | None = None
        self.budget_driver: budget_groups.Driver | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://{self.config.host}:{self.config.gateway_port}"

    @property
    def web_url(self) -> str | None:
        return web.origin(self.config.web_port) if self.config.web_port else None

    @property
    def redis_url(self) -> str:
        if self.cluster is not None:
            return self.cluster.url()
        return f"redis://:{self.redis_password}@{self.config.host}:{self.config.redis_port}/0"

    @property
    def token_redis_password(self) -> str:
        # Derived one-way: the denylist user's password tells nothing of the full one.
        return hashlib.sha256(f"{ACL_USER}:{self.redis_password}".encode()).hexdigest()[:32]

    @property
    def token_redis_url(self) -> str:
        """The denylist-only Redis user's URL (token replicas in denylist mode)."""
        if self.cluster is not None:
            return self.cluster.token_url
        password = self.token_redis_password
        return f"redis://{ACL_USER}:{password}@{self.config.host}:{self.config.redis_port}/0"

    def replica_urls(self, role: str) -> list[str]:
        return [
            f"http://{self.config.host}:{spec.port}"
            for spec in self.specs.values()
            if spec.role == role
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._check_binaries()
        try:
            servers.check_installed(self.config.server)
        except ConfigError as error:
            raise StackError(str(error)) from error
        self._check_ports()
        for sub in ("logs", "redis", "gateway/temp"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self.redis_password = self._redis_password()
        if self.config.cpu_budgets is not None:
            self.budget_driver = budget_groups.driver(f"{os.getpid()}-{self.run_dir.name}")
        try:
            self._start_redis()
            if self.config.demo_user:
                asyncio.run(self._ensure_demo_user())
            if self.config.replicas.get("issuer"):
                from authscale.tokens.keys.command import ensure_signing_key

                ensure_signing_key(self.run_dir / "keys")
            for role in ROLE_PORT_OFFSETS:
                count = self.config.replicas.get(role, 0)
                self._launch(*(self._replica_spec(role, index) for index in range(1, count + 1)))
            self.write_gateway_config()
            self._launch(self._gateway_spec())
            if self.config.web_port:
                api = web.origin(self.config.gateway_port)
                self._launch(web.spec(self.run_dir, self.config.host, self.config.web_port, api))
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def stop(self) -> None:
        """Gateway first (no new requests), then every replica at once (they drain), Redis last."""
        rundir.stop_in_order([(r.spec.name, r.pid, r.started_ticks) for r in self.running.values()])
        for running in self.running.values():
            running.process.wait()
        self.running.clear()
        if self.budget_driver is not None:
            self.budget_driver.release()
        rundir.forget(self.run_dir)

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        running = self.running.pop(name)
        processes.stop_pid(running.pid, running.started_ticks, sig)
        running.process.wait()
        self._write_state()

    def start_process(self, name: str) -> None:
        if self.cluster is not None and name in self.cluster.specs:
            self.cluster.start_node(name)
        else:
            self._launch(self.specs[name])
        self._write_state()

    def write_gateway_config(self) -> Path:
        upstreams = {
            role: [f"{self.config.host}:{spec.port}" for spec in self._role_specs(role)]
            for role in gateway.UPSTREAM_ROLES
        }
        path = self.run_dir / "gateway" / "nginx.conf"
        path.write_text(gateway.render(gateway_config(self.config, self.run_dir, upstreams)))
        return path

    # -- process specs -----------------------------------------------------------------------

    def _role_specs(self, role: str) -> list[ProcessSpec]:
        return [spec for spec in self.specs.values() if spec.role == role and spec.port]

    def budgeted(self, spec: ProcessSpec) -> tuple[ProcessSpec, Callable[[], None] | None]:
        """``spec`` as it starts inside its CPU budget, and the step that enters it."""
        if (
            self.budget_driver is None
            or self.config.cpu_budgets is None
            or spec.role not in budgets.BUDGETED
        ):
            return spec, None
        cores = self.config.cpu_budgets.cores(spec.role)
        placement = self.budget_driver.place(spec.name, cores, self.config.cpu_budgets)
        argv = [*placement.argv_prefix, *spec.argv]
        return dataclasses.replace(spec, argv=argv), placement.enter

    def throttling(self) -> dict[str, budget_groups.Throttling]:
        """Per running process, what the kernel reports of its budget (empty without budgets)."""
        if self.budget_driver is None:
            return {}
        return {name: self.budget_driver.throttling(name) for name in self.running}

    def _launch(self, *specs: ProcessSpec) -> None:
        """Start ``specs`` at once, then wait until each is ready: replicas of a role start side
        by side (under small CPU budgets a replica takes seconds to import and bind)."""
        started = []
        for spec in specs:
            self.specs[spec.name] = spec
            budgeted, enter = self.budgeted(spec)
            running = processes.start(budgeted, die_with_parent=self.die_with_parent, enter=enter)
            self.running[spec.name] = running
            started.append(running)
        host, port, password = self.config.host, self.config.redis_port, self.redis_password
        for running in started:
            probe = None
            if running.spec.role == "redis":
                probe = lambda: redis_node.answers(host, port, password)  # noqa: E731
            processes.wait_ready(running, self.config.ready_timeout, probe)

    def _port(self, offset: int) -> int:
        if self.config.base_port is None:
            return processes.free_port(self.config.host)
        return self.config.base_port + offset

    def _start_redis(self) -> None:
        if not self.config.redis_shards:
            self._launch(self._redis_spec())
            return
        ports = range(self.config.redis_port, self.config.redis_port + 2 * self.config.redis_shards)
        self.cluster = LocalCluster(
            ClusterConfig(
                run_dir=self.run_dir,
                ports=list(ports),
                password=self.redis_password,
                token_password=self.token_redis_password,
                host=self.config.host,
                maxmemory=self.config.redis_maxmemory,
                ready_timeout=self.config.ready_timeout,
                extra=self._redis_lines(),
            ),
            die_with_parent=self.die_with_parent,
            budgeted=self.budgeted,
            # The stack's own table: state, `authscale down` and samples see every node.
            running=self.running,
        )
        self.cluster.start()

    def _redis_spec(self) -> ProcessSpec:
        log = self.run_dir / "logs" / "redis.log"
        node = RedisNode(
            "redis", self.config.host, self.config.redis_port, self.run_dir / "redis", log
        )
        return redis_node.spec(
            node,
            password=self.redis_password,
            token_password=self.token_redis_password,
            maxmemory=self.config.redis_maxmemory,
            extra=self._redis_lines(),
        )

    def _redis_lines(self) -> tuple[str, ...]:
        return budgets.REDIS_LINES if self.config.cpu_budgets is not None else ()

    def _replica_spec(self, role: str, index: int) -> ProcessSpec:
        port = self._port(ROLE_PORT_OFFSETS[role] + index)
        name = f"{role}-{index}"
        return ProcessSpec(
            name=name,
            role=role,
            # `authscale serve` becomes the server (exec): the pid recorded is the replica's.
            argv=servers.command_line(self.config.server, role, self.config.host, port),
            env=self._replica_env(role, name),
            log_file=self.run_dir / "logs" / f"{name}.log",
            port=port,
            ready_url=f"http://{self.config.host}:{port}/readyz",
        )

    def _replica_env(self, role: str, name: str) -> dict[str, str]:
        env = dict(os.environ)
        # The local stack serves plain HTTP on loopback and says so (see `authscale up`).
        env.setdefault("AUTHSCALE_COOKIE_SECURE", "false")
        origins = dict.fromkeys((*self.config.cors_origins, self.web_url))
        env.setdefault("AUTHSCALE_CORS_ORIGINS", ",".join(o for o in origins if o))
        env.setdefault("AUTHSCALE_TOKEN_ISSUER", f"http://localhost:{self.config.gateway_port}")
        env.setdefault("AUTHSCALE_TOKEN_AUDIENCE", "authscale")
        env.update(self.config.env)
        env["AUTHSCALE_REDIS_URL"] = self.redis_url
        if role == "token":
            env.pop("AUTHSCALE_REDIS_URL")
            if env.get("AUTHSCALE_TOKEN_DENYLIST", "").lower() in {"1", "true", "yes", "on"}:
                env["AUTHSCALE_REDIS_URL"] = self.token_redis_url
        env["AUTHSCALE_REPLICA_ID"] = name
        if role == "issuer":
            env["AUTHSCALE_SIGNING_KEYS_DIR"] = str(self.run_dir / "keys")
        else:
            env.pop("AUTHSCALE_SIGNING_KEYS_DIR", None)
        if role == "token":
            issuer = self._role_specs("issuer")
            if not issuer:
                raise StackError("token replicas need an issuer: start at least one issuer")
            env["AUTHSCALE_JWKS_URL"] = (
                f"http://{self.config.host}:{issuer[0].port}/.well-known/jwks.json"
            )
        return env

    def _gateway_spec(self) -> ProcessSpec:
        prefix = self.run_dir / "gateway"
        return ProcessSpec(
            name="gateway",
            role="gateway",
            argv=[
                processes.binary("nginx"),
                "-p",
                str(prefix),
                "-c",
                str(prefix / "nginx.conf"),
                "-e",
                str(self.run_dir / "logs" / "gateway-error.log"),
                "-g",
                "daemon off;",
            ],
            log_file=self.run_dir / "logs" / "gateway.log",
            port=None,
            ready_url=f"{self.gateway_url}/healthz",
        )

    # -- helpers -----------------------------------------------------------------------------

    def _check_binaries(self) -> None:
        for binary, package in (("redis-server", "redis-server"), ("nginx", "nginx-light")):
            processes.binary(binary, package)

    def _check_ports(self) -> None:
        # A cluster checks its own ports (and their bus ports) as it starts.
        ports = [
            ("gateway", self.config.gateway_port),
            ("web", self.config.web_port),
            *([] if self.config.redis_shards else [("redis", self.config.redis_port)]),
        ]
        for what, port in ports:
            if port and not processes.port_is_free(self.config.host, port):
                raise StackError(
                    f"port {port} ({what}) on {self.config.host} is taken; stop what uses it "
                    f"(is a stack already up? `authscale down`) or choose another with "
                    f"--{what}-port"
                )

    def _redis_password(self) -> str:
        # Kept beside the append-only file: a restarted stack must reopen the same data.
        path = self.run_dir / "redis" / "password"
        if not path.exists():
            path.write_text(secrets.token_hex(24))
            path.chmod(0o600)
        return path.read_text().strip()

    async def _ensure_demo_user(self) -> None:
        from authscale.core.settings import PasswordSettings, RedisSettings
        from authscale.core.storage import RedisStore
        from authscale.login.passwords import Passwords
        from authscale.login.users import UserExists, Users

        store = RedisStore(RedisSettings(url=self.redis_url, timeout=5))
        passwords = Passwords(PasswordSettings(), workers=1)
        store.open()
        try:
            await Users(store, passwords).add(*DEMO_USER)
        except UserExists:
            pass
        finally:
            passwords.close()
            await store.close()

    def _write_state(self) -> None:
        rundir.write_state(
            self.run_dir,
            gateway_url=self.gateway_url,
            redis_url=self.redis_url,
            processes=[(r.spec.name, r.pid, r.started_ticks) for r in self.running.values()],
            cpu_groups=self.budget_driver.groups() if self.budget_driver else (),
        )
