"""The experiment on compose.yaml: one container per replica, the gateway reloaded on scaling.

Per variant a fresh compose project (its own Redis password, data and keys) comes up with the
variant's settings and the gateway's login limit lifted; per replica count
``deploy/compose-scale.sh`` scales the variant's role and reloads nginx, exactly as an operator
would. Locust runs on the host against the published gateway on 127.0.0.1. CPU comes from each
container's control group (:mod:`authscale.lab.measure.cgroups`), Locust's from /proc, Redis's
counters from
``redis-cli`` inside the Redis container. Everything started is brought down with ``down -v``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from authscale.lab.compose import engine as docker_engine
from authscale.lab.experiment.cells import Cell
from authscale.lab.experiment.cellstack import LOGIN_BURST, LOGIN_RATE, CellStack, Sample, StackPlan
from authscale.lab.measure import cgroups, cpu
from authscale.lab.stack import gateway
from authscale.lab.stack.processes import StackError, free_port
from authscale.lab.stack.redis_cli import RedisCli

#: The checkout this package runs from (services/authscale/lab/compose/ is four levels down): the
#: compose backend builds from its compose.yaml and deploy/, which no wheel ships.
ROOT = Path(__file__).resolve().parents[4]
PROJECT = "authscale-exp"
#: A bound that proves "does not hang": a stack coming up on a busy machine.
READY_TIMEOUT = 300.0


class ComposeCell:
    """A scaled compose project serving one cell."""

    def __init__(
        self,
        gateway_url: str,
        counters: Mapping[str, Sequence[cgroups.CpuCounter]],
        proxies: Sequence[int],
        redis: RedisCli,
        seed_command: Sequence[str],
    ) -> None:
        self._gateway_url = gateway_url
        self.counters = counters
        self.proxies = proxies
        self.redis = redis
        self.seed_command = seed_command

    @property
    def gateway_url(self) -> str:
        return self._gateway_url

    def seed(self, users: int) -> None:
        docker_engine.run([*self.seed_command, "--count", str(users)], what="seeding the accounts")

    def sample(self, locust_pid: int) -> Sample:
        components = {
            name: sum(counter.seconds() for counter in counters)
            for name, counters in self.counters.items()
        }
        components["gateway"] = components.get("gateway", 0.0) + sum(
            cpu.tree_cpu_seconds(pid) for pid in self.proxies
        )
        components["locust"] = cpu.tree_cpu_seconds(locust_pid)
        busy, total = cpu.machine_busy_seconds()
        usage = cpu.CpuSample(time.time(), components, busy, total)
        return usage, self.redis.commandstats()


class ComposeBackend:
    """compose.yaml on the local Docker engine; one project per variant, scaled per cell."""

    name = "compose"
    overhead_seconds = 40.0

    def __init__(self, project: str = PROJECT, root: Path = ROOT) -> None:
        self.project = project
        self.root = root
        self.program: list[str] = []
        #: The environment of every compose command; each variant adds its own to ``base_env``.
        self.base_env: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.variant: str | None = None
        self.logs: Path | None = None
        self.port = 0

    def describe(self) -> str:
        version = docker_engine.output([*self.program, "version", "--short"]).strip()
        engine = docker_engine.output(["docker", "version", "-f", "{{.Server.Version}}"]).strip()
        return (
            f"compose ({' '.join(self.program)} {version}, Docker engine {engine}; project "
            f"{self.project}, fresh per variant, scaled per cell with deploy/compose-scale.sh); "
            "CPU from each container's cgroup, docker-proxy counted with the gateway"
        )

    def prepare(self, plan: StackPlan) -> None:
        if not (self.root / "compose.yaml").is_file():
            raise StackError(
                f"the compose backend needs a checkout of the repository (no compose.yaml in "
                f"{self.root}); run it from a clone, or use the local backend"
            )
        text = (self.root / "compose.yaml").read_text()
        unread = [key for key in plan.env if "${" + key not in text]
        if unread:
            raise StackError(
                f"compose.yaml does not pass {', '.join(unread)} to the containers; "
                "set only variables it reads (see .env.example)"
            )
        problem = docker_engine.missing_engine()
        if problem is not None:
            raise StackError(f"the compose backend needs Docker: {problem}")
        program = docker_engine.compose_program()
        assert program is not None  # missing_engine said so
        self.program = program
        wheels = any((self.root / "deploy" / "wheels").glob("*.whl"))
        self.base_env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "COMPOSE_FILE": str(self.root / "compose.yaml"),
            "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24),
            "AUTHSCALE_COOKIE_SECURE": "false",
            "AUTHSCALE_DEMO_USER": "false",
            "AUTHSCALE_GATEWAY_BIND": "127.0.0.1",
            "AUTHSCALE_LOG_LEVEL": "WARNING",
            "AUTHSCALE_TOKEN_DENYLIST": "false",
            # Offline when asked to, or when deploy/prepare-docker.sh left wheels for it.
            "AUTHSCALE_BUILD_OFFLINE": os.environ.get("AUTHSCALE_BUILD_OFFLINE")
            or ("1" if wheels else ""),
            **plan.env,
        }
        self.env = dict(self.base_env)
        # Whatever an interrupted run left of this project goes first.
        self.compose("down", "-v", "--remove-orphans", check=False)
        # One image serves every role; the build is cached between runs.
        self.compose("build", "session", what="building the image")

    @contextmanager
    def stack(self, plan: StackPlan, cell: Cell, out: Path) -> Iterator[CellStack]:
        redis: RedisCli | None = None
        try:
            if self.variant != cell.variant.name:
                self.close()
                self._up(plan, cell, out)
            self._scale(cell.stack_replicas(plan.issuer_replicas))
            self._wait_ready(cell, max(plan.ready_timeout, READY_TIMEOUT))
            redis = RedisCli(["docker", "exec", "-i", self.ids("redis")[0], "redis-cli"])
            yield ComposeCell(
                f"http://127.0.0.1:{self.port}",
                self._counters(set(cell.stack_replicas(plan.issuer_replicas))),
                docker_engine.proxy_pids(self.port),
                redis,
                ["docker", "exec", self.ids(cell.variant.role)[0], "authscale", "users", "seed"],
            )
        except BaseException:
            # A failed cell leaves nothing running; a finished one hands its stack on.
            self.close()
            raise
        finally:
            if redis is not None:
                redis.close()

    def close(self) -> None:
        if self.variant is None:
            return
        self.down(self.logs)
        self.variant = None

    def down(self, logs: Path | None) -> None:
        """Keep the end of every container's log in ``logs``; remove containers and volumes."""
        if logs is not None:
            logs.parent.mkdir(parents=True, exist_ok=True)
            # The gateway logs every request: the last lines of each container are enough.
            tail = self.compose("logs", "--no-color", "--tail", "200", check=False).stdout
            logs.write_text(tail)
        self.compose("down", "-v", "--remove-orphans", check=False)

    # -- steps -------------------------------------------------------------------------------

    def _up(self, plan: StackPlan, cell: Cell, out: Path) -> None:
        config = out / "gateway" / "compose-load.conf"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(gateway.render(gateway.compose_config(LOGIN_RATE, LOGIN_BURST)))
        config.chmod(0o644)  # nginx reads it as uid 101
        self.port = free_port()
        self.env = {
            **self.base_env,
            "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24),
            "AUTHSCALE_GATEWAY_PORT": str(self.port),
            "AUTHSCALE_GATEWAY_CONFIG": str(config.resolve()),
            **cell.variant.env,
        }
        self.variant = cell.variant.name
        self.logs = out / "stacks" / cell.variant.name / "compose.log"
        issuers = plan.issuer_replicas if cell.variant.role == "token" else 1
        # Every role starts: the gateway waits for all of them. The other variant's role idles
        # at one replica, outside the cell's components (its CPU lands in "others").
        scale = ["--scale", "session=1", "--scale", "token=1", "--scale", f"issuer={issuers}"]
        self.compose("up", "-d", *scale, what=f"{cell.label}: compose up")

    def _scale(self, replicas: Mapping[str, int]) -> None:
        # The issuer is named too: `up token` would otherwise bring the token replicas'
        # dependency back to compose.yaml's count.
        pairs = [f"{role}={count}" for role, count in replicas.items()]
        docker_engine.run(
            [str(self.root / "deploy" / "compose-scale.sh"), *pairs],
            what=f"deploy/compose-scale.sh {' '.join(pairs)}",
            env=self.env,
        )
        for role, count in replicas.items():
            running = len(self.ids(role))
            if running != count:
                raise StackError(f"{role} has {running} containers after scaling to {count}")

    def _wait_ready(self, cell: Cell, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/{cell.variant.role}/ping"
        while time.monotonic() < deadline:
            if self.all_healthy() and answers(url):
                return
            time.sleep(1)
        tail = "\n".join(self.compose("logs", "--no-color", check=False).stdout.splitlines()[-30:])
        raise StackError(
            f"{cell.label}: the stack never got ready within {timeout:.0f} s "
            f"(every container healthy, {url} answering 200); recent logs:\n{tail}"
        )

    def all_healthy(self) -> bool:
        states = docker_engine.inspect(self.ids(), "{{.State.Status}} {{.State.Health.Status}}")
        running = [state for state in states if state.startswith("running")]
        return bool(running) and all(state == "running healthy" for state in running)

    def _counters(self, roles: set[str]) -> dict[str, list[cgroups.CpuCounter]]:
        """The CPU counters of the cell's containers: its roles, Redis and the gateway."""
        wanted = roles | {"redis", "gateway"}
        counters: dict[str, list[cgroups.CpuCounter]] = {name: [] for name in sorted(wanted)}
        for line in docker_engine.inspect(self.ids(), "{{.State.Pid}} {{json .Config.Labels}}"):
            pid, _, labels = line.partition(" ")
            component = cgroups.component_of(json.loads(labels))
            if component in wanted and int(pid) > 0:
                counters[component].append(cgroups.process_counter(int(pid)))
        return counters

    def ids(self, service: str | None = None) -> list[str]:
        ids = self.compose("ps", "-q", *([service] if service else [])).stdout.split()
        if service and not ids:
            raise StackError(f"compose project {self.project} has no {service} container")
        return ids

    def compose(
        self, *args: str, check: bool = True, what: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.program, *args]
        what = what or f"compose {args[0]}"
        return docker_engine.run(argv, what=what, env=self.env, check=check, cwd=self.root)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
