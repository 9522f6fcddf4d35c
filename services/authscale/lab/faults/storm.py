"""A login storm beside steady readers: does hashing passwords slow everyone else down?

The readers run twice on the same stack, once alone and once while a second Locust process logs
in and out as fast as it can (argon2id on every login). Both runs reset their statistics when
the storm starts (or would start), so the two p99s cover the same stretch of each run. Target:
the readers' p99 at most twice its value without the storm (hashing runs on a thread pool, off
the event loop that answers the readers).
"""

from __future__ import annotations

import json
from pathlib import Path

from authscale.lab import load
from authscale.lab.faults.checks import Check, ScenarioResult
from authscale.lab.faults.runner import FaultRun
from authscale.lab.faults.timeline import Timeline, describe
from authscale.lab.stack.processes import StackError

READERS = ("session dashboard", "token dashboard")
STORM_LOGINS = ("session login", "token login")


def login_storm(run: FaultRun) -> ScenarioResult:
    result = ScenarioResult("login-storm", "Login storm beside steady readers")
    config = run.config
    # Statistics from one second after the storm starts, in both runs.
    warm_up = config.fault_at + 1
    run.under_load(lambda: None, tag="alone", warm_up=warm_up)
    storm_users = max(2, config.users // 2)
    storm = load.LocustPlan(
        host=run.stack.gateway_url,
        variant="both",
        users=storm_users,
        warm_up=0,
        seconds=config.seconds + 60,  # an upper bound: stopped with the readers below
        output_prefix=run.raw / "storm",
        locustfile=config.locustfile,
        scenario="login-storm",
        extra_args=("--timeline", str(run.raw / "storm-timeline.csv")),
    )
    storms: list[load.Locust] = []

    def start_storm() -> None:
        run.mark(f"storm: {storm_users} users log in and out")
        storms.append(load.Locust(storm))

    try:
        result.timeline = run.under_load(start_storm, tag="beside-storm", warm_up=warm_up)
    finally:
        for locust in storms:
            with locust:
                if locust.running():
                    locust.stop()
    storm_path = run.raw / "storm-timeline.csv"
    if not storm_path.exists():
        raise StackError(f"the storm wrote no timeline; read {storm.log_file}")
    logins = Timeline.read(storm_path).select(names=STORM_LOGINS)
    alone = _p99(run.raw / "alone.json")
    beside = _p99(run.raw / "beside-storm.json")
    readers = result.timeline.select(names=READERS)
    result.checks = [
        *[
            Check(
                f"{name}: p99 beside the storm at most 2x alone",
                f"{beside[name]:g} ms beside vs {alone[name]:g} ms alone "
                f"({beside[name] / alone[name]:.1f}x)"
                if alone.get(name)
                else "no answers",
                bool(alone.get(name)) and beside[name] <= 2 * alone[name],
                measured=True,
            )
            for name in READERS
        ],
        Check(
            "readers: no failure during the storm",
            f"{Timeline.failed(readers)} of {Timeline.total(readers):,} failed "
            f"({describe(Timeline.by_status(readers, failed_only=True))})",
            Timeline.failed(readers) == 0,
        ),
        Check(
            "storm logins: answered, never 500",
            f"{Timeline.total(logins):,} logins ({describe(Timeline.by_status(logins))})",
            Timeline.total(logins) > 0 and 500 not in Timeline.by_status(logins),
        ),
    ]
    return result


def _p99(path: Path) -> dict[str, float]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StackError(f"Locust wrote no statistics to {path}: {error}") from error
    return {
        entry["name"]: load.percentile(
            {int(float(k)): int(v) for k, v in entry["response_times"].items()}, 0.99
        )
        for entry in entries
    }
