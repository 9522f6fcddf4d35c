"""One compose project on the local Docker engine: its compose commands, containers and health."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from authscale.lab.compose import engine as docker_engine
from authscale.lab.stack.processes import StackError


class Project:
    def __init__(
        self, name: str, program: Sequence[str], root: Path, env: Mapping[str, str]
    ) -> None:
        self.name = name
        self.program = list(program)
        self.root = root
        #: The environment of every compose command (the project's name and settings).
        self.env = {**env, "COMPOSE_PROJECT_NAME": name}

    def compose(
        self, *args: str, check: bool = True, what: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.program, *args]
        what = what or f"compose {args[0]}"
        return docker_engine.run(argv, what=what, env=self.env, check=check, cwd=self.root)

    def ids(self, service: str | None = None) -> list[str]:
        ids = self.compose("ps", "-q", *([service] if service else [])).stdout.split()
        if service and not ids:
            raise StackError(f"compose project {self.name} has no {service} container")
        return ids

    def all_healthy(self) -> bool:
        states = docker_engine.inspect(self.ids(), "{{.State.Status}} {{.State.Health.Status}}")
        running = [state for state in states if state.startswith("running")]
        return bool(running) and all(state == "running healthy" for state in running)

    def scale(self, pairs: Sequence[str]) -> None:
        """Scale with ``deploy/compose-scale.sh``, which reloads the gateway."""
        docker_engine.run(
            [str(self.root / "deploy" / "compose-scale.sh"), *pairs],
            what=f"deploy/compose-scale.sh {' '.join(pairs)}".strip(),
            env=self.env,
        )

    def down(self, logs: Path | None) -> None:
        """Keep the end of every container's log in ``logs``; remove containers and volumes."""
        if logs is not None:
            logs.parent.mkdir(parents=True, exist_ok=True)
            # The gateway logs every request: the last lines of each container are enough.
            tail = self.compose("logs", "--no-color", "--tail", "200", check=False).stdout
            logs.write_text(tail)
        self.compose("down", "-v", "--remove-orphans", check=False)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
