"""``authscale experiment``: the command line of every lab run.

Without a scenario it runs the replica-scaling experiment (:mod:`.runner`); ``state-growth``
the store-growth experiment (:mod:`.state_growth`); the fault scenarios
(:mod:`authscale.lab.faults`) run by name, or all of them as ``faults``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from authscale.core.servers import SERVERS
from authscale.lab import run
from authscale.lab.budgets import CpuBudgets, from_argument
from authscale.lab.experiment import earlier_run
from authscale.lab.experiment.growth_results import GrowthConfig
from authscale.lab.experiment.runner import (
    DEFAULT_WEIGHTS,
    VARIANTS,
    ExperimentConfig,
    run_experiment,
)
from authscale.lab.experiment.state_growth import run_state_growth
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.runner import run_faults
from authscale.lab.faults.scenarios import SCENARIOS as FAULT_SCENARIOS
from authscale.lab.stack.processes import StackError

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
    parser.add_argument(
        "--report-from",
        type=Path,
        metavar="DIR",
        help="scaling: write the report of the run in DIR again from its measurements (its "
        "summary.json and raw/), with this version's model; runs nothing",
    )
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
        f"rest default); default: {CpuBudgets().describe()}, on the local backend only (compose "
        "runs without unless given others: a container's healthchecks run in its budget, "
        "docs/deploy.md); none: share the machine",
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


def _scaling_shards(args: argparse.Namespace) -> Sequence[int]:
    """``--redis-shards``, else the grid's shard counts; compose runs one Redis (no cluster)."""
    if args.redis_shards is not None:
        return list(args.redis_shards)
    return (0,) if args.backend == "compose" else ExperimentConfig.shards


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
    if args.report_from is not None:
        if chosen != "scaling":
            raise StackError("--report-from reports a scaling run again; name no scenario")
        print(earlier_run.load(args.report_from).report_again())
        return 0
    if chosen == "scaling":
        config = ExperimentConfig(
            variants=args.variants,
            replicas=args.replicas,
            warm_up=args.warm_up,
            weights=args.weights,
            locust_processes=args.locust_processes,
            servers=args.servers,
            shards=_scaling_shards(args),
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
