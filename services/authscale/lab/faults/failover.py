"""The ``redis-failover`` scenario: SIGKILL one master of a 3-master Redis Cluster under load.

The stack's Redis is a cluster (three masters, a replica each, ``cluster-node-timeout`` 2000 ms,
``cluster-require-full-coverage no``). Besides Locust's steady readers of both variants, readers
of the doomed shard and of the others (:mod:`.shard_readers`) say who saw what, and logins made
up to the kill (:mod:`.late_logins`) count what asynchronous replication lost. Nothing but the
killed master is touched until the end: no replica of any role is restarted; the killed node is
started again last, as an operator would, and rejoins as its replacement's replica.
"""

from __future__ import annotations

import time
from collections import Counter

from redis.crc import key_slot

from authscale.core.slots import braced, user_tag
from authscale.lab.faults.checks import Check, ScenarioResult
from authscale.lab.faults.late_logins import LateLogins, check
from authscale.lab.faults.probes import until
from authscale.lab.faults.runner import FaultRun
from authscale.lab.faults.shard_readers import REQUESTS, ShardReaders, per_second_table, statuses
from authscale.lab.faults.timeline import Timeline, describe
from authscale.lab.stack import topology
from authscale.lab.stack.backend import LocalRunning
from authscale.lab.stack.cluster import LocalCluster
from authscale.lab.stack.processes import StackError

SHARDS = 3
#: Accounts beyond the load's and the probes', sorted by shard: readers and late logins.
SPARE_ACCOUNTS = 600
#: Seconds of logins before the kill: the last one is what replication may lose.
LEAD = 6.0
#: "Created in the last second before the kill".
LAST = 1.0
#: Bounds the wait for readers of the failed shard to succeed again.
RECOVERY_TIMEOUT = 30.0
#: Seconds the readers go on after they recovered: the shard must stay served.
SETTLE = 3.0


