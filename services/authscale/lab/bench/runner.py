"""``authscale bench``: what authenticating a request costs a replica, as a ratio to a ping.

One replica per role, measured back to back with the same generator (wrk): ``/<variant>/ping``
(no authentication) then ``/<variant>/dashboard`` (authenticated), straight to the replica and
through the gateway. The ratio of the two rates cancels most of the noise of a shared machine.
The replica gets a core of its own; wrk, nginx and Redis share the others.
The stack comes from the local backend (:mod:`authscale.lab.stack.backend`) and nowhere else:
pinning processes to cores and restarting a replica with other settings need them on this
machine, so the bench offers no ``--backend``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authscale.core.servers import DEFAULT_SERVER, SERVERS
from authscale.lab.backend import StackPlan
from authscale.lab.bench import report as bench_report
from authscale.lab.bench import wrk
from authscale.lab.bench.measurement import Layout, Measurement
from authscale.lab.measure import cpu
from authscale.lab.run import Progress, say
from authscale.lab.stack.backend import LocalBackend
from authscale.lab.stack.clients import log_in
from authscale.lab.stack.local import LocalStack
from authscale.login.command import DEFAULT_SEED_PASSWORD


@dataclass(frozen=True)
class Mode:
    """One way of running a variant's replica: its settings and the ratio it should reach."""

    slug: str
    variant: str
    env: Mapping[str, str] = field(default_factory=dict)
    target: float | None = None


MODES = (
    Mode("session", "session", target=0.88),
    Mode("token", "token", target=0.95),
    Mode("token-nocache", "token", {"AUTHSCALE_VERIFIED_TOKEN_CACHE_SIZE": "0"}),
    Mode("token-denylist", "token", {"AUTHSCALE_TOKEN_DENYLIST": "true"}),
)
ROUTES = ("direct", "gateway")
TARGETS = {mode.slug: mode.target for mode in MODES}
#: The seeded account the bench reads dashboards as.
ACCOUNT = ("loaduser0", DEFAULT_SEED_PASSWORD)


@dataclass(frozen=True)
class BenchConfig:
    modes: Sequence[Mode] = MODES
    routes: Sequence[str] = ROUTES
    seconds: float = 3.0
    warm_up: float = 1.0
    #: Ping and dashboard alternate this many times: the median ratio of the pairs is robust
    #: against a neighbour that takes the replica's core for a few seconds.
    rounds: int = 3
    connections: int = 32
    run_dir: Path | None = None
    #: Every measurement is taken on each, in turn (authscale.core.servers).
    servers: Sequence[str] = (DEFAULT_SERVER,)


def run_bench(config: BenchConfig, layout: Layout, out: Progress = say) -> list[Measurement]:
    wrk.binary()
    roles = {mode.variant for mode in config.modes}
    replicas = {"session": 1} if "session" in roles else {}
    if "token" in roles:
        replicas |= {"token": 1, "issuer": 1}
    run_dir = config.run_dir or Path(tempfile.mkdtemp(prefix="authscale-bench-"))
    servers = ", ".join(config.servers)
    out(f"starting one replica per role on {servers} in {run_dir} ({layout.note})")
    measurements = []
    try:
        with contextlib.ExitStack() as stacks:
            # A stack per server, all up at once: only the one under load uses its core, and the
            # servers take turns within every round, so a neighbour's burst on this shared
            # machine lands on all of them alike and the ratios between them hold.
            locals_ = {}
            for server in config.servers:
                # The local backend only: the bench pins processes to cores and restarts a
                # replica with other settings, which it does to processes on this machine.
                plan = StackPlan(
                    f"bench on {server}",
                    replicas,
                    run_dir / server,
                    login_limit=("1000r/s", 20),
                    server=server,
                )
                stack = stacks.enter_context(LocalBackend().stack(plan))
                stack.seed(1)
                locals_[server] = stack.local
            out(bench_report.HEADER)
            for mode in config.modes:
                headers = {}
                for server, local in locals_.items():
                    _configure(local, mode)
                    _pin(local, layout)
                    headers[server] = log_in(local.gateway_url, mode.variant, ACCOUNT)
                for route in config.routes:
                    for number in range(1, config.rounds + 1):
                        for server, local in locals_.items():
                            for page in ("ping", "dashboard"):
                                measurement = _measure(
                                    local,
                                    layout,
                                    config,
                                    (mode, route, page, number),
                                    headers[server],
                                )
                                out(bench_report.format_row(measurement))
                                measurements.append(measurement)
    except BaseException:
        out(f"logs of the bench stacks are kept in {run_dir}/<server>/logs")
        raise
    if config.run_dir is None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return measurements


def _configure(local: LocalStack, mode: Mode) -> None:
    """Restart the variant's replica with this mode's settings, unless it already has them."""
    name = f"{mode.variant}-1"
    spec = local.specs[name]
    wanted = {**spec.env}
    for other in MODES:
        if other.variant == mode.variant:
            for key in other.env:
                wanted.pop(key, None)
    wanted.update(mode.env)
    if wanted == dict(spec.env):
        return
    local.stop_process(name)
    local.specs[name] = dataclasses.replace(spec, env=wanted)
    local.start_process(name)


