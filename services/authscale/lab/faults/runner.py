"""``authscale experiment faults``: break the stack under steady load and record what happens.

Each scenario gets a fresh local stack with both variants (two replicas of each, two issuers),
seeded accounts, and Locust's steady readers of both variants running headless. While they run,
the scenario breaks something (kills a replica, stops Redis, restarts everything, ...) and marks
the moments; Locust counts every answer per second by name, status and outcome (the locustfile's
``--timeline``), so the report tells a 503 (the design) from a 401 (a lost session) or a 500 (a
bug). Each scenario also checks what its own probes kept (sessions, tokens) and returns the rows
of its table: target, what was observed, met or not.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from authscale.lab import load
from authscale.lab.faults.stack import FaultStack, LocalFaultStack
from authscale.lab.faults.timeline import Timeline
from authscale.lab.stack.local import StackConfig
from authscale.lab.stack.processes import StackError, free_port

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FaultConfig:
    scenarios: Sequence[str] = ()
    users: int = 24
    #: Seconds of load per scenario, and when (after Locust starts) the fault begins.
    seconds: float = 45.0
    fault_at: float = 12.0
    #: How long Redis stays down, and how long a killed replica stays dead.
    outage: float = 10.0
    #: Accounts logged in outside Locust before the fault and checked after it.
    probes: int = 20
    #: Seconds of load in the soak scenario.
    soak: float = 600.0
    results_dir: Path = Path("results")
    locustfile: Path = load.DEFAULT_LOCUSTFILE
    ready_timeout: float = 60.0
    #: AUTHSCALE_* settings for every replica, on top of the stack's and the scenario's.
    env: Mapping[str, str] = field(default_factory=dict)
    command: str = "authscale experiment faults"
    #: What runs each scenario's stack: ``local`` processes or ``compose`` (Docker).
    backend: str = "local"
    #: Compose only: each scenario's project is ``<project>-<scenario>``.
    project: str = "authscale-faults"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise StackError(f"unknown backend {self.backend}; backends are {', '.join(BACKENDS)}")
        if self.users < 2 or self.seconds <= 0 or self.fault_at < 0 or self.outage < 0:
            raise StackError(
                "users must be 2 or more (one per variant), seconds above 0, "
                "fault time and outage 0 or more"
            )
        if self.soak <= self.fault_at:
            raise StackError(f"the soak ({self.soak:g} s) must outlast the fault delay")
        if self.fault_at + self.outage >= self.seconds:
            raise StackError(
                f"the fault ({self.fault_at:g} s + {self.outage:g} s) must end before the load "
                f"does ({self.seconds:g} s): raise --seconds"
            )


BACKENDS = ("local", "compose")


@dataclass(frozen=True)
class Check:
    """One row of a scenario's table."""

    target: str
    observed: str
    met: bool
    #: A measured target (speed, memory growth): reported, never asserted by the test suite,
    #: whose short runs say nothing about either.
    measured: bool = False


@dataclass
class ScenarioResult:
    name: str
    title: str
    checks: list[Check] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    timeline: Timeline | None = None
    notes: list[str] = field(default_factory=list)
    #: What ran the stack: ``local`` or ``compose``.
    backend: str = "local"

    @property
    def met(self) -> bool:
        return all(check.met for check in self.checks)


