from __future__ import annotations

from authscale.lab.faults import redis_comparison
from authscale.lab.faults.checks import ScenarioResult
from authscale.lab.faults.timeline import Row, Timeline


def scenario(name: str, failing: dict[int, int], **figures: float) -> ScenarioResult:
    rows = [Row(second, "session dashboard", 200, False, 100) for second in range(10)]
    rows += [Row(second, "session dashboard", 503, True, n) for second, n in failing.items()]
    rows += [Row(second, "token dashboard", 200, False, 100) for second in range(10)]
    # Logins shed at the start of a run are not the fault's.
    rows += [Row(0, "session login", 503, True, 50)]
    return ScenarioResult(name, name, timeline=Timeline(rows), figures=dict(figures))


def test_the_two_redis_faults_are_compared_from_their_load() -> None:
    outage = scenario("redis-outage", {3: 40, 4: 40, 5: 40, 6: 40}, redis_down_s=3.5)
    failover = scenario(
        "redis-failover", {3: 10, 5: 5}, promotion_s=2.4, session_dashboard_back_after_s=2.6
    )
    lines = redis_comparison.table([outage, failover])
    text = "\n".join(lines)
    assert "| session dashboard 503s (Locust) | 160 | 15 |" in text
    assert "| seconds with session dashboard 503s | 4 | 2 |" in text
    # From the first failing second to the last, both counted.
    assert "| first to last second with such a 503 | 4 | 3 |" in text
    assert "| Redis unavailable for | 3.5 s (stopped, restarted) | 2.4 s" in text
    assert "| 401 answers | 0 | 0 |" in text


def test_nothing_is_compared_without_both() -> None:
    assert redis_comparison.table([scenario("redis-outage", {1: 3}, redis_down_s=1.0)]) == []