def redis_failover(run: FaultRun) -> ScenarioResult:
    result = ScenarioResult(
        "redis-failover", "Redis Cluster failover: SIGKILL one master of three under load"
    )
    cluster = _cluster(run)
    failed, other = _accounts_by_shard(run, cluster)
    readers_per_group = max(2, run.config.probes // 2)
    readers = ShardReaders(
        run.stack.gateway_url,
        {"failed": failed[:readers_per_group], "other": other[:readers_per_group]},
    )
    late = LateLogins(run.stack.gateway_url, failed[readers_per_group:])
    replicas_before = _replica_pids(run)
    seen: dict[str, float] = {}
    found: dict[str, dict[str, Counter[int]]] = {}

    def fault() -> None:
        try:
            measure()
        finally:
            readers.stop()
            late.close()

    def measure() -> None:
        readers.start()
        late.start()
        time.sleep(LEAD)
        failover = cluster.kill_master_for(braced(user_tag(failed[0])))
        seen["kill"] = time.time()
        late.stop()
        run.mark(f"master {failover.master.address} killed")
        promotion = cluster.wait_promoted(failover)
        run.mark(f"replica {promotion.replica.address} promoted")
        seen["promotion"] = promotion.seconds
        until(
            lambda: all(
                readers.first_success("failed", request, after=seen["kill"]) is not None
                for request in REQUESTS
            ),
            timeout=RECOVERY_TIMEOUT,
            every=0.1,
        )
        time.sleep(SETTLE)
        readers.stop()
        late.join()
        # A 200 answered after the kill but before the promotion was written to the killed
        # master: those logins were made in the last moments too, and are the likeliest lost.
        promoted_at = seen["kill"] + promotion.seconds
        found["last"] = check(late.answered(seen["kill"] - LAST, promoted_at))
        found["earlier"] = check(late.earlier(seen["kill"], LAST))
        # The node that was killed comes back as the new master's replica: the shard has two
        # copies again. Only now, so that nothing of it helps the failover being measured.
        cluster.start_node(f"redis-{failover.master.port}")
        cluster.wait_healthy()
        run.mark("killed node back, as a replica")

    timeline = run.under_load(fault)
    kill, last, earlier = seen["kill"], found["last"], found["earlier"]
    result.timeline = timeline
    result.checks = _checks(run, timeline, readers, kill, last, earlier, replicas_before)
    result.figures = _figures(readers, kill, seen["promotion"], last)
    result.notes += [
        f"Shards: {'; '.join(cluster.describe())}. Readers: {readers_per_group} accounts on the "
        f"killed master's shard and {readers_per_group} on the others, each reading its session "
        "dashboard and refreshing its token pair about ten times a second. Late logins: "
        f"{len(late.logins)} logins of fresh accounts of the killed shard in the {LEAD:g} s "
        "before the kill, one variant each, in turn; the last second's are those answered "
        f"200 from {LAST:g} s before the kill until the promotion (a 200 after the kill was "
        "written to the killed master before it died).",
        "",
        "What the readers saw, per second of their requests' start (the kill at 0):",
        "",
        *per_second_table(readers, kill),
        "",
    ]
    return result


def _cluster(run: FaultRun) -> LocalCluster:
    stack = run.stack
    if not isinstance(stack, LocalRunning) or stack.local.cluster is None:
        raise StackError("redis-failover needs the local stack with a Redis Cluster")
    return stack.local.cluster


def _accounts_by_shard(run: FaultRun, cluster: LocalCluster) -> tuple[list[str], list[str]]:
    """Spare accounts on the shard to be killed, and on the others."""
    first = run.config.users + run.config.probes
    run.stack.seed(first + SPARE_ACCOUNTS)
    spare = [f"loaduser{n}" for n in range(first, first + SPARE_ACCOUNTS)]
    view = cluster.view()

    def master_of(username: str) -> str:
        master = topology.master_serving(view, key_slot(braced(user_tag(username)).encode()))
        assert master is not None, "a healthy cluster serves every slot"
        return master.id

    doomed = master_of(spare[0])
    failed = [name for name in spare if master_of(name) == doomed]
    return failed, [name for name in spare if master_of(name) != doomed]


def _replica_pids(run: FaultRun) -> dict[str, int]:
    stack = run.stack
    assert isinstance(stack, LocalRunning)
    return {name: stack.local.running[name].pid for name in stack.replicas()}


def _checks(
    run: FaultRun,
    timeline: Timeline,
    readers: ShardReaders,
    kill: float,
    last: dict[str, Counter[int]],
    earlier: dict[str, Counter[int]],
    replicas_before: dict[str, int],
) -> list[Check]:
    everything = Timeline.by_status(timeline.select())
    read = {
        (group, request): statuses(readers.select(group, request))
        for group in readers.groups
        for request in REQUESTS
    }
    seen_500 = everything.get(500, 0) + sum(counts[500] for counts in read.values())
    session_load = Timeline.by_status(timeline.select(prefix="session "), failed_only=True)
    tokens = timeline.select(names=["token dashboard"])
    back = {r: readers.first_success("failed", r, after=kill) for r in REQUESTS}
    unchanged = _replica_pids(run) == replicas_before
    return [
        Check("no 500", f"{seen_500} answers 500", seen_500 == 0),
        *[
            Check(
                f"failed shard, {request}: 503 while it has no master, never 401",
                _tally(read["failed", request]),
                set(read["failed", request]) <= {200, 503},
            )
            for request in REQUESTS
        ],
        Check(
            "users on the other shards never fail",
            "; ".join(f"{r}: {_tally(read['other', r])}" for r in REQUESTS),
            all(set(read["other", r]) == {200} for r in REQUESTS),
        ),
        Check(
            "replicas reconnect by themselves: the failed shard's users succeed again, "
            "no replica restarted",
            ", ".join(
                f"{r} 200 again {s:.1f} s after the kill" if s is not None else f"{r} never again"
                for r, s in back.items()
            )
            + ("; every replica kept its pid" if unchanged else "; A REPLICA WAS RESTARTED"),
            unchanged and all(s is not None for s in back.values()),
        ),
        Check(
            "session load: failures are 503s only",
            describe(session_load),
            set(session_load) <= {503},
        ),
        Check(
            "token: dashboards keep succeeding (no Redis on their path)",
            f"{Timeline.failed(tokens)} of {Timeline.total(tokens):,} failed",
            Timeline.failed(tokens) == 0,
        ),
        Check(
            f"sessions and families made more than {LAST:g} s before the kill survive",
            _kept(earlier),
            all(set(counts) <= {200} for counts in earlier.values())
            and sum(sum(c.values()) for c in earlier.values()) > 0,
        ),
        Check(
            f"made in the last {LAST:g} s before the kill (or in flight at it): counted "
            "(replication is asynchronous: nothing promised)",
            _kept(last),
            True,
            measured=True,
        ),
    ]


def _figures(
    readers: ShardReaders, kill: float, promotion: float, last: dict[str, Counter[int]]
) -> dict[str, float | int | None]:
    figures: dict[str, float | int | None] = {"promotion_s": round(promotion, 2)}
    for request in REQUESTS:
        key = request.replace(" ", "_")
        back = readers.first_success("failed", request, after=kill)
        span = readers.unavailable("failed", request, after=kill)
        figures[f"{key}_back_after_s"] = None if back is None else round(back, 2)
        figures[f"{key}_failing_for_s"] = None if span is None else round(span[1], 2)
        counts = statuses(readers.select("failed", request, after=kill))
        figures[f"{key}_503"] = counts[503]
        figures[f"{key}_401"] = counts[401]
    for variant, counts in last.items():
        figures[f"last_second_{variant}_made"] = sum(counts.values())
        figures[f"last_second_{variant}_lost"] = counts[401]
    return figures


def _kept(found: dict[str, Counter[int]]) -> str:
    def line(variant: str, noun: str) -> str:
        counts = found[variant]
        return f"{noun}: {counts[200]} of {sum(counts.values())} kept ({_tally(counts)})"

    return f"{line('session', 'sessions')}; {line('token', 'refresh families')}"


def _tally(counts: Counter[int]) -> str:
    return describe(dict(sorted(counts.items())))
