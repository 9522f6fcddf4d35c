"""``authscale up`` and ``authscale down``: run the local stack in the foreground or detached."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from authscale.core import servers
from authscale.lab.budgets import from_argument
from authscale.lab.stack import rundir, web
from authscale.lab.stack.config import DEFAULT_RUN_DIR, StackConfig
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import StackError


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = commands.add_parser(
        "up", help="start the local stack (redis, replicas, gateway, the browser page)"
    )
    up.add_argument("--replicas", type=int, default=2, help="replicas per variant (default 2)")
    up.add_argument("--session-replicas", type=int, help="override --replicas for session")
    up.add_argument("--token-replicas", type=int, help="override --replicas for token")
    up.add_argument("--issuer-replicas", type=int, default=1, help="issuer replicas (default 1)")
    up.add_argument("--gateway-port", type=int, default=8080)
    up.add_argument(
        "--redis-port",
        type=int,
        default=6390,
        help="the Redis's port (default 6390); a cluster's nodes count up from it",
    )
    up.add_argument(
        "--redis-shards",
        type=int,
        default=0,
        help="0: one Redis (default); N >= 1: a Redis Cluster of N masters with a replica each",
    )
    up.add_argument(
        "--web-port",
        type=int,
        default=web.DEFAULT_PORT,
        help=f"the tutorial's browser page on http://localhost:PORT (default {web.DEFAULT_PORT}; "
        "0 serves none)",
    )
    up.add_argument(
        "--base-port",
        type=int,
        default=8100,
        help="replica ports count up from it (default 8100; 0 picks free ports)",
    )
    up.add_argument("--login-rate", default="10r/s", help="nginx limit on logins per client")
    up.add_argument("--login-burst", type=int, default=20)
    up.add_argument(
        "--server",
        choices=sorted(servers.SERVERS),
        default=os.environ.get(servers.SERVER_VARIABLE) or servers.DEFAULT_SERVER,
        help=f"the ASGI server of every replica (default {servers.DEFAULT_SERVER}, "
        f"or ${servers.SERVER_VARIABLE}); uvicorn and granian need authscale[uvicorn] / [granian]",
    )
    up.add_argument(
        "--cpu-budgets",
        type=from_argument,
        default=None,
        metavar="SPEC",
        help="a CPU budget (cgroup) per replica, issuer, Redis node and gateway: 'default' "
        "(replica=0.1,issuer=0.2,redis=0.005,gateway=0.3,period=20), cores and the shortest "
        "period in ms such as 'replica=0.2,period=30' (the rest default), or 'none' (default)",
    )
    up.add_argument("--no-demo-user", action="store_true", help="do not create admin/password123")
    up.add_argument("--detach", action="store_true", help="start, then return; stop with down")
    _run_dir_option(up)
    up.set_defaults(run=_up)

    down = commands.add_parser("down", help="stop a detached local stack")
    _run_dir_option(down)
    down.set_defaults(run=_down)


def _run_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("AUTHSCALE_RUN_DIR", DEFAULT_RUN_DIR)),
        help="logs, Redis data and state (default .authscale, or AUTHSCALE_RUN_DIR)",
    )


def config_from_args(args: argparse.Namespace) -> StackConfig:
    if args.replicas < 1:
        raise StackError(f"--replicas must be at least 1, got {args.replicas}")
    replicas = {
        "session": args.session_replicas or args.replicas,
        "token": args.token_replicas or args.replicas,
        "issuer": args.issuer_replicas,
    }
    return StackConfig(
        run_dir=args.run_dir,
        replicas=replicas,
        gateway_port=args.gateway_port,
        redis_port=args.redis_port,
        redis_shards=args.redis_shards,
        web_port=args.web_port or None,
        base_port=args.base_port or None,
        login_rate=args.login_rate,
        login_burst=args.login_burst,
        demo_user=not args.no_demo_user,
        server=args.server,
        cpu_budgets=args.cpu_budgets,
    )


def _up(args: argparse.Namespace) -> int:
    if rundir.alive_recorded(args.run_dir):
        print(
            f"authscale up: a stack is already running from {args.run_dir.resolve()}; "
            "stop it first with: authscale down",
            file=sys.stderr,
        )
        return 1
    try:
        config = config_from_args(args)
        local = LocalStack(config, die_with_parent=not args.detach)
        print(f"starting the local stack in {local.run_dir} ...", flush=True)
        local.start()
    except StackError as error:
        print(f"authscale up: {error}", file=sys.stderr)
        return 1
    print(summary(local))
    if args.detach:
        print("detached; stop it with: authscale down")
        return 0
    print("press Ctrl-C to stop", flush=True)
    _serve_until_signalled(local)
    return 0


def _serve_until_signalled(local: LocalStack) -> None:
    stopping: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    reported: set[str] = set()
    try:
        while not stopping:
            for name, running in local.running.items():
                if running.process.poll() is not None and name not in reported:
                    reported.add(name)
                    print(
                        f"warning: {name} exited with status {running.process.returncode}; "
                        f"see {running.spec.log_file}",
                        file=sys.stderr,
                        flush=True,
                    )
            time.sleep(0.5)
    finally:
        print("\nstopping the local stack ...", flush=True)
        local.stop()
        print("stopped")


def _down(args: argparse.Namespace) -> int:
    if rundir.read_state(args.run_dir) is None:
        print(f"no local stack recorded in {args.run_dir.resolve()}; nothing to stop")
        return 0
    stopped = rundir.stop_recorded(args.run_dir)
    print(f"stopped {stopped} process(es)")
    return 0


def summary(local: LocalStack) -> str:
    gateway = f"http://localhost:{local.config.gateway_port}"
    logs = local.run_dir / "logs"
    lines = [
        "",
        "authscale local stack is up",
        f"  gateway   {gateway}",
        f"  server    {local.config.server} (every replica)",
    ]
    if local.web_url:
        lines.append(f"  page      {local.web_url} (the tutorial's browser client, both variants)")
    for role in ("session", "token", "issuer"):
        urls = local.replica_urls(role)
        if urls:
            lines.append(f"  {role:<9} {len(urls)} replica(s): {', '.join(urls)}")
    password = local.run_dir / "redis" / "password"
    if local.cluster is None:
        lines.append(
            f"  redis     {local.config.host}:{local.config.redis_port} (append-only file, "
            f"password in {password})"
        )
    else:
        lines.append(
            f"  redis     cluster of {local.config.redis_shards} masters with a replica each "
            f"(append-only files, password in {password}):"
        )
        lines += [f"              {shard}" for shard in local.cluster.describe()]
    lines += _budget_lines(local)
    lines += [
        f"  logs      {logs}/",
        "",
        "Plain HTTP on loopback: cookies are sent without the Secure attribute here. A deployment",
        "behind TLS keeps Secure (AUTHSCALE_COOKIE_SECURE defaults to true).",
    ]
    if local.config.demo_user:
        lines.append("Demo user admin / password123 exists (development only: --no-demo-user).")
    login = '{"username":"admin","password":"password123"}'
    jar = local.run_dir / "cookies.txt"
    lines += [
        "",
        "Session variant:",
        f"  curl -si -c {jar} -H 'Content-Type: application/json' -d '{login}' "
        f"{gateway}/session/login",
        f"  curl -s -b {jar} {gateway}/session/dashboard",
        f'  curl -s -b {jar} -X POST -H "X-CSRF-Token: $(curl -s -b {jar} {gateway}/session/me '
        f'| python3 -c \'import json,sys; print(json.load(sys.stdin)["csrf_token"])\')" '
        f"{gateway}/session/logout",
    ]
    if local.replica_urls("token"):
        lines += [
            "",
            "Token variant:",
            f"  TOKEN=$(curl -s -H 'Content-Type: application/json' -d '{login}' "
            f"{gateway}/token/login | python3 -c 'import json,sys; print(json.load(sys.stdin)"
            '["token"])\')',
            f'  curl -s -H "Authorization: Bearer $TOKEN" {gateway}/token/dashboard',
        ]
    return "\n".join(lines)


def _budget_lines(local: LocalStack) -> list[str]:
    budgets, driver = local.config.cpu_budgets, local.budget_driver
    if budgets is None or driver is None:
        return ["  cpu       no budgets: every process shares the machine's cores"]
    lines = [f"  cpu       a budget per process ({driver.name}):"]
    for component, cores in budgets.components().items():
        lines.append(f"              {component:<9} {budgets.budget(cores)}")
    groups = driver.groups()
    if groups:
        lines.append(f"              throttling: cpu.stat in each group under {groups[-1]}/")
    return lines
