"""The fault scenarios: what each breaks, when, and the targets its table is checked against.

Every scenario takes a started :class:`~authscale.lab.faults.runner.FaultRun` (fresh stack, seeded
accounts), runs the steady load with its fault in the middle, and returns its table. Targets are
the issue's; a missed one is reported, not hidden.
"""

from __future__ import annotations

import time

import httpx

from authscale.lab.backend import role_of
from authscale.lab.faults import phases
from authscale.lab.faults.abuse import LOCAL_ONLY, abuse
from authscale.lab.faults.checks import Check, ScenarioResult
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.failover import SHARDS, redis_failover
from authscale.lab.faults.key_rotation import ROTATION_ENV, key_rotation
from authscale.lab.faults.probes import Probes, tally, until
from authscale.lab.faults.revocation import revocation
from authscale.lab.faults.runner import FaultRun, ScenarioSpec
from authscale.lab.faults.soak import soak
from authscale.lab.faults.storm import login_storm
from authscale.lab.faults.timeline import Row, Timeline, describe
from authscale.lab.stack.gateway import GatewayConfig
from authscale.lab.stack.processes import http_status

#: Requests the gateway may retry on another replica (GET): these must never fail.
IDEMPOTENT = ("session dashboard", "token dashboard")
#: Statuses that mean a bug or a lost credential wherever they appear.
NEVER = (401, 500)
#: Seconds after a repair before the load must be clean again.
SETTLE = 3.0
#: How long an nginx worker holds a failed replica out of rotation (the gateway's fail_timeout).
FAIL_TIMEOUT = float(GatewayConfig.fail_timeout.removesuffix("s"))


def redis_outage(run: FaultRun) -> ScenarioResult:
    result = ScenarioResult("redis-outage", "Redis outage, then restart from the append-only file")
    outage = run.config.outage
    during: dict[str, list[int]] = {}
    with Probes(run.stack.gateway_url, run.probe_accounts) as probes:

        def fault() -> None:
            probes.log_in()
            run.mark("Redis stopped")
            stopped = time.monotonic()
            run.stack.stop("redis")
            during["session"] = probes.session_statuses()
            during["token"] = probes.token_statuses()
            during["refresh"] = probes.refresh_statuses()
            time.sleep(max(0.0, stopped + outage - time.monotonic()))
            run.mark("Redis restarted")
            run.stack.start("redis")
            # On compose, starting the container and its append-only file takes seconds: the
            # clean stretch is counted from the moment Redis answers, not from the start.
            run.mark("Redis answers")

        timeline = run.under_load(fault)
        after_session = probes.session_statuses()
        after_refresh = probes.refresh_statuses()
    at = {label: when for when, label in run.marks}
    stopped, answering = at["Redis stopped"], at["Redis answers"]
    session = timeline.select(prefix="session ")
    in_outage = timeline.select(prefix="session ", start=stopped, stop=answering + SETTLE)
    after = timeline.select(prefix="session ", start=answering + SETTLE)
    tokens = timeline.select(names=["token dashboard"])
    bad = _statuses(session, NEVER)
    result.checks = [
        Check(
            "session: 503 during the outage",
            f"load: {describe(Timeline.by_status(in_outage, failed_only=True))}; "
            f"probes: {tally(during['session'])}",
            set(Timeline.by_status(in_outage, failed_only=True)) <= {503}
            and set(during["session"]) == {503},
        ),
        Check("session: never 401 or 500", describe(bad), not bad),
        Check(
            "session: no failure once Redis is back",
            f"{Timeline.failed(after)} of {Timeline.total(after):,} failed",
            Timeline.failed(after) == 0,
        ),
        Check(
            "every session made before is valid after",
            f"{after_session.count(200)}/{len(after_session)} probes answer 200",
            bool(after_session) and set(after_session) == {200},
        ),
        Check(
            "token: dashboards keep succeeding",
            f"{Timeline.failed(tokens)} of {Timeline.total(tokens):,} failed; probes during: "
            f"{tally(during['token'])}",
            Timeline.failed(tokens) == 0 and set(during["token"]) == {200},
        ),
        Check(
            "token: refresh 503 during, 200 after",
            f"during: {tally(during['refresh'])}; after: {tally(after_refresh)}",
            set(during["refresh"]) == {503} and set(after_refresh) == {200},
        ),
    ]
    result.timeline = timeline
    result.figures = {"redis_down_s": round(answering - stopped, 2)}
    return result