def _pin(local: LocalStack, layout: Layout) -> None:
    for running in local.running.values():
        is_replica = running.spec.role in ("session", "token")
        cpu.pin(running.pid, layout.replica if is_replica else layout.rest)


def _measure(
    local: LocalStack,
    layout: Layout,
    config: BenchConfig,
    what: tuple[Mode, str, str, int],
    header: str,
) -> Measurement:
    mode, route, page, number = what
    replica = local.running[f"{mode.variant}-1"]
    base = local.gateway_url if route == "gateway" else local.replica_urls(mode.variant)[0]
    path = f"/{mode.variant}/{page}"
    headers = [header] if page == "dashboard" else []
    load = {"connections": config.connections, "headers": headers, "cpus": layout.generator}
    if config.warm_up > 0 and number == 1:
        wrk.run(base + path, seconds=config.warm_up, **load)  # type: ignore[arg-type]
    rest = [r.pid for r in local.running.values() if r.spec.role in ("gateway", "redis")]
    core = min(layout.replica) if len(layout.replica) == 1 else None

    def snapshot() -> tuple[float, float, float]:
        core_busy = cpu.machine_busy_seconds(core)[0] if core is not None else 0.0
        return (
            cpu.tree_cpu_seconds(replica.pid),
            sum(cpu.tree_cpu_seconds(pid) for pid in rest),
            core_busy,
        )

    before, started = snapshot(), time.monotonic()
    result = wrk.run(base + path, seconds=config.seconds, **load)  # type: ignore[arg-type]
    after, elapsed = snapshot(), time.monotonic() - started
    replica_cpu = (after[0] - before[0]) / elapsed
    return Measurement(
        server=local.config.server,
        mode=mode.slug,
        route=route,
        path=path,
        round=number,
        result=result,
        replica_cpu=replica_cpu,
        replica_cpu_per_request=(after[0] - before[0]) / max(1, result.requests),
        rest_cpu=(after[1] - before[1]) / elapsed,
        neighbours_cpu=max(0.0, (after[2] - before[2]) / elapsed - replica_cpu)
        if core is not None
        else 0.0,
    )


# -- command -----------------------------------------------------------------------------------


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench", help="measure ping vs dashboard per variant, one replica each (needs wrk)"
    )
    bench.add_argument(
        "--modes",
        type=_modes,
        default=None,
        help=f"comma-separated, from {','.join(m.slug for m in MODES)} (default: all)",
    )
    bench.add_argument("--routes", type=_routes, default=ROUTES, help="direct,gateway (default)")
    bench.add_argument(
        "--seconds", type=float, default=BenchConfig.seconds, help="per measurement (%(default)s)"
    )
    bench.add_argument(
        "--rounds", type=int, default=BenchConfig.rounds, help="ping/dashboard pairs (%(default)s)"
    )
    bench.add_argument(
        "--warm-up", type=float, default=BenchConfig.warm_up, help="before each (%(default)s)"
    )
    bench.add_argument(
        "--connections", type=int, default=BenchConfig.connections, help="kept busy (%(default)s)"
    )
    bench.add_argument(
        "--servers",
        type=_servers,
        default=BenchConfig.servers,
        help=f"comma-separated, from {','.join(SERVERS)}: each measured in turn, every round "
        f"(default {DEFAULT_SERVER})",
    )
    bench.add_argument("--json", type=Path, help="also write the measurements to this file")
    bench.add_argument("--run-dir", type=Path, help="keep the bench stack's logs here")
    bench.set_defaults(run=_bench)


def _modes(text: str) -> list[Mode]:
    known = {mode.slug: mode for mode in MODES}
    chosen = [slug.strip() for slug in text.split(",") if slug.strip()]
    unknown = [slug for slug in chosen if slug not in known]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown mode {', '.join(unknown) or '(none)'}; modes are {', '.join(known)}"
        )
    return [known[slug] for slug in chosen]


def _servers(text: str) -> list[str]:
    chosen = [server.strip() for server in text.split(",") if server.strip()]
    unknown = [server for server in chosen if server not in SERVERS]
    if unknown or not chosen or len(set(chosen)) < len(chosen):
        raise argparse.ArgumentTypeError(
            f"servers are {', '.join(SERVERS)}, each at most once; got {text!r}"
        )
    return chosen


def _routes(text: str) -> list[str]:
    chosen = [route.strip() for route in text.split(",") if route.strip()]
    if not chosen or any(route not in ROUTES for route in chosen):
        raise argparse.ArgumentTypeError(f"routes are {', '.join(ROUTES)}, got {text!r}")
    return chosen


def _bench(args: argparse.Namespace) -> int:
    config = BenchConfig(
        modes=args.modes or MODES,
        routes=args.routes,
        seconds=args.seconds,
        rounds=max(1, args.rounds),
        warm_up=args.warm_up,
        connections=args.connections,
        run_dir=args.run_dir,
        servers=args.servers,
    )
    layout = Layout.for_cpus(cpu.usable_cpus())
    measurements = run_bench(config, layout)
    print(bench_report.summary(measurements, layout, TARGETS))
    if args.json:
        args.json.write_text(json.dumps([_as_dict(m) for m in measurements], indent=2))
    return 0


def _as_dict(m: Measurement) -> dict[str, object]:
    data = dataclasses.asdict(m)
    data["rate"] = m.result.rate
    return data
