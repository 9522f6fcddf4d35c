"""The local Docker engine as the compose backend uses it: is it there, run a command, inspect.

Every command is bounded in time; a failure raises :class:`StackError` with the command and the
end of its output, which is what the experiment prints.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from authscale.lab.stack.processes import StackError

#: A bound that proves "does not hang": an image build is the longest command.
COMMAND_TIMEOUT = 900.0


def compose_program() -> list[str] | None:
    """``docker compose`` (v2) when it answers, else Debian's ``docker-compose`` (v1)."""
    if shutil.which("docker") and _succeeds(["docker", "compose", "version"]):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def missing_engine() -> str | None:
    """Why compose cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker command (on a machine like CI's: deploy/prepare-docker.sh)"
    if compose_program() is None:
        return "neither `docker compose` nor `docker-compose` is installed"
    if not _succeeds(["docker", "info"]):
        return "no Docker engine answers `docker info` (deploy/prepare-docker.sh starts one)"
    return None


def _succeeds(argv: Sequence[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def is_proxy_for(argv: Sequence[str], port: int) -> bool:
    """Whether a process's arguments are Docker's userland proxy for ``port`` on the host.

    Traffic from the host to a port published on 127.0.0.1 passes through ``docker-proxy``,
    which copies every byte; the experiment counts it with the gateway it fronts.
    """
    if not argv or Path(argv[0]).name != "docker-proxy":
        return False
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    return options.get("-host-port") == str(port)


def proxy_pids(port: int, proc: Path = Path("/proc")) -> list[int]:
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if is_proxy_for(argv, port):
            pids.append(int(entry.name))
    return pids


def run(
    argv: Sequence[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(argv), env=None if env is None else dict(env), cwd=cwd, capture_output=True,
            text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise StackError(f"{what}: no answer within {COMMAND_TIMEOUT:.0f} s") from error
    if check and result.returncode != 0:
        raise StackError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result


def output(argv: Sequence[str]) -> str:
    return run(argv, what=argv[0], check=False).stdout


def inspect(ids: Sequence[str], template: str) -> list[str]:
    if not ids:
        return []
    result = run(["docker", "inspect", "-f", template, *ids], what="docker inspect", check=False)
    return [line for line in result.stdout.splitlines() if line.strip()]
