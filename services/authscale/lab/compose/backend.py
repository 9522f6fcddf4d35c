"""The compose backend: compose.yaml on the local Docker engine, one container per replica.

Each family of plans (a variant of the scaling experiment, a fault scenario) gets a compose
project of its own, ``<project>-<family>``, with its own Redis password, data and keys; plans
of the same family rescale it with ``deploy/compose-scale.sh``, which reloads the gateway, as an
operator would. Locust runs on the host against the gateway published on 127.0.0.1. A plan with
CPU budgets layers an override over compose.yaml (:mod:`authscale.lab.compose.budgets`) that
gives every container of a budgeted service its quota and period, replicas added by scaling
included; a plan with other budgets gets a fresh project. Everything started is brought down
with ``down -v``, keeping the end of the containers' logs.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from authscale.lab.backend import ROLES, StackPlan
from authscale.lab.budgets import CpuBudgets
from authscale.lab.compose import budgets as compose_budgets
from authscale.lab.compose import engine as docker_engine
from authscale.lab.compose.images import stand_in_environ
from authscale.lab.compose.project import Project, answers
from authscale.lab.compose.stack import ComposeStack
from authscale.lab.stack import gateway
from authscale.lab.stack.processes import StackError, free_port

#: The checkout this package runs from (services/authscale/lab/compose/ is four levels down): the
#: compose backend builds from its compose.yaml and deploy/, which no wheel ships.
ROOT = Path(__file__).resolve().parents[4]
#: A bound that proves "does not hang": a stack coming up on a busy machine.
READY_TIMEOUT = 300.0
#: What a running project was brought up for: family, settings, gateway limit, server, budgets.
RunningFor = tuple[str, dict[str, str], tuple[str, int], str, CpuBudgets | None]


def running_for(plan: StackPlan) -> RunningFor:
    """What ``plan`` needs of a project: a plan that differs in any of it needs a fresh one."""
    return (plan.family, dict(plan.env), plan.login_limit, plan.server, plan.cpu_budgets)


class ComposeBackend:
    name = "compose"
    overhead_seconds = 40.0

    def __init__(self, project: str = "authscale-lab", root: Path = ROOT) -> None:
        self.project = project
        self.root = root
        self.program: list[str] = []
        #: The environment of every compose command, before each project adds its own.
        self.base_env: dict[str, str] = {}
        self.running: Project | None = None
        #: What the running project was brought up for (:func:`running_for`).
        self.running_for: RunningFor | None = None
        #: The CPU budgets of every project brought up, in order, once each (None: none).
        self.budgets_used: list[CpuBudgets | None] = []
        self.logs: Path | None = None
        self.port = 0

    def describe(self) -> str:
        version = docker_engine.output([*self.program, "version", "--short"]).strip()
        engine = docker_engine.output(["docker", "version", "-f", "{{.Server.Version}}"]).strip()
        return (
            f"compose ({' '.join(self.program)} {version}, Docker engine {engine}; projects "
            f"{self.project}-*, fresh per variant or scenario, scaled with "
            "deploy/compose-scale.sh); CPU from each container's cgroup, docker-proxy counted "
            f"with the gateway; {self._describe_budgets()}"
        )

    def prepare(self, env: Mapping[str, str]) -> None:
        if not (self.root / "compose.yaml").is_file():
            raise StackError(
                f"the compose backend needs a checkout of the repository (no compose.yaml in "
                f"{self.root}); run it from a clone, or use the local backend"
            )
        self._check_read(env)
        problem = docker_engine.missing_engine()
        if problem is not None:
            raise StackError(f"the compose backend needs Docker: {problem}")
        program = docker_engine.compose_program()
        assert program is not None  # missing_engine said so
        self.program = program
        wheels = any((self.root / "deploy" / "wheels").glob("*.whl"))
        self.base_env = {
            **os.environ,
            # The stand-ins deploy/prepare-docker.sh built, where it ran (their names are local).
            **stand_in_environ(os.environ),
            "COMPOSE_FILE": str(self.root / "compose.yaml"),
            "AUTHSCALE_COOKIE_SECURE": "false",
            "AUTHSCALE_DEMO_USER": "false",
            "AUTHSCALE_GATEWAY_BIND": "127.0.0.1",
            "AUTHSCALE_LOG_LEVEL": "WARNING",
            "AUTHSCALE_TOKEN_DENYLIST": "false",
            # Offline when asked to, or when deploy/prepare-docker.sh left wheels for it.
            "AUTHSCALE_BUILD_OFFLINE": os.environ.get("AUTHSCALE_BUILD_OFFLINE")
            or ("1" if wheels else ""),
        }
        # One image serves every role; the build is cached between runs.
        # docker-compose interpolates the whole file even to build, and compose.yaml requires a
        # Redis password; the build uses none, so a throwaway one does.
        build_env = {**self.base_env, "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24)}
        builder = Project(f"{self.project}-build", self.program, self.root, build_env)
        builder.compose("build", "session", what="building the image")

    @contextmanager
    def stack(self, plan: StackPlan) -> Iterator[ComposeStack]:
        if plan.redis_shards:
            # The cluster profile's nodes are not the backend's to kill one by one.
            raise StackError(f"{plan.label}: a Redis Cluster runs on the local backend only")
        running: ComposeStack | None = None
        try:
            wanted = running_for(plan)
            if self.running is None or self.running_for != wanted:
                self.close()
                self._up(plan)
                self.running_for = wanted
            assert self.running is not None
            self._scale(self.running, plan.replicas)
            timeout = max(plan.ready_timeout, READY_TIMEOUT)
            self._wait_ready(self.running, plan, timeout)
            running = ComposeStack(self.running, self.port, plan.replicas, timeout)
            yield running
        except BaseException:
            # A failed plan leaves nothing running; a finished one may hand its project on.
            self.close()
            raise
        finally:
            if running is not None:
                running.close()

    def close(self) -> None:
        if self.running is None:
            return
        self.running.down(self.logs)
        self.running = None
        self.running_for = None

    # -- steps -------------------------------------------------------------------------------

    def _describe_budgets(self) -> str:
        if all(budgets is None for budgets in self.budgets_used):
            return "no CPU budgets"
        described = [
            budgets.describe() if budgets is not None else "none" for budgets in self.budgets_used
        ]
        return (
            "CPU budgets per container (cpu_quota per cpu_period, compose override): "
            + "; then ".join(described)
        )

    def _check_read(self, env: Mapping[str, str]) -> None:
        text = (self.root / "compose.yaml").read_text()
        unread = [key for key in env if "${" + key not in text]
        if unread:
            raise StackError(
                f"compose.yaml does not pass {', '.join(unread)} to the containers; "
                "set only variables it reads (see .env.example)"
            )

    def _up(self, plan: StackPlan) -> None:
        self._check_read(plan.env)
        config = plan.run_dir / "gateway" / "compose-load.conf"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(gateway.render(gateway.compose_config(*plan.login_limit)))
        config.chmod(0o644)  # nginx reads it as uid 101
        self.port = free_port()
        env = {
            **self.base_env,
            "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24),
            "AUTHSCALE_GATEWAY_PORT": str(self.port),
            "AUTHSCALE_GATEWAY_CONFIG": str(config.resolve()),
            **plan.env,
            "AUTHSCALE_SERVER": plan.server,
        }
        if plan.cpu_budgets is not None:
            # Every compose command of the project reads both files, compose-scale.sh too: a
            # replica added by scaling gets its budget like the first.
            override = compose_budgets.write_override(
                plan.cpu_budgets, plan.run_dir / "compose-budgets.yaml"
            )
            separator = env.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
            env["COMPOSE_FILE"] = f"{env['COMPOSE_FILE']}{separator}{override.resolve()}"
        if plan.cpu_budgets not in self.budgets_used:
            self.budgets_used.append(plan.cpu_budgets)
        project = Project(f"{self.project}-{plan.family}", self.program, self.root, env)
        # Whatever an interrupted run left of this project goes first.
        project.compose("down", "-v", "--remove-orphans", check=False)
        self.running = project
        self.logs = plan.run_dir / "compose.log"
        # Every role starts at one replica (the gateway waits for all of them); the plan's
        # counts come from deploy/compose-scale.sh next, as an operator scales. Roles the plan
        # does not name idle at one, outside its components (their CPU lands in "others").
        scale = [arg for role in ROLES for arg in ("--scale", f"{role}=1")]
        try:
            project.compose("up", "-d", *scale, what=f"{plan.label}: compose up")
        except StackError as error:
            if plan.cpu_budgets is None:
                raise
            raise StackError(f"{error}\n{compose_budgets.TOO_SMALL}") from error

    def _scale(self, project: Project, replicas: Mapping[str, int]) -> None:
        if all(len(project.ids(role)) == count for role, count in replicas.items()):
            return
        # The issuer is named too: `up token` would otherwise bring the token replicas'
        # dependency back to compose.yaml's count.
        project.scale([f"{role}={count}" for role, count in replicas.items()])
        for role, count in replicas.items():
            running = len(project.ids(role))
            if running != count:
                raise StackError(f"{role} has {running} containers after scaling to {count}")

    def _wait_ready(self, project: Project, plan: StackPlan, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        roles = [role for role in ("session", "token") if plan.replicas.get(role)]
        urls = [f"http://127.0.0.1:{self.port}/{role}/ping" for role in roles]
        while time.monotonic() < deadline:
            if project.all_healthy() and all(answers(url) for url in urls):
                return
            time.sleep(1)
        tail = "\n".join(
            project.compose("logs", "--no-color", check=False).stdout.splitlines()[-30:]
        )
        raise StackError(
            f"{plan.label}: the stack never got ready within {timeout:.0f} s "
            f"(every container healthy, {', '.join(urls)} answering 200); recent logs:\n{tail}"
        )