class FaultRun:
    """A fresh stack for one scenario, the load on it, and the marks of what was done when."""

    def __init__(
        self,
        config: FaultConfig,
        name: str,
        out: Path,
        *,
        replicas: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        login_limit: tuple[str, int] | None = None,
        backend: str | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.out = out
        self.raw = out / "raw" / name
        self.marks: list[tuple[float, str]] = []
        replicas = replicas or {"session": 2, "token": 2, "issuer": 2}
        # Every simulated user logs in from one address; the abuse scenario keeps a real
        # per-address limit, with a burst for those first logins.
        limit = login_limit or ("100000r/s", 100000)
        settings = {"AUTHSCALE_LOG_LEVEL": "WARNING", **config.env, **(env or {})}
        run_dir = out / "stacks" / name
        self.stack: FaultStack
        if (backend or config.backend) == "compose":
            from authscale.lab.faults.compose import ComposeFaultStack

            self.stack = ComposeFaultStack(
                f"{config.project}-{name}", run_dir, replicas, limit, settings,
                config.ready_timeout,
            )  # fmt: skip
        else:
            self.stack = LocalFaultStack(
                StackConfig(
                    run_dir=run_dir,
                    replicas=replicas,
                    gateway_port=free_port(),
                    redis_port=free_port(),
                    base_port=None,
                    login_rate=limit[0],
                    login_burst=limit[1],
                    demo_user=False,
                    env=settings,
                    ready_timeout=config.ready_timeout,
                )
            )

    def __enter__(self) -> FaultRun:
        self.raw.mkdir(parents=True, exist_ok=True)
        try:
            try:
                self.stack.up()
            except StackError as error:
                raise StackError(f"{self.name}: the stack never got ready: {error}") from error
            self.stack.seed(self.config.users + self.config.probes)
        except BaseException:
            # Whatever came up goes down again, the compose project's volumes included.
            self.stack.down()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stack.down()

    @property
    def probe_accounts(self) -> list[str]:
        first = self.config.users
        return [f"loaduser{n}" for n in range(first, first + self.config.probes)]

    def mark(self, label: str) -> None:
        self.marks.append((time.time(), label))

    def under_load(
        self,
        fault: Callable[[], None],
        *,
        seconds: float | None = None,
        users: int | None = None,
        variant: str = "both",
        scenario: str = "steady",
        tag: str = "load",
        weights: Mapping[str, int] | None = None,
        warm_up: float = 0.0,
    ) -> Timeline:
        """Load the stack; call ``fault`` ``fault_at`` seconds in; return the answers' counts.

        The load lasts ``seconds``, or until ``AFTER_FAULT`` seconds after ``fault`` returns if
        that is later (a rolling restart takes as long as it takes); Locust stops on SIGTERM,
        which ends its run cleanly and writes its timeline.
        """
        seconds = seconds if seconds is not None else self.config.seconds
        timeline_path = self.raw / f"{tag}-timeline.csv"
        plan = load.LocustPlan(
            host=self.stack.gateway_url,
            variant=variant,
            users=users or self.config.users,
            warm_up=warm_up,
            # An upper bound only: the run is ended below.
            seconds=seconds + MAX_FAULT,
            output_prefix=self.raw / tag,
            # Refreshes only when due (or when the last one answered 503): the steady mix.
            weights=weights or {"dashboard": 100, "refresh": 0},
            locustfile=self.config.locustfile,
            scenario=scenario,
            extra_args=("--timeline", str(timeline_path)),
        )
        with plan.log_file.open("ab") as log:
            process = subprocess.Popen(
                plan.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        began = time.monotonic()
        self.mark("load starts")
        try:
            _wait(process, began + self.config.fault_at)
            if process.poll() is not None:
                raise StackError(f"Locust stopped before the fault; read {plan.log_file}")
            fault()
            _wait(process, max(began + seconds, time.monotonic() + AFTER_FAULT))
            self.mark("load ends")
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise StackError(f"Locust did not stop; read {plan.log_file}") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0 or not timeline_path.exists():
            raise StackError(
                f"Locust exited with status {process.returncode} and no timeline; read "
                f"{plan.log_file}:\n" + "\n".join(load.tail_of(plan))
            )
        return Timeline.read(timeline_path)


#: Bounds on a fault: at most this long, and the load runs on this long after it.
MAX_FAULT = 300.0
AFTER_FAULT = 5.0


def _wait(process: subprocess.Popen[bytes], until: float) -> None:
    while time.monotonic() < until and process.poll() is None:
        time.sleep(0.1)


Scenario = Callable[[FaultRun], ScenarioResult]


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario and what its stack needs beyond the defaults."""

    run: Scenario
    env: Mapping[str, str] = field(default_factory=dict)
    #: nginx's login limit per client address (rate, burst); None lifts it for the load.
    login_limit: Callable[[FaultConfig], tuple[str, int]] | None = None
    #: Why the scenario runs on the local stack whatever the backend; None: it runs on either.
    local_only: str | None = None


def run_faults(
    config: FaultConfig,
    scenarios: Mapping[str, ScenarioSpec],
    progress: Progress = print,
    collect: dict[str, ScenarioResult] | None = None,
) -> Path:
    """Run the chosen scenarios one after another, each on its own stack; write the report.

    ``collect``, if given, receives each scenario's result by name (the tests read it).
    """
    from authscale.lab.faults import report as fault_report

    load.check_installed(config.locustfile)
    chosen = list(config.scenarios) or list(scenarios)
    unknown = [name for name in chosen if name not in scenarios]
    if unknown:
        raise StackError(
            f"unknown fault scenario {', '.join(unknown)}; scenarios are {', '.join(scenarios)}"
        )
    out = config.results_dir / ("faults-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    began = time.monotonic()
    for index, name in enumerate(chosen, start=1):
        spec = scenarios[name]
        progress(f"scenario {index}/{len(chosen)}: {name}, elapsed {_elapsed(began)}")
        limit = spec.login_limit(config) if spec.login_limit else None
        backend = "local" if spec.local_only else config.backend
        if backend != config.backend:
            progress(f"  on the local stack: {spec.local_only}")
        with FaultRun(config, name, out, env=spec.env, login_limit=limit, backend=backend) as run:
            result = spec.run(run)
        result.marks = run.marks
        result.backend = run.stack.backend
        result.notes += run.stack.notes
        if backend != config.backend:
            result.notes.append(
                f"Ran on the local stack, not on {config.backend}: {spec.local_only}"
            )
        results.append(result)
        if collect is not None:
            collect[name] = result
        for check in result.checks:
            progress(f"  {'met ' if check.met else 'MISSED'}  {check.target}: {check.observed}")
    fault_report.write(out, results, config)
    progress(f"done in {_elapsed(began)}: {out / 'report.md'}")
    return out


def _elapsed(began: float) -> str:
    minutes, seconds = divmod(round(time.monotonic() - began), 60)
    return f"{minutes}m{seconds:02d}s"
