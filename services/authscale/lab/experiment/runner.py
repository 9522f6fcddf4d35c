"""``authscale experiment``: the replica-scaling experiment, and the command for every lab run.

For each variant and replica count (a *cell*) the run's backend (:mod:`authscale.lab.backend`:
local processes, or compose with Docker) brings up a stack and seeds one account per simulated
user; the experiment runs Locust headless (warm-up, then a fixed window), and meanwhile reads
the CPU of every component and Redis's command counters through the stack. The window's figures
go to :mod:`authscale.lab.experiment.report`, which writes the results folder. The fault
scenarios (:mod:`authscale.lab.faults`) run from the same command, by name.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authscale.core.servers import SERVERS
from authscale.lab import load, run
from authscale.lab.backend import Backend, Sample, Stack, StackPlan
from authscale.lab.budgets import CpuBudgets, from_argument
from authscale.lab.experiment import calibration, report
from authscale.lab.experiment.calibration import Calibration, Reference
from authscale.lab.experiment.cells import Cell, CellResult, Variant, grid
from authscale.lab.experiment.growth_results import GrowthConfig
from authscale.lab.experiment.state_growth import run_state_growth
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.runner import run_faults
from authscale.lab.faults.scenarios import SCENARIOS as FAULT_SCENARIOS
from authscale.lab.stack.processes import StackError

#: The experiment's variants: the token variant once plain and once with its Redis denylist.
VARIANTS: Mapping[str, Variant] = {
    "session": Variant("session", "session", {}),
    "token": Variant("token", "token", {}, redis_per_request=False),
    "token-denylist": Variant("token-denylist", "token", {"AUTHSCALE_TOKEN_DENYLIST": "true"}),
}
SAMPLE_EVERY = 0.5
#: Mostly dashboard reads; token users also refresh now and then (session users have no refresh).
DEFAULT_WEIGHTS = {"dashboard": 100, "refresh": 1}
#: Settings of a budgeted run. A login at the default argon2id cost (19 MiB, 2 passes) takes a
#: second or more of a replica's tenth of a core, and 48 of them overrun the warm-up: a budgeted
#: run seeds and logs in its accounts at 1 MiB and 1 pass (and queues up to 64 logins) instead.
#: Logins happen in the warm-up only, never in the measured window, so this changes nothing
#: measured, only how long the warm-up must be.
#: A tenth of a core makes every step about ten times slower, so the replicas' wait on Redis is
#: stretched by as much (10 s for the default 1 s): a full Redis then queues, as a full Redis on
#: a real machine does, instead of turning the queue into 503s at a tenth of its real depth.
BUDGETED_ENV = {
    "AUTHSCALE_ARGON2_MEMORY_KIB": "1024",
    "AUTHSCALE_ARGON2_TIME_COST": "1",
    "AUTHSCALE_HASHING_QUEUE": "64",
    "AUTHSCALE_REDIS_TIMEOUT": "10",
}
#: Seconds each cell's stack is watched idle before the load: what each process spends on
#: its own (Redis's cron, cluster bus and append-only file), which the model takes off budgets.
IDLE_SECONDS = 3.0
#: Compose only: each variant's project is ``<project>-<variant>``.
PROJECT = "authscale-exp"


@dataclass(frozen=True)
class ExperimentConfig(run.RunConfig):
    variants: Sequence[str] = ("session", "token", "token-denylist")
    replicas: Sequence[int] = (1, 2, 4, 8)
    #: Redis Cluster masters for the variants that reach Redis per request (0: one Redis).
    shards: Sequence[int] = (1, 2, 4)
    #: Every component under a CPU budget (the scale model); ``None`` shares the machine.
    cpu_budgets: CpuBudgets | None = field(default_factory=CpuBudgets)
    #: Simulated users per replica, so each replica meets the same queue at every count (with a
    #: fixed total, one replica batches 48 waiting requests per wake-up and eight only six, and
    #: the cost per request moves with the count); 0: ``users`` in every cell.
    users_per_replica: int = 12
    #: Seconds of each calibration (start and end of the run); 0: none.
    calibration_seconds: float = 10.0
    warm_up: float = 10.0
    weights: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    locust_processes: int = 1
    issuer_replicas: int = 1
    #: Servers measured side by side, each at every cell; empty means just ``server``.
    servers: Sequence[str] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown_servers = [name for name in self.servers if name not in SERVERS]
        if unknown_servers:
            raise StackError(
                f"unknown server {', '.join(unknown_servers)}; servers are {', '.join(SERVERS)}"
            )
        unknown = [name for name in self.variants if name not in VARIANTS]
        if unknown:
            raise StackError(
                f"unknown variant {', '.join(unknown)}; variants are {', '.join(VARIANTS)}"
            )
        if not self.variants:
            raise StackError("name at least one variant")
        bad = [count for count in self.replicas if count < 1]
        if bad or not self.replicas:
            raise StackError(f"replica counts must be 1 or more, got {list(self.replicas)}")
        if self.warm_up < 0:
            raise StackError("warm-up must be 0 or more")
        if not self.shards or any(count < 0 for count in self.shards):
            raise StackError(f"shard counts must be 0 (one Redis) or more, got {self.shards}")
        if self.backend == "compose" and any(self.shards):
            raise StackError("the compose backend runs one Redis: pass --redis-shards 0")
        if self.users_per_replica < 0:
            raise StackError("users per replica must be 0 (use --users) or more")
        if self.calibration_seconds < 0:
            raise StackError("calibration seconds must be 0 or more")

    def describe(self, stack: str) -> dict[str, str]:
        return {
            "backend": self.backend,
            "variants": ", ".join(self.variants),
            "replicas": ", ".join(str(n) for n in self.replicas),
            "Redis shards (variants on Redis per request)": ", ".join(
                f"{n} (cluster)" if n else "0 (one Redis)" for n in self.shards
            ),
            "CPU budgets": self.cpu_budgets.describe() if self.cpu_budgets else "none",
            "servers": ", ".join(self.measured_servers),
            "issuer replicas (token variants)": str(self.issuer_replicas),
            "simulated users": (
                f"{self.users_per_replica} per replica"
                if self.users_per_replica
                else str(self.users)
            )
            + ", no think time, one seeded account each",
            "warm-up, then measured window": f"{self.warm_up:g} s, then {self.seconds:g} s",
            "task weights": ", ".join(f"{k} {v}" for k, v in self.weights.items()),
            "Locust processes": str(self.locust_processes),
            "stack": stack,
            "replica settings": ", ".join(f"{k}={v}" for k, v in self.env.items()) or "defaults",
            "argon2id": "1 MiB, 1 pass, Redis timeout 10 s (under budgets; logins happen in "
            "the warm-up only)"
            if self.cpu_budgets
            else "defaults (19 MiB, 2 passes): logins happen in the warm-up only",
        }

    def users_of(self, cell: Cell) -> int:
        return self.users_per_replica * cell.replicas if self.users_per_replica else self.users

    @property
    def measured_servers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.servers)) or (self.server,)

    def cells(self) -> list[Cell]:
        variants = [VARIANTS[name] for name in self.variants]
        return grid(variants, self.replicas, self.measured_servers, self.shards)

    def stack_plan(self, cell: Cell, out: Path) -> StackPlan:
        return StackPlan(
            label=cell.label,
            replicas=cell.stack_replicas(self.issuer_replicas),
            run_dir=out / "stacks" / cell.slug,
            env={
                **(BUDGETED_ENV if self.cpu_budgets else {}),
                **self.env,
                **cell.variant.env,
            },
            ready_timeout=self.ready_timeout,
            # On compose a variant's project is rescaled from one cell to the next.
            family=cell.variant.name,
            server=cell.server,
            redis_shards=cell.shards,
            cpu_budgets=self.cpu_budgets,
        )


def run_experiment(
    config: ExperimentConfig, progress: run.Progress = run.say, backend: Backend | None = None
) -> Path:
    """Run every cell, write the results folder, and return its path.

    ``backend`` defaults to the one ``config.backend`` names; tests pass their own (a compose
    project name of their own, say).
    """
    load.check_installed(config.locustfile)
    backend = backend or run.make_backend(config.backend, PROJECT)
    backend.prepare(config.env)
    try:
        return _run_cells(config, backend, progress)
    finally:
        backend.close()


def _run_cells(config: ExperimentConfig, backend: Backend, progress: run.Progress) -> Path:
    out = run.results_folder(config.results_dir)
    cells = config.cells()
    results: list[CellResult] = []
    began = time.monotonic()
    start = _calibrate(config, backend, out, "start", progress)
    for index, cell in enumerate(cells, start=1):
        elapsed = time.monotonic() - began
        if index > 1:
            left = elapsed / (index - 1) * (len(cells) - index + 1)
        else:
            # Before the first cell: the load itself plus the time to start and stop a stack.
            left = (config.warm_up + config.seconds + backend.overhead_seconds) * len(cells)
        progress(
            f"cell {index}/{len(cells)}: {cell.label} ({config.users_of(cell)} users, "
            f"{config.warm_up:g} s warm-up + {config.seconds:g} s) "
            f"elapsed {run.clock(elapsed)}, about {run.clock(left)} left"
        )
        result = run_cell(config, backend, cell, out)
        progress(
            f"  {result.rate:,.0f} req/s, p95 {result.p95_ms:g} ms, {result.failures} failed; "
            f"CPU per request {result.cpu_per_request_total * 1e6:,.0f} µs"
        )
        results.append(result)
    end = _calibrate(config, backend, out, "end", progress)
    calibration = Calibration(start, end, config.cpu_budgets) if start and end else None
    if calibration is not None and not calibration.steady:
        progress(f"the calibrations differ by {calibration.spread:.0%}: {calibration.describe()}")
    report.write(
        out,
        results,
        config.describe(backend.describe()),
        command=config.command,
        budgets=config.cpu_budgets,
        calibration=calibration,
    )
    progress(f"done in {run.elapsed(began)}: {out / 'report.md'}")
    return out


def _calibrate(
    config: ExperimentConfig, backend: Backend, out: Path, when: str, progress: run.Progress
) -> Reference | None:
    if not config.calibration_seconds:
        return None
    reference = calibration.measure(
        backend,
        out / "stacks" / f"calibration-{when}",
        config.calibration_seconds,
        config.cpu_budgets,
        config.server,
        dict(config.env),
    )
    progress(f"calibration ({when}): {reference.rate:,.1f} req/s on one token replica's ping")
    return reference


def run_cell(config: ExperimentConfig, backend: Backend, cell: Cell, out: Path) -> CellResult:
    """One cell: the backend's stack, seeded, loaded while sampling, then handed back."""
    with backend.stack(config.stack_plan(cell, out)) as stack:
        users = config.users_of(cell)
        stack.seed(users)
        idle = _idle(stack) if config.cpu_budgets else {}
        plan = load.LocustPlan(
            host=stack.gateway_url,
            variant=cell.variant.role,
            users=users,
            warm_up=config.warm_up,
            seconds=config.seconds,
            output_prefix=out / "raw" / cell.slug / "locust",
            weights=config.weights,
            processes=config.locust_processes,
            locustfile=config.locustfile,
        )
        plan.output_prefix.parent.mkdir(parents=True, exist_ok=True)
        samples = _load_while_sampling(stack, plan)
        figures = load.read_figures(plan)
        _write_timeline(plan.output_prefix.parent / "cpu_timeline.csv", samples)
        return CellResult.from_window(cell, users, figures, samples, config.cpu_budgets, idle)


