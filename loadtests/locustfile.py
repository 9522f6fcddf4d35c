"""authscale's load test: simulated people using the session and the token variant.

    locust -f loadtests/locustfile.py --variant session            # web UI on :8089
    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 1m --csv results/run
    locust -f loadtests/locustfile.py --scenario login-storm --variant token

Every option below can also be set as an environment variable (``LOCUST_VARIANT=token``), in a
``locust.conf``, or in the web UI. Accounts come from ``authscale users seed --count N``.
"""

# isort: off
import locust  # first: Locust patches the standard library with gevent on import

# isort: on
import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.runners import WorkerRunner

from mix import WEIGHT_OPTIONS, apply_weights
from session_users import SessionLoginStorm, SessionReader
from timeline import Timeline
from token_users import TokenLoginStorm, TokenReader

__all__ = ["SessionLoginStorm", "SessionReader", "TokenLoginStorm", "TokenReader", "locust"]

VARIANTS = ("session", "token", "both")
SCENARIOS = ("steady", "login-storm")
#: What the experiment runner looks for in Locust's log to align its own measurements.
MEASURING_MARK = "authscale: measuring from"

logger = logging.getLogger(__name__)
_timeline = Timeline()


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="both",
        env_var="LOCUST_VARIANT",
        help="which variant's users to run (default both)",
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="steady",
        env_var="LOCUST_SCENARIO",
        help="steady readers, or a login storm (argon2id on every iteration)",
    )
    for option, action in WEIGHT_OPTIONS.items():
        flag = "--" + option.replace("_", "-")
        parser.add_argument(
            flag,
            type=_weight,
            default=None,
            env_var="LOCUST_" + option.upper(),
            help=f"weight of the {action} action (default: its @task weight)",
        )
    parser.add_argument(
        "--think-time",
        type=float,
        default=0.0,
        env_var="LOCUST_THINK_TIME",
        help="mean seconds between two actions of one user (default 0: as fast as possible)",
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=1000,
        env_var="LOCUST_ACCOUNTS",
        help="how many accounts `authscale users seed` created (default 1000)",
    )
    parser.add_argument(
        "--account-prefix",
        default="loaduser",
        env_var="LOCUST_ACCOUNT_PREFIX",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--password",
        default="loadtest-password",
        env_var="LOCUST_PASSWORD",
        is_secret=True,
        help="the seeded accounts' password",
    )
    parser.add_argument(
        "--warm-up",
        type=float,
        default=0.0,
        env_var="LOCUST_WARM_UP",
        help="seconds after the start when the statistics are reset (default 0: never)",
    )
    parser.add_argument(
        "--timeline",
        default="",
        env_var="LOCUST_TIMELINE",
        include_in_web_ui=False,
        help="write per-second answers by name, status and outcome to this CSV (one process only)",
    )


def _weight(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"a task weight is 0 or more, got {value}")
    return value


@events.init.add_listener
def _choose_users(environment: Any, runner: Any, **_: object) -> None:
    """Keep the users of the chosen variant and scenario; workers keep all, the master picks."""
    if isinstance(runner, WorkerRunner) or environment.parsed_options is None:
        return
    options = environment.parsed_options
    chosen = [
        user_class
        for user_class in environment.user_classes
        if options.variant in (user_class.variant, "both")
        and user_class.scenario == options.scenario
    ]
    if not chosen:
        named = ", ".join(u.__name__ for u in environment.user_classes)
        raise SystemExit(
            f"no user class matches --variant {options.variant} --scenario {options.scenario} "
            f"among {named}"
        )
    environment.user_classes[:] = chosen


@events.test_start.add_listener
def _start(environment: Any, **_: object) -> None:
    options = environment.parsed_options
    if options is None:
        return
    classes = environment.available_user_classes or {
        u.__name__: u for u in environment.user_classes
    }
    apply_weights(list(classes.values()), options)
    if options.warm_up > 0 and not isinstance(environment.runner, WorkerRunner):
        gevent.spawn_later(options.warm_up, _end_warm_up, environment)


def _end_warm_up(environment: Any) -> None:
    # Workers send the master what they measured since their last report, so resetting here
    # (the master, or the only process) resets the whole run.
    environment.runner.stats.reset_all()
    logger.info("%s %.6f", MEASURING_MARK, time.time())


@events.request.add_listener
def _count(
    name: str,
    response: Any = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: object,
) -> None:
    _timeline.count(name, response, exception, start_time)


@events.test_stop.add_listener
def _stop(environment: Any, **_: object) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        logger.info("authscale: measuring until %.6f", time.time())
    options = environment.parsed_options
    if options is not None and options.timeline:
        _timeline.write(Path(options.timeline))
