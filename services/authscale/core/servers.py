"""``authscale serve ROLE``: one replica of a role on the chosen ASGI server, alike everywhere.

The local stack, compose, Kubernetes and the image all start replicas through this command, so
the servers differ only in what each can do, never in how a deployment set them up:

- **hypercorn** (the default): ``--workers 0`` serves in this one process, which drains on
  SIGTERM itself (Hypercorn's default worker installed no SIGTERM handler and dropped in-flight
  responses when its process group was stopped).
- **hypercorn-uvloop**: the same, with Hypercorn's uvloop worker class: uvloop's event loop in
  place of asyncio's (``--worker-class``); measured against the default in
  docs/results/bench-2026-11-29/.
- **uvicorn**, with uvloop and httptools: one process; on SIGTERM it stops accepting, closes idle
  connections, lets requests in flight finish within the graceful timeout, then exits.
- **granian**: a main process and one worker; on SIGTERM the main process stops the worker,
  which finishes its requests in flight; the worker is killed after the graceful timeout.
  SIGTERM must reach the main process alone, as a container runtime sends it to PID 1: a worker
  signalled directly ends at once and drops what it was serving.

On every server the client's address and scheme come from the app's own trusted-proxy middleware
(authscale.core.forwarding), never from a server flag: uvicorn's proxy headers are off, Granian
and Hypercorn have none on. No server writes an access log (the gateway keeps the one access
log), and every log line is the app's JSON (authscale.core.logs), the servers' own lines too.
The command replaces itself with the server (``exec``): the replica's pid is the server's.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from authscale.core.errors import ConfigError
from authscale.core.logs import logging_config
from authscale.core.settings import PREFIX, default_replica_id

#: Role -> its app factory (``module:function``).
ROLE_APPS = {
    "session": "authscale.session.app:create_app",
    "token": "authscale.tokens.app:create_app",
    "issuer": "authscale.tokens.issuer:create_app",
}

#: Server -> the modules it needs, and the extra of the package that installs them.
SERVERS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "hypercorn": (("hypercorn",), None),
    "hypercorn-uvloop": (("hypercorn", "uvloop"), None),
    "uvicorn": (("uvicorn", "uvloop", "httptools"), "uvicorn"),
    "granian": (("granian", "uvloop"), "granian"),
}
DEFAULT_SERVER = "hypercorn"
#: Hypercorn's entries -> the worker class each runs: the event loop under the same server code.
HYPERCORN_WORKER_CLASSES = {"hypercorn": "asyncio", "hypercorn-uvloop": "uvloop"}
SERVER_VARIABLE = "AUTHSCALE_SERVER"

#: Longer than nginx's upstream keepalive (60 s), so nginx never reuses a connection the replica
#: is closing at that very moment. Granian has no idle timeout: it keeps idle connections open
#: until the client (nginx) closes them, which satisfies the same rule.
KEEP_ALIVE_SECONDS = 75
#: How long requests in flight may take to finish after SIGTERM.
GRACEFUL_SECONDS = 10


def server_from_environ(env: Mapping[str, str]) -> str:
    server = env.get(SERVER_VARIABLE, "").strip().lower() or DEFAULT_SERVER
    if server not in SERVERS:
        raise ConfigError(
            f"{SERVER_VARIABLE}={server!r} is not a server; choose one of {', '.join(SERVERS)}."
        )
    return server


def check_installed(server: str) -> None:
    """Fail with the install command when ``server`` (or a module it needs) is missing."""
    modules, extra = SERVERS[server]
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        install = f"pip install 'authscale[{extra}]'" if extra else f"pip install {missing[0]}"
        raise ConfigError(
            f"the {server} server needs {', '.join(missing)}, which is not installed here; "
            f"install it with: {install}"
        )


def server_argv(server: str, role: str, host: str, port: int, log_config: Path) -> list[str]:
    """The command line that serves ``role`` on ``server`` at ``host:port``."""
    app = ROLE_APPS[role]
    python = [sys.executable, "-m", server]
    if server in HYPERCORN_WORKER_CLASSES:
        # Hypercorn creates its error logger's own handler when it starts serving, after the app
        # replaced the logging setup: the log config replaces that handler in turn.
        return [
            *(sys.executable, "-m", "hypercorn"),
            *("--bind", f"{host}:{port}", "--keep-alive", str(KEEP_ALIVE_SECONDS)),
            *("--graceful-timeout", str(GRACEFUL_SECONDS), "--workers", "0"),
            *("--worker-class", HYPERCORN_WORKER_CLASSES[server]),
            *("--log-config", f"json:{log_config}"),
            f"{app}()",
        ]
    if server == "uvicorn":
        return [
            *python,
            *("--factory", app, "--host", host, "--port", str(port)),
            *("--loop", "uvloop", "--http", "httptools", "--ws", "none", "--lifespan", "on"),
            *("--timeout-keep-alive", str(KEEP_ALIVE_SECONDS)),
            *("--timeout-graceful-shutdown", str(GRACEFUL_SECONDS)),
            # The app's middleware alone reads X-Forwarded-*; uvicorn trusting them too would
            # let it rewrite the client before the app's hop count is applied.
            *("--no-proxy-headers", "--forwarded-allow-ips", ""),
            *("--no-access-log", "--no-server-header", "--log-config", str(log_config)),
        ]
    if server == "granian":
        return [
            *python,
            *("--interface", "asgi", "--factory", "--host", host, "--port", str(port)),
            *("--workers", "1", "--loop", "uvloop", "--http", "1", "--no-ws"),
            *("--workers-kill-timeout", str(GRACEFUL_SECONDS)),
            *("--no-access-log", "--log-config", str(log_config)),
            app,
        ]
    raise ConfigError(f"{server!r} is not a server; choose one of {', '.join(SERVERS)}.")


def write_log_config(role: str, env: Mapping[str, str]) -> Path:
    """The servers' logging as a dictConfig file: the app's JSON lines from the first one on."""
    replica = env.get(f"{PREFIX}REPLICA_ID") or default_replica_id()
    level = env.get(f"{PREFIX}LOG_LEVEL", "INFO").upper()
    text = json.dumps(logging_config(role, replica, level), sort_keys=True)
    # Named after its content in a private directory under TMPDIR (a tmpfs in the image, which
    # is read-only elsewhere): a replica restarted with the same settings reuses its file, so
    # restarts leave no trail of files (the server replaces this process and cannot clean up).
    path = _private_dir() / f"logging-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.is_file():
        staged = path.with_suffix(f".{os.getpid()}.tmp")
        staged.write_text(text)
        staged.replace(path)
    return path


def _private_dir() -> Path:
    """TMPDIR/authscale-serve-<uid>, made 0700 and checked to be this user's own directory."""
    path = Path(tempfile.gettempdir()) / f"authscale-serve-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        # Someone else's, or a link: never write there; a fresh private directory instead.
        return Path(tempfile.mkdtemp(prefix="authscale-serve-"))
    return path


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve one replica of a role (session, token, issuer) on an ASGI server",
        description=(
            f"Serve one replica. The server is --server, else ${SERVER_VARIABLE}, else "
            f"{DEFAULT_SERVER}; uvicorn and granian come with the extras authscale[uvicorn] and "
            "authscale[granian]. Settings come from AUTHSCALE_* variables (docs/configuration.md)."
        ),
    )
    serve.add_argument("role", choices=sorted(ROLE_APPS))
    serve.add_argument("--server", choices=sorted(SERVERS), default=None)
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - the container's interface
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    server: str = args.server or server_from_environ(os.environ)
    check_installed(server)
    argv = server_argv(
        server, args.role, args.host, args.port, write_log_config(args.role, os.environ)
    )
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - our own interpreter, a fixed module and flags


def command_line(server: str, role: str, host: str, port: int) -> Sequence[str]:
    """How a supervisor starts this command for a replica (the local stack does)."""
    return [
        sys.executable,
        *("-m", "authscale", "serve", role, "--server", server),
        *("--host", host, "--port", str(port)),
    ]