def _idle(stack: Stack) -> dict[str, float]:
    """Each process's CPU per second while nothing loads the stack."""
    before = stack.sample(os.getpid())[0]
    time.sleep(IDLE_SECONDS)
    spent = stack.sample(os.getpid())[0].minus(before)
    return {name: seconds / spent.at for name, seconds in spent.processes.items() if spent.at}


def _load_while_sampling(stack: Stack, plan: load.LocustPlan) -> list[Sample]:
    samples: list[Sample] = []
    deadline = time.monotonic() + plan.run_time + 60
    with load.Locust(plan) as locust:
        while True:
            # Read the CPU before Locust is reaped: a reaped process has no /proc entry left.
            samples.append(stack.sample(locust.pid))
            if not locust.running():
                break
            if time.monotonic() > deadline:
                raise StackError(f"Locust overran its run time; read {plan.log_file}")
            time.sleep(SAMPLE_EVERY)
    locust.check()
    return samples


def _write_timeline(path: Path, samples: Sequence[Sample]) -> None:
    names = sorted(samples[0][0].components) if samples else []
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["time", *[f"cpu_{n}" for n in names], "machine_busy", "redis_calls"])
        for usage, commands in samples:
            writer.writerow(
                [
                    f"{usage.at:.3f}",
                    *[f"{usage.components[n]:.2f}" for n in names],
                    f"{usage.machine_busy:.2f}",
                    sum(calls for name, calls in commands.items() if name not in {"info"}),
                ]
            )