def replica_loss(run: FaultRun) -> ScenarioResult:
    result = ScenarioResult("replica-loss", "Replica loss: SIGKILL one replica of each variant")
    killed = ("session-1", "token-1")
    back: dict[str, float | None] = {}
    dead: dict[str, bool] = {}
    kill_window: list[float] = []
    moments: dict[str, float] = {}
    with Probes(run.stack.gateway_url, run.probe_accounts) as probes:
        # Before the load: under CPU budgets the readers keep a replica's quota busy, and its
        # hashing threads, at a lower priority, get next to none of it (a probe's login timed out
        # after 10 s). What is checked is the same: credentials made before the kill.
        probes.log_in()

        def fault() -> None:
            run.mark("session-1, token-1 killed")
            urls = {name: run.stack.replicas()[name] for name in killed}
            kill_window.append(time.time())
            for name in killed:
                run.stack.kill(name)
            kill_window.append(time.time())
            dead.update({name: http_status(f"{url}/healthz") is None for name, url in urls.items()})
            time.sleep(run.config.outage)
            run.mark("restarting")
            moments["restarting"] = time.time()
            for name in killed:
                run.stack.start(name)
            for name in killed:
                back[name] = _back_in_rotation(run, name)
            moments["back"] = time.time()

        timeline = run.under_load(fault, settle=True)
        moments["load ends"] = time.time()
        after_session = probes.session_statuses()
        after_token = probes.token_statuses()
    idempotent = timeline.select(names=IDEMPOTENT)
    cut_off = _cut_off_by(kill_window, idempotent)
    failed = Timeline.failed(idempotent) - cut_off
    result.checks = [
        Check(
            "the killed replicas really stopped answering",
            ", ".join(
                f"{n}: {'no answer' if gone else 'STILL ANSWERS'}" for n, gone in dead.items()
            ),
            bool(dead) and all(dead.values()),
        ),
        Check(
            "0 failed idempotent requests, but responses the kill cut off mid-body",
            f"{failed} of {Timeline.total(idempotent):,} failed "
            f"({describe(Timeline.by_status(idempotent, failed_only=True))}); "
            f"cut off mid-body by the kill: {cut_off}",
            failed == 0,
        ),
        Check(
            "no session or token lost",
            f"sessions {tally(after_session)}; tokens {tally(after_token)}",
            set(after_session) == {200} and set(after_token) == {200},
        ),
        *[
            Check(
                f"{name} back in rotation without a gateway restart",
                "never seen"
                if seconds is None
                else f"answered through the gateway {seconds:.1f} s after it was ready",
                seconds is not None,
            )
            for name, seconds in back.items()
        ],
    ]
    # The rate in as long before the kill as the replicas stay away (once the load's users have
    # logged in), while they are away (until the restart begins), and once both are back.
    killing = min(kill_window)
    steady = max(phases.after_logins(timeline, killing), killing - run.config.outage)
    periods = [
        phases.Phase("before the kill", steady, killing),
        phases.Phase("while away", max(kill_window), moments["restarting"]),
        phases.Phase("back in rotation", moments["back"], moments["load ends"]),
    ]
    phases.record(result, timeline, IDEMPOTENT, periods, run.config.cpu_budgets is not None)
    result.timeline = timeline
    return result


