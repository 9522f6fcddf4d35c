"""One Redis stopped beside one master of a cluster killed: what the same load saw in each.

Both scenarios' Locust timelines count the same requests of the same steady readers; the table
puts them side by side when a run holds both (``authscale experiment redis-outage
redis-failover``). A single Redis takes every user down for as long as it is down; a cluster's
failover takes the users of one shard down for as long as its replica needs to take over.
"""

from __future__ import annotations

from collections.abc import Sequence

from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.timeline import Timeline

COMPARED = ("redis-outage", "redis-failover")


def figures(result: ScenarioResult) -> dict[str, int]:
    """From the load's timeline: the session dashboard's 503s, the seconds they fell in, and any
    401 or 500. Dashboards only: the logins at the start of every run may be shed (503) by a
    replica whose hashing queue is full, whatever Redis does."""
    assert result.timeline is not None
    session = result.timeline.select(names=["session dashboard"])
    failing = [row for row in session if row.failed and row.status == 503]
    seconds = sorted({row.second for row in failing})
    everything = Timeline.by_status(result.timeline.select())
    tokens = result.timeline.select(names=["token dashboard"])
    return {
        "session_503": Timeline.total(failing),
        "session_answers": Timeline.total(session),
        "seconds_with_session_503": len(seconds),
        "first_to_last_session_503_s": seconds[-1] - seconds[0] + 1 if seconds else 0,
        "answers_401": everything.get(401, 0),
        "answers_500": everything.get(500, 0),
        "token_dashboard_failed": Timeline.failed(tokens),
    }


def table(results: Sequence[ScenarioResult]) -> list[str]:
    """The Markdown section, or nothing unless the run holds both scenarios."""
    by_name = {r.name: r for r in results if r.name in COMPARED and r.timeline is not None}
    if len(by_name) < len(COMPARED):
        return []
    outage, failover = by_name["redis-outage"], by_name["redis-failover"]
    down = outage.figures.get("redis_down_s")
    promotion = failover.figures.get("promotion_s")
    back = failover.figures.get("session_dashboard_back_after_s")
    rows = [
        ("what breaks", "the only Redis, stopped", "one master of three, SIGKILL"),
        (
            "Redis unavailable for",
            f"{down:.1f} s (stopped, restarted)" if down is not None else "-",
            f"{promotion:.1f} s (until the replica serves the slots)"
            if promotion is not None
            else "-",
        ),
        ("users affected", "all", "those of one shard (about 1 in 3)"),
        ("failed shard's sessions 200 again after", "-", f"{back:.1f} s" if back else "-"),
    ]
    measured = {name: figures(result) for name, result in by_name.items()}
    for label, key in (
        ("session dashboard 503s (Locust)", "session_503"),
        ("seconds with session dashboard 503s", "seconds_with_session_503"),
        ("first to last second with such a 503", "first_to_last_session_503_s"),
        ("401 answers", "answers_401"),
        ("500 answers", "answers_500"),
        ("token dashboard failures", "token_dashboard_failed"),
    ):
        rows.append(
            (label, f"{measured['redis-outage'][key]:,}", f"{measured['redis-failover'][key]:,}")
        )
    lines = [
        "",
        '<a id="redis-comparison"></a>',
        "## One Redis stopped, or one master of a cluster killed",
        "",
        "| | redis-outage (one Redis) | redis-failover (3-master cluster) |",
        "|---|---|---|",
        *[f"| {label} | {a} | {b} |" for label, a, b in rows],
        "",
        "Session dashboard answers in all: "
        + ", ".join(f"{n} {measured[n]['session_answers']:,}" for n in COMPARED)
        + ". Locust's users read without pause, each waiting for its answer: the 503 counts "
        "say how often a user was refused, not how many requests a client would send.",
    ]
    return lines
