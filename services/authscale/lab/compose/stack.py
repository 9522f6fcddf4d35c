"""A running compose project as a :class:`~authscale.lab.backend.Stack`: one container a replica.

How each fault is done: a crash is ``docker kill -s KILL``; a graceful stop is ``docker stop``
(SIGTERM, then compose.yaml's grace period); either is undone by ``docker start`` of the same
container, which keeps its volumes (Redis's append-only file). Replicas are reached directly on
the project's own networks (the host routes to every bridge Docker made for it), the way the
local stack's replicas are reached on their loopback ports. CPU comes from each container's
control group (:mod:`authscale.lab.measure.cgroups`), docker-proxy's counted with the gateway,
Locust's from /proc; Redis's counters from ``redis-cli`` inside the Redis container.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from authscale.lab.backend import ROLES, Sample, role_of
from authscale.lab.compose import engine as docker_engine
from authscale.lab.compose.project import Project, answers
from authscale.lab.measure import cgroups, cpu
from authscale.lab.stack.processes import StackError
from authscale.lab.stack.redis_cli import RedisCli

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


class ComposeStack:
    backend = "compose"

    def __init__(
        self, project: Project, port: int, measured: Iterable[str], ready_timeout: float
    ) -> None:
        self.project = project
        self.port = port
        self.ready_timeout = ready_timeout
        self.notes: list[str] = []
        lines = docker_engine.inspect(project.ids(), NAME_TEMPLATE)
        self._ids = dict(line.split(" ", 1) for line in lines)
        # One Redis, one gateway: named by their role alone, as on the local stack.
        for single in ("redis", "gateway"):
            self._ids[single] = self._ids.pop(f"{single}-1")
        #: A stopped replica's address: a stopped container has none to inspect.
        self._before: dict[str, str] = {}
        self._counters = self._cpu_counters(set(measured) | {"redis", "gateway"})
        self._proxies = docker_engine.proxy_pids(port)
        self._redis: RedisCli | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None

    def seed(self, count: int) -> None:
        first = next(name for name in self._ids if role_of(name) in ROLES)
        docker_engine.run(
            ["docker", "exec", self._id(first), *SEED, "--count", str(count)],
            what="seeding the accounts",
        )

    def sample(self, locust_pid: int) -> Sample:
        if self._redis is None:
            self._redis = RedisCli(["docker", "exec", "-i", self._id("redis"), "redis-cli"])
        components = {
            name: sum(counter.seconds() for counter in counters)
            for name, counters in self._counters.items()
        }
        components["gateway"] = components.get("gateway", 0.0) + sum(
            cpu.tree_cpu_seconds(pid) for pid in self._proxies
        )
        components["locust"] = cpu.tree_cpu_seconds(locust_pid)
        busy, total = cpu.machine_busy_seconds()
        return cpu.CpuSample(time.time(), components, busy, total), self._redis.commandstats()

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
        deadline = time.monotonic() + 30
        while docker_engine.inspect([self._id(name)], "{{.State.Running}}") == ["true"]:
            if time.monotonic() > deadline:
                raise StackError(f"{name} still runs 30 s after docker kill")
            time.sleep(0.1)

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
            self.project.scale([])
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

    def _cpu_counters(self, wanted: set[str]) -> dict[str, list[cgroups.CpuCounter]]:
        counters: dict[str, list[cgroups.CpuCounter]] = {name: [] for name in sorted(wanted)}
        for line in docker_engine.inspect(
            list(self._ids.values()), "{{.State.Pid}} {{json .Config.Labels}}"
        ):
            pid, _, labels = line.partition(" ")
            component = cgroups.component_of(json.loads(labels))
            if component in wanted and int(pid) > 0:
                counters[component].append(cgroups.process_counter(int(pid)))
        return counters

    def _id(self, name: str) -> str:
        try:
            return self._ids[name]
        except KeyError:
            raise StackError(f"{self.project.name} has no container {name}") from None

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
