"""The capacity model on small synthetic cells: fit, predict, check, plan."""

from __future__ import annotations

import pytest

from authscale.lab.experiment import capacity
from authscale.lab.experiment.cells import CellResult


def cell(variant: str, replicas: int, rate: float, **cpu_us: float) -> CellResult:
    seconds, requests = 10.0, int(rate * 10)
    role = "session" if variant == "session" else "token"
    return CellResult(
        variant=variant,
        role=role,
        replicas=replicas,
        users=10,
        seconds=seconds,
        requests=requests,
        failures=0,
        p50_ms=5,
        p95_ms=9,
        p99_ms=12,
        cpu_seconds={name: us * 1e-6 * requests for name, us in cpu_us.items()},
        machine_busy_seconds=15.0,
        cores=2.0,
        redis_calls={"getex": requests} if variant == "session" else {},
    )


SESSION = [
    cell("session", 1, 400, session=1500, redis=100, gateway=200, locust=700, others=0),
    cell("session", 2, 800, session=1500, redis=100, gateway=200, locust=700, others=0),
]


def test_fit_takes_the_median_cost_per_request_of_each_component() -> None:
    cells = [*SESSION, cell("session", 4, 500, session=2100, redis=100, gateway=200, locust=700)]
    costs = capacity.fit(cells)["session"]
    assert costs.replica == pytest.approx(1500e-6)
    assert costs.cpu["redis"] == pytest.approx(100e-6)
    assert "others" not in costs.cpu
    assert costs.redis_calls == pytest.approx(1.0)
    assert costs.redis_ceiling == pytest.approx(10_000)


def test_predict_names_the_bound_that_binds() -> None:
    costs = capacity.fit(SESSION)["session"]
    # 2 cores / 2500 µs = 800 req/s for the machine; one replica allows 1 / 1500 µs = 667.
    one = capacity.predict(costs, replicas=1, cores=2)
    assert one.bound.startswith("1 session replica")
    assert one.rate == pytest.approx(1 / 1500e-6)
    four = capacity.predict(costs, replicas=4, cores=2)
    assert four.bound == "machine"
    assert four.rate == pytest.approx(2 / 2500e-6)


def test_check_reports_the_error_of_each_measured_cell() -> None:
    costs = capacity.fit(SESSION)
    checks = capacity.check(SESSION, costs)
    assert [c.replicas for c in checks] == [1, 2]
    assert checks[0].error == pytest.approx((1 / 1500e-6 - 400) / 400)
    assert checks[1].bound == "machine"


def test_a_token_variant_without_redis_has_no_redis_ceiling() -> None:
    costs = capacity.fit([cell("token", 1, 900, token=900, issuer=20, gateway=200, locust=700)])
    assert costs["token"].redis_ceiling is None
    plan = capacity.plan(costs["token"], 10_000)
    # 10 000 req/s x 900 µs = 9 cores, at 70 % each: 13 replicas.
    assert plan.replicas == 13
    assert plan.redis_cores == 0
    assert plan.issuer_cores == pytest.approx(10_000 * 20e-6 / 0.7)
