"""Locust as a child process of a lab run: its command line, its process, its statistics.

Both the scaling experiment and the fault scenarios run Locust through :class:`Locust`: started
headless, waited for (or stopped with SIGTERM, which ends the run cleanly), checked.

The locustfile resets Locust's statistics when its warm-up ends and logs the moment, and logs the
moment the run stops; between the two marks lies the measured window, which the experiment also
uses to cut its own CPU and Redis readings. Statistics come from ``--json-file``, written at exit
from the final figures, and include each request's response-time histogram.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authscale.lab import assets
from authscale.lab.stack.processes import StackError

#: The locustfile shipped with the package (loadtests/ in a checkout).
DEFAULT_LOCUSTFILE = assets.path("loadtests", "locustfile.py")
_MARK = re.compile(r"authscale: measuring (from|until) (\d+\.\d+)")


@dataclass(frozen=True)
class LocustPlan:
    """One headless run: who, how many, how long, and what the simulated users do."""

    host: str
    variant: str
    users: int
    warm_up: float
    seconds: float
    output_prefix: Path
    weights: Mapping[str, int] = field(default_factory=dict)
    processes: int = 1
    locustfile: Path = DEFAULT_LOCUSTFILE
    scenario: str = "steady"
    #: Further Locust options, e.g. ``("--timeline", PATH)`` for the fault experiments.
    extra_args: Sequence[str] = ()

    @property
    def run_time(self) -> int:
        # Locust counts run time from before its users start; the slack keeps the measured
        # window at least ``seconds`` long after the warm-up mark.
        return math.ceil(self.warm_up + self.seconds + 2)

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "locust",
            "--locustfile",
            str(self.locustfile),
            "--headless",
            "--only-summary",
            "--host",
            self.host,
            "--users",
            str(self.users),
            # Everyone starts within the first second or so: logins belong to the warm-up.
            "--spawn-rate",
            str(max(self.users, 1)),
            "--run-time",
            f"{self.run_time}s",
            "--stop-timeout",
            "2",
            "--variant",
            self.variant,
            "--scenario",
            self.scenario,
            "--warm-up",
            f"{self.warm_up:g}",
            "--accounts",
            str(self.users),
            "--csv",
            str(self.output_prefix),
            "--json-file",
            str(self.output_prefix),
            "--logfile",
            str(self.log_file),
            "--exit-code-on-error",
            "0",
        ]
        if self.processes > 1:
            argv += ["--processes", str(self.processes)]
        for option, weight in self.weights.items():
            argv += [f"--{option}-weight", str(weight)]
        return argv + list(self.extra_args)

    @property
    def log_file(self) -> Path:
        return self.output_prefix.with_name(self.output_prefix.name + ".log")


class Locust:
    """One running Locust: ``with Locust(plan) as locust: ...``; killed if the block fails."""

    def __init__(self, plan: LocustPlan) -> None:
        self.plan = plan
        with plan.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                plan.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def __enter__(self) -> Locust:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, until: float) -> None:
        """Until the :func:`time.monotonic` moment ``until``, or until Locust exits."""
        while time.monotonic() < until and self.running():
            time.sleep(0.1)

    def stop(self) -> None:
        """End the run now (SIGTERM): Locust stops its users and writes its files."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise StackError(f"Locust did not stop; read {self.plan.log_file}") from None

    def check(self, *wanted: Path) -> None:
        """Locust exited cleanly and wrote ``wanted``; otherwise an error quoting its log."""
        missing = [str(path) for path in wanted if not path.exists()]
        if self.process.returncode != 0 or missing:
            raise StackError(
                f"Locust exited with status {self.process.returncode}"
                + (f" without {', '.join(missing)}" if missing else "")
                + f"; read {self.plan.log_file}:\n"
                + "\n".join(tail_of(self.plan))
            )


def check_installed(locustfile: Path) -> None:
    if importlib.util.find_spec("locust") is None:
        raise StackError(
            "Locust is not installed in this Python; install it with: "
            f"{sys.executable} -m pip install -e '.[loadtest]' (or run `make experiment`)"
        )
    if not locustfile.is_file():
        raise StackError(f"no locustfile at {locustfile}; pass --locustfile PATH")


@dataclass(frozen=True)
class LocustFigures:
    """What Locust measured between the two marks."""

    started: float
    stopped: float
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    by_name: Mapping[str, tuple[int, int]]

    @property
    def seconds(self) -> float:
        return self.stopped - self.started

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def read_figures(plan: LocustPlan) -> LocustFigures:
    marks = {kind: float(at) for kind, at in _MARK.findall(_read(plan.log_file))}
    if "from" not in marks or "until" not in marks:
        raise StackError(
            f"Locust did not mark its measured window; read {plan.log_file}:\n"
            + "\n".join(_read(plan.log_file).splitlines()[-15:])
        )
    json_path = plan.output_prefix.with_name(plan.output_prefix.name + ".json")
    try:
        entries = json.loads(json_path.read_text())
    except (OSError, ValueError) as error:
        raise StackError(f"Locust wrote no statistics to {json_path}: {error}") from error
    histogram: dict[int, int] = {}
    by_name = {}
    for entry in entries:
        by_name[entry["name"]] = (int(entry["num_requests"]), int(entry["num_failures"]))
        for bucket, count in entry["response_times"].items():
            histogram[int(float(bucket))] = histogram.get(int(float(bucket)), 0) + int(count)
    return LocustFigures(
        started=marks["from"],
        stopped=marks["until"],
        requests=sum(requests for requests, _ in by_name.values()),
        failures=sum(failures for _, failures in by_name.values()),
        p50_ms=percentile(histogram, 0.50),
        p95_ms=percentile(histogram, 0.95),
        p99_ms=percentile(histogram, 0.99),
        by_name=by_name,
    )


def percentile(histogram: Mapping[int, int], fraction: float) -> float:
    """The smallest bucket (Locust's rounded milliseconds) holding ``fraction`` of the answers."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    wanted = fraction * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= wanted:
            return float(bucket)
    return float(max(histogram))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def tail_of(plan: LocustPlan, lines: int = 15) -> Sequence[str]:
    return _read(plan.log_file).splitlines()[-lines:]