def rolling_restart(run: FaultRun) -> ScenarioResult:
    result = ScenarioResult("rolling-restart", "Rolling restart: every replica, one by one")
    order = list(run.stack.replicas())
    back: dict[str, float | None] = {}
    with Probes(run.stack.gateway_url, run.probe_accounts) as probes:

        def fault() -> None:
            probes.log_in()
            for name in order:
                run.mark(f"{name} restarted")
                run.stack.stop(name)
                run.stack.start(name)
                # nginx keeps a replica that failed out of rotation for fail_timeout (5 s) even
                # once it is ready again; stopping the next one before the gateway has taken this
                # one back leaves the upstream empty (a 502 for everyone: seen in the first runs).
                back[name] = _back_in_rotation(run, name)
                # Then out fail_timeout from readiness, as an operator's script should: one worker
                # routing to it once said nothing of the others before the upstreams shared a
                # zone (745 x 502 in a compose run that went on at once), and a gateway that is
                # not this one may still keep per-worker state.
                time.sleep(max(0.0, FAIL_TIMEOUT - (back[name] or 0.0)))

        timeline = run.under_load(fault)
        after_session = probes.session_statuses()
        after_token = probes.token_statuses()
    everything = timeline.select()
    result.checks = [
        Check(
            "0 failed requests",
            f"{Timeline.failed(everything)} of {Timeline.total(everything):,} failed "
            f"({describe(Timeline.by_status(everything, failed_only=True))})",
            Timeline.failed(everything) == 0,
        ),
        Check(
            "no session or token lost",
            f"sessions {tally(after_session)}; tokens {tally(after_token)}",
            set(after_session) == {200} and set(after_token) == {200},
        ),
        Check(
            "every replica back in rotation before the next one stops",
            ", ".join(
                f"{name} {'never' if s is None else f'{s:.1f} s'}" for name, s in back.items()
            ),
            all(seconds is not None for seconds in back.values()),
        ),
    ]
    result.notes.append(
        f"Restarted in this order: {', '.join(order)}: SIGTERM, start, wait until /readyz "
        "answers, then until the gateway routes to it again and the gateway's fail_timeout "
        f"({FAIL_TIMEOUT:g} s) has passed since it was ready, then the next."
    )
    result.timeline = timeline
    return result


def _cut_off_by(kill_window: list[float], rows: list[Row]) -> int:
    """Failed 200s in the seconds of a kill: responses whose headers had passed the gateway.

    nginx hands a replica's status and headers on as soon as they arrive; a SIGKILL before the
    body leaves a 200 with a short body, which no gateway can retry, having begun the answer.
    Requests the killed replica had not begun to answer are retried, and must not fail.
    Locust counts a request in the second it began, so the window opens two seconds before the
    first kill (a request in flight at the kill began before it, on two shared cores up to a
    second or more) and closes a second after the last kill returned (`docker kill` and its
    wait take a second or more per container, so one mark is not enough).
    """
    if not kill_window:
        return 0
    first, last = int(min(kill_window)) - 2, int(max(kill_window)) + 1
    return sum(
        row.count
        for row in rows
        if row.failed and row.status == 200 and first <= row.second <= last
    )


def _statuses(rows: list[Row], wanted: tuple[int, ...]) -> dict[int, int]:
    counts = Timeline.by_status(rows)
    return {status: n for status, n in counts.items() if status in wanted}


#: Role -> a GET the gateway routes to that role's upstream, answered by the replica itself.
ROTATION_PATHS = {
    "session": "/session/ping",
    "token": "/token/ping",
    "issuer": "/.well-known/jwks.json",
}


def _back_in_rotation(run: FaultRun, name: str, timeout: float = 20.0) -> float | None:
    """Seconds until the gateway sends ``name`` a request again (bounded by ``timeout``)."""
    path = ROTATION_PATHS[role_of(name)]
    # The replica's own name for itself: its process name locally, its container's on compose.
    itself = httpx.get(f"{run.stack.replicas()[name]}/healthz", timeout=5).headers["X-Replica"]
    with httpx.Client(base_url=run.stack.gateway_url, timeout=5) as client:
        return until(
            lambda: client.get(path).headers.get("X-Replica") == itself,
            timeout=timeout,
            every=0.05,
        )


def _abuse_limit(config: FaultConfig) -> tuple[str, int]:
    # The stack's default rate; the burst lets every simulated user and probe log in at once.
    return "10r/s", config.users + 2 * config.probes + 10


#: Name -> the scenario, in the order `authscale experiment faults` runs them.
SCENARIOS: dict[str, ScenarioSpec] = {
    "redis-outage": ScenarioSpec(redis_outage),
    "redis-failover": ScenarioSpec(
        redis_failover,
        local_only="the backend kills one Redis Cluster node by its pid",
        redis_shards=SHARDS,
    ),
    "replica-loss": ScenarioSpec(replica_loss),
    "rolling-restart": ScenarioSpec(rolling_restart),
    "key-rotation": ScenarioSpec(key_rotation, ROTATION_ENV),
    "revocation": ScenarioSpec(revocation),
    "login-storm": ScenarioSpec(login_storm),
    "abuse": ScenarioSpec(abuse, login_limit=_abuse_limit, local_only=LOCAL_ONLY),
    "soak": ScenarioSpec(soak),
}
