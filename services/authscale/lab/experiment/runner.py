"""``authscale experiment``: the replica-scaling experiment, and the runner later scenarios share.

For each variant and replica count (a *cell*) a backend brings up a stack (local processes, or
compose with Docker: :mod:`authscale.lab.experiment.cellstack`), seeds one account per simulated
user; the
experiment runs Locust headless (warm-up, then a fixed window), and meanwhile reads the CPU of
every component and Redis's command counters through the backend. The window's figures go to
:mod:`authscale.lab.experiment.report`, which writes the results folder.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from authscale.lab import load
from authscale.lab.experiment import report
from authscale.lab.experiment.cells import Cell, CellResult, Variant
from authscale.lab.experiment.cellstack import Backend, CellStack, LocalBackend, Sample
from authscale.lab.stack.processes import StackError

#: The experiment's variants: the token variant once plain and once with its Redis denylist.
VARIANTS: Mapping[str, Variant] = {
    "session": Variant("session", "session", {}),
    "token": Variant("token", "token", {}),
    "token-denylist": Variant("token-denylist", "token", {"AUTHSCALE_TOKEN_DENYLIST": "true"}),
}
SAMPLE_EVERY = 0.5
#: Mostly dashboard reads; token users also refresh now and then (session users have no refresh).
DEFAULT_WEIGHTS = {"dashboard": 100, "refresh": 1}
BACKENDS = ("local", "compose")


def make_backend(name: str) -> Backend:
    if name == "compose":
        # Imported on demand: the local path never needs the compose module's checks.
        from authscale.lab.compose.backend import ComposeBackend

        return ComposeBackend()
    return LocalBackend()


@dataclass(frozen=True)
class ExperimentConfig:
    variants: Sequence[str] = ("session", "token", "token-denylist")
    replicas: Sequence[int] = (1, 2, 4)
    users: int = 48
    warm_up: float = 10.0
    seconds: float = 30.0
    weights: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    locust_processes: int = 1
    issuer_replicas: int = 1
    results_dir: Path = Path("results")
    locustfile: Path = load.DEFAULT_LOCUSTFILE
    ready_timeout: float = 60.0
    #: AUTHSCALE_* settings for every replica of every cell, on top of the stack's own.
    env: Mapping[str, str] = field(default_factory=dict)
    #: How the report says to reproduce it.
    command: str = "authscale experiment"
    #: Fault scenarios only: seconds into the load when the fault starts, and how long it lasts.
    fault_at: float = 12.0
    outage: float = 10.0
    soak: float = 600.0
    #: What runs each cell's stack: ``local`` processes or ``compose`` (Docker).
    backend: str = "local"

    def __post_init__(self) -> None:
        unknown = [name for name in self.variants if name not in VARIANTS]
        if unknown:
            raise StackError(
                f"unknown variant {', '.join(unknown)}; variants are {', '.join(VARIANTS)}"
            )
        if self.backend not in BACKENDS:
            raise StackError(f"unknown backend {self.backend}; backends are {', '.join(BACKENDS)}")
        if not self.variants:
            raise StackError("name at least one variant")
        bad = [count for count in self.replicas if count < 1]
        if bad or not self.replicas:
            raise StackError(f"replica counts must be 1 or more, got {list(self.replicas)}")
        if self.users < 1 or self.seconds <= 0 or self.warm_up < 0:
            raise StackError("users must be 1 or more, seconds above 0, warm-up 0 or more")

    def describe(self, stack: str) -> dict[str, str]:
        return {
            "backend": self.backend,
            "variants": ", ".join(self.variants),
            "replicas": ", ".join(str(n) for n in self.replicas),
            "issuer replicas (token variants)": str(self.issuer_replicas),
            "simulated users": f"{self.users}, no think time, one seeded account each",
            "warm-up, then measured window": f"{self.warm_up:g} s, then {self.seconds:g} s",
            "task weights": ", ".join(f"{k} {v}" for k, v in self.weights.items()),
            "Locust processes": str(self.locust_processes),
            "stack": stack,
            "replica settings": ", ".join(f"{k}={v}" for k, v in self.env.items()) or "defaults",
            "argon2id": "defaults (19 MiB, 2 passes): logins happen in the warm-up only",
        }

    def cells(self) -> list[Cell]:
        return [Cell(VARIANTS[name], count) for name in self.variants for count in self.replicas]


Progress = Callable[[str], None]


def run_experiment(
    config: ExperimentConfig, progress: Progress = print, backend: Backend | None = None
) -> Path:
    """Run every cell, write the results folder, and return its path.

    ``backend`` defaults to the one ``config.backend`` names; tests pass their own (a compose
    project name of their own, say).
    """
    load.check_installed(config.locustfile)
    backend = backend or make_backend(config.backend)
    backend.prepare(config)
    try:
        return _run_cells(config, backend, progress)
    finally:
        backend.close()


def _run_cells(config: ExperimentConfig, backend: Backend, progress: Progress) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = config.results_dir / stamp
    (out / "raw").mkdir(parents=True, exist_ok=True)
    cells = config.cells()
    results: list[CellResult] = []
    began = time.monotonic()
    for index, cell in enumerate(cells, start=1):
        elapsed = time.monotonic() - began
        left = _remaining(config, backend, elapsed, index - 1, len(cells))
        progress(
            f"cell {index}/{len(cells)}: {cell.label} ({config.users} users, "
            f"{config.warm_up:g} s warm-up + {config.seconds:g} s) "
            f"elapsed {_clock(elapsed)}, about {_clock(left)} left"
        )
        result = run_cell(config, backend, cell, out)
        progress(
            f"  {result.rate:,.0f} req/s, p95 {result.p95_ms:g} ms, {result.failures} failed; "
            f"CPU per request {result.cpu_per_request_total * 1e6:,.0f} µs"
        )
        results.append(result)
    report.write(out, results, config.describe(backend.describe()), command=config.command)
    progress(f"done in {_clock(time.monotonic() - began)}: {out / 'report.md'}")
    return out


def run_cell(config: ExperimentConfig, backend: Backend, cell: Cell, out: Path) -> CellResult:
    """One cell: the backend's stack, seeded, loaded while sampling, then handed back."""
    with backend.stack(config, cell, out) as stack:
        stack.seed(config.users)
        plan = load.LocustPlan(
            host=stack.gateway_url,
            variant=cell.variant.role,
            users=config.users,
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
        return CellResult.from_window(cell, config.users, figures, samples)


def _load_while_sampling(stack: CellStack, plan: load.LocustPlan) -> list[Sample]:
    with plan.log_file.open("ab") as log:
        process = subprocess.Popen(
            plan.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    samples: list[Sample] = []
    deadline = time.monotonic() + plan.run_time + 60
    try:
        while True:
            # Read the CPU before Locust is reaped: a reaped process has no /proc entry left.
            samples.append(stack.sample(process.pid))
            if process.poll() is not None:
                break
            if time.monotonic() > deadline:
                raise StackError(f"Locust overran its run time; read {plan.log_file}")
            time.sleep(SAMPLE_EVERY)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise StackError(
            f"Locust exited with status {process.returncode}; read {plan.log_file}:\n"
            + "\n".join(load.tail_of(plan))
        )
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


def _remaining(
    config: ExperimentConfig, backend: Backend, elapsed: float, done: int, total: int
) -> float:
    if done:
        return elapsed / done * (total - done)
    # Before the first cell: the load itself plus the time to start and stop a stack.
    return (config.warm_up + config.seconds + backend.overhead_seconds) * total


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


# -- command -----------------------------------------------------------------------------------


def run_fault_scenarios(
    config: ExperimentConfig, progress: Progress, names: Sequence[str] = ()
) -> Path:
    """The fault and abuse scenarios (all, or ``names``), each under steady load."""
    from authscale.lab.faults.runner import FaultConfig, run_faults
    from authscale.lab.faults.scenarios import SCENARIOS as FAULTS

    fault_config = FaultConfig(
        scenarios=names,
        users=config.users,
        seconds=config.seconds,
        fault_at=config.fault_at,
        outage=config.outage,
        soak=config.soak,
        results_dir=config.results_dir,
        locustfile=config.locustfile,
        ready_timeout=config.ready_timeout,
        env=config.env,
        command=config.command,
        backend=config.backend,
    )
    return run_faults(fault_config, FAULTS, progress)


def _fault_scenario(name: str) -> Callable[[ExperimentConfig, Progress], Path]:
    return lambda config, progress: run_fault_scenarios(config, progress, (name,))


#: The fault scenarios, each runnable alone (`authscale experiment redis-outage`).
FAULT_SCENARIOS = (
    "redis-outage",
    "replica-loss",
    "rolling-restart",
    "key-rotation",
    "revocation",
    "login-storm",
    "abuse",
    "soak",
)

#: Scenario name -> the function that runs it.
SCENARIOS: dict[str, Callable[[ExperimentConfig, Progress], Path]] = {
    "scaling": run_experiment,
    "faults": run_fault_scenarios,
    **{name: _fault_scenario(name) for name in FAULT_SCENARIOS},
}


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "experiment",
        help="run an experiment on local or compose stacks and write results/<timestamp>/",
        description="Without a scenario, runs the replica-scaling experiment.",
    )
    parser.add_argument("scenario", nargs="?", default="scaling", choices=sorted(SCENARIOS))
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
        help="comma-separated replica counts (default 1,2,4)",
    )
    parser.add_argument("--users", type=int, default=ExperimentConfig.users)
    parser.add_argument("--warm-up", type=float, default=ExperimentConfig.warm_up)
    parser.add_argument("--seconds", type=float, default=ExperimentConfig.seconds)
    parser.add_argument(
        "--weights",
        type=_weights,
        default=None,
        help="task weights, e.g. dashboard=100,refresh=1 (the default)",
    )
    parser.add_argument("--locust-processes", type=int, default=1)
    parser.add_argument(
        "--fault-at",
        type=float,
        default=ExperimentConfig.fault_at,
        help="fault scenarios: seconds into the load when the fault starts (default 12)",
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=ExperimentConfig.outage,
        help="fault scenarios: seconds Redis or a killed replica stays down (default 10)",
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=ExperimentConfig.soak,
        help="the soak scenario's seconds of load (default 600)",
    )
    parser.add_argument("--results-dir", type=Path, default=ExperimentConfig.results_dir)
    parser.add_argument("--locustfile", type=Path, default=load.DEFAULT_LOCUSTFILE)
    parser.add_argument(
        "--backend",
        default=ExperimentConfig.backend,
        help="local (processes on loopback, the default) or compose (Docker, compose.yaml)",
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


def _run(args: argparse.Namespace) -> int:
    config = ExperimentConfig(
        variants=args.variants,
        replicas=args.replicas,
        users=args.users,
        warm_up=args.warm_up,
        seconds=args.seconds,
        weights=args.weights or DEFAULT_WEIGHTS,
        locust_processes=args.locust_processes,
        results_dir=args.results_dir,
        locustfile=args.locustfile,
        fault_at=args.fault_at,
        outage=args.outage,
        soak=args.soak_seconds,
        backend=args.backend,
        command="authscale " + " ".join(sys.argv[1:]) if sys.argv[1:] else "authscale experiment",
    )
    SCENARIOS[args.scenario](config, lambda line: print(line, flush=True))
    return 0
