"""``authscale experiment faults``: break the stack under steady load and record what happens.

Each scenario gets a fresh stack with both variants (two replicas of each, two issuers) from the
run's backend (:mod:`authscale.lab.backend`), seeded accounts, and Locust's steady readers of
both variants running headless. While they run, the scenario breaks something (kills a replica,
stops Redis, restarts everything, ...) and marks the moments; Locust counts every answer per
second by name, status and outcome (the locustfile's ``--timeline``), so the report tells a 503
(the design) from a 401 (a lost session) or a 500 (a bug). Each scenario also checks what its
own probes kept (sessions, tokens) and returns the rows of its table: target, what was
observed, met or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from authscale.lab import load, run
from authscale.lab.backend import LOAD_LOGIN_LIMIT, Backend, Stack, StackPlan
from authscale.lab.faults import latency
from authscale.lab.faults import report as fault_report
from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.latency import LatencyHistory
from authscale.lab.faults.timeline import Timeline
from authscale.lab.stack.backend import LocalBackend
from authscale.lab.stack.processes import StackError

#: Bounds on a fault: at most this long, and the load runs on this long after it.
MAX_FAULT = 300.0
AFTER_FAULT = 5.0
#: How long past ``fault_at`` a fault waits at most for the load's logins to end.
MAX_SETTLE = 120.0


class FaultRun:
    """A fresh stack for one scenario, the load on it, and the marks of what was done when."""

    def __init__(
        self,
        config: FaultConfig,
        name: str,
        out: Path,
        backend: Backend,
        *,
        replicas: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        login_limit: tuple[str, int] | None = None,
        redis_shards: int = 0,
    ) -> None:
        self.config = config
        self.name = name
        self.out = out
        self.backend = backend
        self.raw = out / "raw" / name
        self.marks: list[tuple[float, str]] = []
        self.plan = StackPlan(
            label=name,
            replicas=replicas or {"session": 2, "token": 2, "issuer": 2},
            run_dir=out / "stacks" / name,
            env={
                **(run.BUDGETED_ENV if config.cpu_budgets else {}),
                **config.env,
                **(env or {}),
            },
            # Every simulated user logs in from one address; the abuse scenario keeps a real
            # per-address limit, with a burst for those first logins.
            login_limit=login_limit or LOAD_LOGIN_LIMIT,
            ready_timeout=config.ready_timeout,
            family=name,
            server=config.server,
            redis_shards=redis_shards,
            cpu_budgets=config.cpu_budgets,
        )
        self._exit = ExitStack()
        self._stack: Stack | None = None

    @property
    def stack(self) -> Stack:
        assert self._stack is not None, "enter the FaultRun first"
        return self._stack

    def __enter__(self) -> FaultRun:
        self.raw.mkdir(parents=True, exist_ok=True)
        with ExitStack() as starting:
            # Each scenario's stack is its own: nothing of it outlives the scenario.
            starting.callback(self.backend.close)
            self._stack = starting.enter_context(self.backend.stack(self.plan))
            self._stack.seed(self.config.users + self.config.probes)
            self._exit = starting.pop_all()
        return self

    def __exit__(self, *_: object) -> None:
        self._exit.close()

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
        settle: bool = False,
    ) -> Timeline:
        """Load the stack; call ``fault`` ``fault_at`` seconds in; return the answers' counts.

        With ``settle`` the fault also waits, up to :data:`MAX_SETTLE` seconds more, until no
        login has been answered for ``outage`` seconds: a scenario that compares the rate
        before the fault with the rate during it needs a steady rate before it, and under CPU
        budgets the users' logins take longer than ``fault_at``.

        The load lasts ``seconds``, or until ``AFTER_FAULT`` seconds after ``fault`` returns if
        that is later (a rolling restart takes as long as it takes); Locust stops on SIGTERM,
        which ends its run cleanly and writes its timeline.
        """
        seconds = seconds if seconds is not None else self.config.seconds
        timeline_path = self.raw / f"{tag}-timeline.csv"
        history_path = self.raw / f"{tag}_stats_history.csv"
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
            # Per-name rows in the stats history: the report plots each variant's latency.
            extra_args=("--timeline", str(timeline_path), "--csv-full-history"),
        )
        with load.Locust(plan) as locust:
            began = time.monotonic()
            self.mark("load starts")
            locust.wait(began + self.config.fault_at)
            if settle:
                self._until_logins_end(locust, history_path)
            if not locust.running():
                raise StackError(f"Locust stopped before the fault; read {plan.log_file}")
            fault()
            locust.wait(max(began + seconds, time.monotonic() + AFTER_FAULT))
            self.mark("load ends")
            locust.stop()
        locust.check(timeline_path)
        history = LatencyHistory.read(history_path) if history_path.is_file() else None
        return replace(Timeline.read(timeline_path), latency=history)

    def _until_logins_end(self, locust: load.Locust, history: Path) -> None:
        """Until Locust's history shows no login for ``outage`` seconds (at least 2), at most
        :data:`MAX_SETTLE` seconds; marks which of the two ended the wait."""
        steady = max(self.config.outage, 2.0)
        deadline = time.monotonic() + MAX_SETTLE
        while time.monotonic() < deadline and locust.running():
            quiet = latency.quiet_for(history, "login")
            if quiet is not None and quiet >= steady:
                self.mark("logins settled")
                return
            locust.wait(time.monotonic() + 1.0)
        self.mark(f"logins still running {MAX_SETTLE:g} s past the fault time")


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
    #: 0: the stack's one Redis; N: a Redis Cluster of N masters (local stack only).
    redis_shards: int = 0


def run_faults(
    config: FaultConfig,
    scenarios: Mapping[str, ScenarioSpec],
    progress: run.Progress = run.say,
    collect: dict[str, ScenarioResult] | None = None,
) -> Path:
    """Run the chosen scenarios one after another, each on its own stack; write the report.

    ``collect``, if given, receives each scenario's result by name (the tests read it).
    """
    load.check_installed(config.locustfile)
    chosen = list(config.scenarios) or list(scenarios)
    unknown = [name for name in chosen if name not in scenarios]
    if unknown:
        raise StackError(
            f"unknown fault scenario {', '.join(unknown)}; scenarios are {', '.join(scenarios)}"
        )
    backend = run.make_backend(config.backend, config.project)
    backend.prepare(config.env)
    out = run.results_folder(config.results_dir, "faults-")
    results = []
    began = time.monotonic()
    for index, name in enumerate(chosen, start=1):
        spec = scenarios[name]
        progress(f"scenario {index}/{len(chosen)}: {name}, elapsed {run.elapsed(began)}")
        limit = spec.login_limit(config) if spec.login_limit else None
        here: Backend = backend
        if spec.local_only and backend.name != "local":
            here = LocalBackend()
            progress(f"  on the local stack: {spec.local_only}")
        with FaultRun(
            config,
            name,
            out,
            here,
            env=spec.env,
            login_limit=limit,
            redis_shards=spec.redis_shards,
        ) as fault_run:
            result = spec.run(fault_run)
        result.marks = fault_run.marks
        result.backend = fault_run.stack.backend
        result.notes += fault_run.stack.notes
        if here is not backend:
            result.notes.append(f"Ran on the local stack, not on {backend.name}: {spec.local_only}")
        results.append(result)
        if collect is not None:
            collect[name] = result
        for check in result.checks:
            progress(f"  {'met ' if check.met else 'MISSED'}  {check.target}: {check.observed}")
    fault_report.write(out, results, config)
    progress(f"done in {run.elapsed(began)}: {out / 'report.md'}")
    return out
