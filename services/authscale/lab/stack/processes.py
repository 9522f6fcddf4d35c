"""Child processes of the local stack: start, wait until ready, stop by pid, never by name."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1


class StackError(Exception):
    """The local stack cannot start or stop; the message says what to do about it."""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    role: str
    argv: Sequence[str]
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    #: The URL that answers 200 once the process is ready, if it speaks HTTP.
    ready_url: str | None = None


@dataclass
class Running:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    #: The kernel's start time of the pid, so a recycled pid is never mistaken for ours.
    started_ticks: int

    @property
    def pid(self) -> int:
        return self.process.pid


def start(
    spec: ProcessSpec, *, die_with_parent: bool, enter: Callable[[], None] | None = None
) -> Running:
    """Start ``spec``; ``enter`` runs in the child before its program (a CPU budget's group)."""
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)

    def before_exec() -> None:
        if die_with_parent:
            _die_with_parent()
        if enter is not None:
            enter()

    with spec.log_file.open("ab") as log:
        process = subprocess.Popen(
            list(spec.argv),
            env=dict(spec.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C at the terminal reaches the supervisor only, which then
            # stops the children in order (gateway first, Redis last).
            start_new_session=True,
            preexec_fn=before_exec if die_with_parent or enter is not None else None,
        )
    return Running(spec, process, start_ticks(process.pid) or 0)


def _die_with_parent() -> None:
    # If the supervisor is killed outright, the kernel ends its children too: no orphans.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after the last ')' do not.
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_same_process(pid: int, ticks: int) -> bool:
    return start_ticks(pid) == ticks


def wait_ready(running: Running, timeout: float, probe: Callable[[], bool] | None = None) -> None:
    """Wait until the process answers its ready URL (or ``probe``); fail with its log's tail."""
    spec = running.spec
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise StackError(
                f"{spec.name} exited with status {running.process.returncode} while starting; "
                f"read {spec.log_file}:\n{tail(spec.log_file)}"
            )
        if probe is not None and probe():
            return
        if spec.ready_url is not None and http_status(spec.ready_url) == 200:
            return
        time.sleep(0.1)
    raise StackError(
        f"{spec.name} was not ready after {timeout:g} s; "
        f"read {spec.log_file}:\n{tail(spec.log_file)}"
    )


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our URLs
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def stop_pid(pid: int, ticks: int, sig: int = signal.SIGTERM, timeout: float = 15.0) -> bool:
    """Signal ``pid`` if it is still the process we started; wait, then SIGKILL. True if stopped."""
    return stop_all([(pid, ticks)], sig, timeout)


def stop_all(
    targets: Sequence[tuple[int, int]], sig: int = signal.SIGTERM, timeout: float = 15.0
) -> bool:
    """Signal every (pid, start ticks) still ours at once, so they drain in parallel; wait up to
    ``timeout``, then SIGKILL what is left. True if all stopped.

    Each child leads its own process group (``start`` gives it a session). Any other signal than
    SIGKILL goes to the leader alone, as a container's runtime sends it to PID 1: a server with
    workers (Granian's main process, nginx's master) then stops them in order and they drain;
    a Granian worker signalled directly dropped its requests in flight. SIGKILL, and the
    SIGKILL after ``timeout``, go to the whole group, and the wait is for the whole group, so
    nothing a child spawned is left behind, orphaned and still listening.
    """
    groups = [pid for pid, ticks in targets if is_same_process(pid, ticks)]
    for group in groups:
        if sig == signal.SIGKILL:
            _signal_group(group, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(group, sig)
    deadline = time.monotonic() + timeout
    pending = list(groups)
    while pending and time.monotonic() < deadline:
        for group in list(pending):
            _reap(group)
            if not group_members(group):
                pending.remove(group)
        if pending:
            time.sleep(0.05)
    for group in pending:
        _signal_group(group, signal.SIGKILL)
    if pending:
        time.sleep(0.2)
        for group in pending:
            _reap(group)
    return not any(group_members(group) for group in pending)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


#: The lowest port :func:`free_port` hands out: above the well-known and registered servers.
PORT_FLOOR = 10_000
#: Where the kernel says which ports it picks for outgoing connections.
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Ports handed out lately by this process: not handed out again before their server binds.
_handed_out: collections.deque[int] = collections.deque(maxlen=4096)


def free_port(host: str = "127.0.0.1", span: int = 0) -> int:
    """A port free now, below the kernel's ephemeral range, with ``port + span`` below it too.

    A port the kernel picks (a bind to port 0) comes from the ephemeral range, where any
    outgoing connection (Locust's, nginx's to its replicas, a Redis client's) may take it in
    the moment before the server it was meant for binds it: a 26th cell of a scaling run once
    lost its Redis node that way. Below the range, only a server asking for that port can.
    """
    low, _ = _ephemeral_range()
    top = low - span
    if top - PORT_FLOOR < 100:
        raise StackError(
            f"no ports below the ephemeral range ({low}, {EPHEMERAL_RANGE}) to hand out: lower "
            f"its start or raise it above {PORT_FLOOR + span + 100}"
        )
    for _ in range(1000):
        port = random.randrange(PORT_FLOOR, top)
        if port not in _handed_out and port_is_free(host, port):
            _handed_out.append(port)
            return port
    raise StackError(f"no free port on {host} between {PORT_FLOOR} and {top} in 1000 tries")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(value) for value in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        # Linux's default.
        return 32768, 60999
    return low, high


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


#: Where the stack finds its two servers, unless these variables name other binaries.
BINARY_OVERRIDES = {"nginx": "AUTHSCALE_NGINX_BIN", "redis-server": "AUTHSCALE_REDIS_SERVER_BIN"}


def binary(name: str, package: str | None = None) -> str:
    variable = BINARY_OVERRIDES.get(name)
    override = os.environ.get(variable) if variable else None
    if override:
        if not os.access(override, os.X_OK):
            raise StackError(f"{variable}={override} is not an executable file")
        return override
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        raise StackError(
            f"{name} is not installed; install it with: sudo apt-get install -y {package or name}"
            " (or run `make up`, which installs what is missing)"
        )
    return found
