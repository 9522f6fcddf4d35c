"""A fault scenario's stack on compose.yaml: one container per replica, broken the Docker way.

Each scenario gets a compose project of its own (``authscale-faults-<scenario>``) with its own
Redis password, data volume and signing keys, removed with ``down -v`` afterwards. The pieces are
the experiment's (:class:`~authscale.lab.compose.backend.ComposeBackend`): the same checks, image,
environment and teardown. Locust runs on the host against the gateway published on 127.0.0.1.

How each fault is done: a crash is ``docker kill -s KILL``; a graceful stop is ``docker stop``
(SIGTERM, then compose.yaml's grace period); either is undone by ``docker start`` of the same
container, which keeps its volumes (Redis's append-only file). Replicas are reached directly on
the project's own networks (the host routes to every bridge Docker made for it), the way the
local stack's replicas are reached on their loopback ports.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from authscale.lab.compose import engine as docker_engine
from authscale.lab.compose.backend import READY_TIMEOUT, ComposeBackend, answers
from authscale.lab.faults.stack import ROLES, role_of
from authscale.lab.measure import cgroups
from authscale.lab.stack import gateway
from authscale.lab.stack.processes import StackError, free_port

PROJECT_PREFIX = "authscale-faults"
#: compose.yaml's stop_grace_period: Hypercorn's own graceful timeout (10 s) and a margin.
STOP_TIMEOUT = 15
#: The port every replica serves on inside its container.
REPLICA_PORT = 8000
#: Labels Compose (v1 and v2 alike) puts on each container: the service and its number.
NAME_TEMPLATE = (
    '{{index .Config.Labels "com.docker.compose.service"}}-'
    '{{index .Config.Labels "com.docker.compose.container-number"}} {{.Id}}'
)
SEED = ("authscale", "users", "seed")


class _Plan:
    """What :meth:`ComposeBackend.prepare` reads of an experiment."""

    def __init__(self, env: Mapping[str, str], ready_timeout: float) -> None:
        self.env = env
        self.ready_timeout = ready_timeout
        self.issuer_replicas = 1


class ComposeFaultStack:
    backend = "compose"

    def __init__(
        self,
        project: str,
        run_dir: Path,
        replicas: Mapping[str, int],
        login_limit: tuple[str, int],
        env: Mapping[str, str],
        ready_timeout: float,
    ) -> None:
        self.compose = ComposeBackend(project=project)
        self.run_dir = run_dir
        # Every role starts (the gateway waits for all of them); those not asked for idle at one.
        self.scale = {role: replicas.get(role, 1) for role in ROLES}
        self.login_limit = login_limit
        self.env = dict(env)
        self.ready_timeout = max(ready_timeout, READY_TIMEOUT)
        self.notes: list[str] = []
        self.port = 0
        self._ids: dict[str, str] = {}
        #: A stopped replica's address: a stopped container has none to inspect.
        self._before: dict[str, str] = {}
        self._up = False

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        # Checks the settings reach the containers, that Docker answers, removes what an
        # interrupted run left of this project, builds the image (cached) and draws a password.
        self.compose.prepare(_Plan(self.env, self.ready_timeout))
        self._up = True
        config = self.run_dir / "gateway" / "compose-faults.conf"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(gateway.render(gateway.compose_config(*self.login_limit)))
        config.chmod(0o644)  # nginx reads it as uid 101
        self.port = free_port()
        self.compose.env = {
            **self.compose.base_env,
            "AUTHSCALE_GATEWAY_PORT": str(self.port),
            "AUTHSCALE_GATEWAY_CONFIG": str(config.resolve()),
        }
        scale = [arg for role, n in self.scale.items() for arg in ("--scale", f"{role}={n}")]
        self.compose.compose("up", "-d", *scale, what=f"{self.compose.project}: compose up")
        self._wait_ready()
        lines = docker_engine.inspect(self.compose.ids(), NAME_TEMPLATE)
        self._ids = dict(line.split(" ", 1) for line in lines)
        # One Redis, one gateway: named by their role alone, as on the local stack.
        for single in ("redis", "gateway"):
            self._ids[single] = self._ids.pop(f"{single}-1")

    def down(self) -> None:
        if self._up:
            self.compose.down(self.run_dir / "compose.log")
            self._up = False

    def seed(self, count: int) -> None:
        docker_engine.run(
            ["docker", "exec", self._id("session-1"), *SEED, "--count", str(count)],
            what="seeding the accounts",
        )

    def replicas(self, role: str | None = None) -> dict[str, str]:
        names = sorted(
            (name for name in self._ids if role_of(name) in ROLES),
            key=lambda name: (ROLES.index(role_of(name)), int(name.rsplit("-", 1)[1])),
        )
        return {
            name: f"http://{self._address(name)}:{REPLICA_PORT}"
            for name in names
            if role is None or role_of(name) == role
        }

    def kill(self, name: str) -> None:
        self._remember_address(name)
        docker_engine.run(["docker", "kill", "-s", "KILL", self._id(name)], what=f"killing {name}")
        self._wait_stopped(name)

    def stop(self, name: str) -> None:
        self._remember_address(name)
        docker_engine.run(
            ["docker", "stop", "-t", str(STOP_TIMEOUT), self._id(name)], what=f"stopping {name}"
        )

    def start(self, name: str) -> None:
        before = self._before.pop(name, "")
        docker_engine.run(["docker", "start", self._id(name)], what=f"starting {name}")
        deadline = time.monotonic() + self.ready_timeout
        ready = self._redis_answers if name == "redis" else lambda: self._replica_ready(name)
        while not ready():
            if time.monotonic() > deadline:
                raise StackError(f"{name} was not ready {self.ready_timeout:.0f} s after start")
            time.sleep(0.1)
        if before and self._address(name) != before:
            # nginx resolved the old address at its last reload and keeps it until the next.
            self._reload_gateway()
            self.notes.append(
                f"{name} came back on a new address; the gateway was reloaded "
                "(deploy/compose-scale.sh), as an operator would."
            )

    def rotate_keys(self, activation_delay: float) -> None:
        # The keyring lives in the project's signing-keys volume, which the issuers share.
        delay = f"AUTHSCALE_KEY_ACTIVATION_DELAY={activation_delay:g}"
        docker_engine.run(
            ["docker", "exec", "-e", delay, self._id("issuer-1"), "authscale", "keys", "rotate"],
            what="rotating the signing keys",
        )

    def memory(self) -> dict[str, int]:
        found = {}
        for name, identifier in self._ids.items():
            pid = int(docker_engine.inspect([identifier], "{{.State.Pid}}")[0])
            if pid > 0:
                found[name] = cgroups.process_memory(pid).bytes()
        return found

    # -- steps -------------------------------------------------------------------------------

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        urls = [f"{self.gateway_url}/{role}/ping" for role in ("session", "token")]
        while time.monotonic() < deadline:
            if self.compose.all_healthy() and all(answers(url) for url in urls):
                return
            time.sleep(1)
        raise StackError(
            f"{self.compose.project}: the stack never got ready within "
            f"{self.ready_timeout:.0f} s (every container healthy, {', '.join(urls)} answering)"
        )

    def _id(self, name: str) -> str:
        try:
            return self._ids[name]
        except KeyError:
            raise StackError(f"{self.compose.project} has no container {name}") from None

    def _address(self, name: str) -> str:
        template = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        addresses = docker_engine.inspect([self._id(name)], template)
        found = addresses[0].split() if addresses else []
        if not found:
            raise StackError(f"{name} has no address on the project's networks (not running?)")
        return found[0]

    def _remember_address(self, name: str) -> None:
        if role_of(name) in ROLES:
            self._before[name] = self._address(name)

    def _wait_stopped(self, name: str) -> None:
        deadline = time.monotonic() + 30
        while docker_engine.inspect([self._id(name)], "{{.State.Running}}") == ["true"]:
            if time.monotonic() > deadline:
                raise StackError(f"{name} still runs 30 s after docker kill")
            time.sleep(0.1)

    def _replica_ready(self, name: str) -> bool:
        try:
            return answers(f"http://{self._address(name)}:{REPLICA_PORT}/readyz")
        except StackError:
            return False

    def _redis_answers(self) -> bool:
        # redis-cli reads the password from REDISCLI_AUTH in the container's environment.
        result = docker_engine.run(
            ["docker", "exec", self._id("redis"), "redis-cli", "ping"],
            what="redis-cli ping",
            check=False,
        )
        return result.stdout.strip() == "PONG"

    def _reload_gateway(self) -> None:
        docker_engine.run(
            [str(self.compose.root / "deploy" / "compose-scale.sh")],
            what="reloading the gateway",
            env=self.compose.env,
        )
