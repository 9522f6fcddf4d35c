"""The replica-scaling experiment (``authscale experiment``, :mod:`.command`).

For each variant, Redis shard count and replica count (a *cell*) the run's backend
(:mod:`authscale.lab.backend`: local processes, or compose with Docker) brings up a stack, every
component under its CPU budget (:mod:`authscale.lab.budgets`), and seeds one account per
simulated user; the experiment watches the stack idle, runs Locust headless (warm-up, then a
fixed window), and meanwhile reads the CPU of every process and Redis's command counters. A
reference measured before the first cell and after the last calibrates the run
(:mod:`.calibration`). The figures go to :mod:`authscale.lab.experiment.report`, which writes
the results folder.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authscale.core.servers import SERVERS
from authscale.lab import load, run
from authscale.lab.backend import Backend, Sample, Stack, StackPlan
from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment import calibration, report
from authscale.lab.experiment.calibration import Calibration, Reference
from authscale.lab.experiment.cells import Cell, CellResult, Variant, grid
from authscale.lab.measure import pace
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
#: Seconds each cell's stack is watched idle before the load: what each process spends on
#: its own (Redis's cron, cluster bus and append-only file), which the model takes off budgets.
IDLE_SECONDS = 3.0
#: Seconds Locust may run past its run time before the cell fails.
LOAD_GRACE = 60.0
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
    #: Every user logs in during the warm-up. Under the budgets, 96 logins at 8 replicas outlast
    #: 8 s (the login throttle writes to a 0.005-core Redis); a cell whose window still holds
    #: logins is marked and left out of the model.
    warm_up: float = 25.0
    weights: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    locust_processes: int = 1
    issuer_replicas: int = 1
    #: Servers measured side by side, each at every cell; empty means just ``server``.
    servers: Sequence[str] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend == "compose" and self.cpu_budgets == CpuBudgets():
            # The local stack's defaults do not fit compose, where a container's healthchecks
            # run in its budget (docs/deploy.md): compose runs without unless given others.
            object.__setattr__(self, "cpu_budgets", None)
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

    def stack_plan(self, cell: Cell, out: Path, attempt: int = 1) -> StackPlan:
        """The cell's stack; a second attempt's in a folder of its own, beside the first's."""
        return StackPlan(
            label=cell.label,
            replicas=cell.stack_replicas(self.issuer_replicas),
            run_dir=out / "stacks" / (cell.slug if attempt == 1 else f"{cell.slug}-{attempt}"),
            env={
                **(run.BUDGETED_ENV if self.cpu_budgets else {}),
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
        try:
            result = _run_cell_twice_at_most(config, backend, cell, out, progress)
        except StackError:
            if results:
                path = _write_report(config, backend, out, results, None)
                progress(f"the report of the {len(results)} cells measured before it: {path}")
            raise
        progress(
            f"  {result.rate:,.0f} req/s, p95 {result.p95_ms:g} ms, {result.failures} failed; "
            f"CPU per request {result.cpu_per_request_total * 1e6:,.0f} µs"
        )
        results.append(result)
    end = _calibrate(config, backend, out, "end", progress)
    calibration = Calibration(start, end, config.cpu_budgets) if start and end else None
    if calibration is not None and not calibration.steady:
        progress(f"the calibrations differ by {calibration.spread:.0%}: {calibration.describe()}")
    _write_report(config, backend, out, results, calibration)
    progress(f"done in {run.elapsed(began)}: {out / 'report.md'}")
    return out


def _write_report(
    config: ExperimentConfig,
    backend: Backend,
    out: Path,
    results: Sequence[CellResult],
    calibration: Calibration | None,
) -> Path:
    return report.write(
        out,
        results,
        config.describe(backend.describe()),
        command=config.command,
        budgets=config.cpu_budgets,
        calibration=calibration,
    )


def _run_cell_twice_at_most(
    config: ExperimentConfig, backend: Backend, cell: Cell, out: Path, progress: run.Progress
) -> CellResult:
    """A cell whose stack failed (never got ready, say) runs once more on a fresh one: an hour's
    run is not lost to one stack. The second failure ends the run."""
    try:
        return run_cell(config, backend, cell, out)
    except StackError as error:
        first_line = str(error).splitlines()[0]
        progress(f"  {cell.label} failed ({first_line}); once more on a fresh stack")
        return run_cell(config, backend, cell, out, attempt=2)


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


def run_cell(
    config: ExperimentConfig, backend: Backend, cell: Cell, out: Path, attempt: int = 1
) -> CellResult:
    """One cell: the backend's stack, seeded, loaded while sampling, then handed back."""
    with backend.stack(config.stack_plan(cell, out, attempt)) as stack:
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
        with pace.Probe(plan.run_time + LOAD_GRACE, window=config.seconds) as probe:
            samples = _load_while_sampling(stack, plan)
        figures = load.read_figures(plan)
        _write_timeline(plan.output_prefix.parent / "cpu_timeline.csv", samples)
        result = CellResult.from_window(
            cell,
            users,
            figures,
            samples,
            config.cpu_budgets,
            idle,
            pace.pace(probe.readings, figures.started, figures.stopped),
        )
        write_processes(plan.output_prefix.parent / "processes.csv", result)
        return result


def _idle(stack: Stack) -> dict[str, float]:
    """Each process's CPU per second while nothing loads the stack."""
    before = stack.sample(os.getpid())[0]
    time.sleep(IDLE_SECONDS)
    spent = stack.sample(os.getpid())[0].minus(before)
    return {name: seconds / spent.at for name, seconds in spent.processes.items() if spent.at}


def _load_while_sampling(stack: Stack, plan: load.LocustPlan) -> list[Sample]:
    samples: list[Sample] = []
    deadline = time.monotonic() + plan.run_time + LOAD_GRACE
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


def write_processes(path: Path, result: CellResult) -> None:
    """Each process's CPU over the window, its budget and its idle CPU: what the model's costs
    are fitted from, kept so that a model can be checked again against a committed run."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["process", "cpu_seconds", "budget_cores", "idle_cores"])
        for name, seconds in sorted(result.process_cpu_seconds.items()):
            budget = result.budgets.get(name)
            idle = result.idle_cores.get(name)
            writer.writerow(
                [
                    name,
                    f"{seconds:.6f}",
                    "" if budget is None else budget,
                    "" if idle is None else f"{idle:.6f}",
                ]
            )