# -- command -----------------------------------------------------------------------------------

#: What ``authscale experiment SCENARIO`` runs: the scaling experiment, every fault scenario
#: (``faults``), or one of them by its name in :data:`authscale.lab.faults.scenarios.SCENARIOS`.
SCENARIOS = ("scaling", "state-growth", "faults", *FAULT_SCENARIOS)


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "experiment",
        help="run an experiment on local or compose stacks and write results/<timestamp>/",
        description="Without a scenario, runs the replica-scaling experiment.",
    )
    parser.add_argument(
        "scenario",
        nargs="*",
        default=["scaling"],
        metavar="SCENARIO",
        help=f"one of {', '.join(SCENARIOS)}; several fault scenarios run into one report "
        "(e.g. redis-outage redis-failover, which the report then compares)",
    )
    parser.add_argument(
        "--variants",
        type=_names,
        default=ExperimentConfig.variants,
        help=f"comma-separated, from {','.join(VARIANTS)} (default: all)",
    )
    parser.add_argument(
        "--replicas",
        type=_counts,
        default=ExperimentConfig.replicas,
        help="comma-separated replica counts (default "
        + ",".join(str(count) for count in ExperimentConfig.replicas)
        + ")",
    )
    parser.add_argument("--users", type=int, default=run.RunConfig.users)
    parser.add_argument(
        "--users-per-replica",
        type=int,
        default=ExperimentConfig.users_per_replica,
        help="scaling: simulated users per replica (default %(default)s); 0 for --users in "
        "every cell",
    )
    parser.add_argument("--warm-up", type=float, default=ExperimentConfig.warm_up)
    parser.add_argument("--seconds", type=float, default=run.RunConfig.seconds)
    parser.add_argument(
        "--weights",
        type=_weights,
        default=dict(DEFAULT_WEIGHTS),
        help="task weights, e.g. dashboard=100,refresh=1 (the default)",
    )
    parser.add_argument("--locust-processes", type=int, default=ExperimentConfig.locust_processes)
    parser.add_argument(
        "--fault-at",
        type=float,
        default=FaultConfig.fault_at,
        help="fault scenarios: seconds into the load when the fault starts (default %(default)s)",
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=FaultConfig.outage,
        help="fault scenarios: seconds Redis or a killed replica stays down (default %(default)s)",
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=FaultConfig.soak,
        help="the soak scenario's seconds of load (default %(default)s)",
    )
    parser.add_argument("--results-dir", type=Path, default=run.RunConfig.results_dir)
    parser.add_argument("--locustfile", type=Path, default=run.RunConfig.locustfile)
    parser.add_argument(
        "--backend",
        default=run.RunConfig.backend,
        help="local (processes on loopback, the default) or compose (Docker, compose.yaml)",
    )
    parser.add_argument(
        "--server",
        choices=list(SERVERS),
        default=run.RunConfig.server,
        help="the ASGI server of every replica (default %(default)s)",
    )
    parser.add_argument(
        "--servers",
        type=_names,
        default=ExperimentConfig.servers,
        help="scaling: comma-separated servers measured side by side in one run, e.g. "
        "hypercorn,uvicorn,granian (default: just --server)",
    )
    parser.add_argument(
        "--sizes",
        type=_counts,
        default=GrowthConfig.sizes,
        help="state-growth: signed-in users the store is filled to, rising (default "
        + ",".join(str(size) for size in GrowthConfig.sizes)
        + ")",
    )
    parser.add_argument(
        "--redis-shards",
        type=_counts,
        default=None,
        help="0 for one Redis, N for a cluster of N masters. scaling: the shard counts of the "
        "variants that reach Redis per request (default "
        + ",".join(str(shards) for shards in ExperimentConfig.shards)
        + "); state-growth: the deployments (default "
        + ",".join(str(shards) for shards in GrowthConfig.shards)
        + ")",
    )
    parser.add_argument(
        "--cpu-budgets",
        type=from_argument,
        default="default",
        metavar="SPEC|none|default",
        help="scaling and fault scenarios: a CPU budget per component, e.g. replica=0.1,"
        "issuer=0.2,redis=0.005,gateway=0.3,period=20 (cores; the shortest period in ms; the "
        f"rest default); default: {CpuBudgets().describe()}; none: share the machine",
    )
    parser.add_argument(
        "--calibration-seconds",
        type=float,
        default=ExperimentConfig.calibration_seconds,
        help="scaling: seconds of the reference measured at the start and the end (0: none; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=GrowthConfig.requests,
        help="state-growth: requests per route and size (default %(default)s)",
    )
    parser.set_defaults(run=_run)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _counts(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"replica counts are integers, got {text!r}") from None


def _weights(text: str) -> dict[str, int]:
    weights = {}
    for part in _names(text):
        name, _, value = part.partition("=")
        if name not in ("dashboard", "ping", "refresh", "relogin") or not value.isdigit():
            raise argparse.ArgumentTypeError(
                f"weights look like dashboard=100,refresh=1 (actions: dashboard, ping, "
                f"refresh, relogin), got {part!r}"
            )
        weights[name] = int(value)
    return weights


def _chosen(names: Sequence[str]) -> str | tuple[str, ...]:
    """One scenario that is not a fault's, or fault scenarios (``()``: every one of them)."""
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise StackError(
            f"unknown scenario {', '.join(unknown)}; scenarios are {', '.join(SCENARIOS)}"
        )
    alone = [name for name in names if name in ("scaling", "state-growth", "faults")]
    if alone and len(names) > 1:
        raise StackError(f"{alone[0]} runs alone; name it without other scenarios")
    if alone:
        return alone[0]
    return tuple(dict.fromkeys(names))


def _run(args: argparse.Namespace) -> int:
    chosen = _chosen(args.scenario)
    shared = {
        "users": args.users,
        "seconds": args.seconds,
        "results_dir": args.results_dir,
        "locustfile": args.locustfile,
        "backend": args.backend,
        "server": args.server,
        "command": "authscale " + " ".join(sys.argv[1:])
        if sys.argv[1:]
        else "authscale experiment",
    }
    if chosen == "state-growth":
        if args.backend != "local":
            raise StackError("state-growth runs on the local backend only (it starts its stacks)")
        run_state_growth(
            GrowthConfig(
                sizes=args.sizes,
                shards=GrowthConfig.shards if args.redis_shards is None else args.redis_shards,
                requests=args.requests,
                server=args.server,
                results_dir=args.results_dir,
                command=str(shared["command"]),
            )
        )
        return 0
    if chosen == "scaling":
        config = ExperimentConfig(
            variants=args.variants,
            replicas=args.replicas,
            warm_up=args.warm_up,
            weights=args.weights,
            locust_processes=args.locust_processes,
            servers=args.servers,
            shards=ExperimentConfig.shards if args.redis_shards is None else args.redis_shards,
            cpu_budgets=args.cpu_budgets,
            calibration_seconds=args.calibration_seconds,
            users_per_replica=args.users_per_replica,
            **shared,
        )
        run_experiment(config)
        return 0
    faults = FaultConfig(
        scenarios=() if chosen == "faults" else chosen,
        fault_at=args.fault_at,
        outage=args.outage,
        soak=args.soak_seconds,
        cpu_budgets=args.cpu_budgets,
        **shared,
    )
    run_faults(faults, FAULT_SCENARIOS)
    return 0
