"""The budgeted capacity model on synthetic cells: shares, bounds, fit, predictions, efficiency,
calibration, and the grid of variants x shards x replicas."""

from __future__ import annotations

import dataclasses
import statistics

import pytest

from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment import scale_model
from authscale.lab.experiment.calibration import Calibration, Reference
from authscale.lab.experiment.cells import Cell, CellResult, Variant, grid

BUDGETS = CpuBudgets(replica=0.1, issuer=0.2, redis=0.01, gateway=0.3)
SECONDS = 10.0


def cell(
    replicas: int,
    rate: float,
    *,
    variant: str = "session",
    shards: int = 1,
    replica_us: float = 2000,
    redis_us: float = 40,
    idle_redis: float = 0.002,
    idle_share: float = 0.5,
) -> CellResult:
    """A cell whose processes spent what the costs say at ``rate`` (plus Redis's idle)."""
    requests = int(rate * SECONDS)
    role = "session" if variant == "session" else "token"
    processes = {f"{role}-{i}": replica_us * 1e-6 * requests / replicas for i in range(replicas)}
    for node in range(max(1, shards)):
        processes[f"redis-{7000 + node}"] = (
            redis_us * 1e-6 * requests / max(1, shards) + idle_redis * SECONDS
        )
    processes["gateway"] = 200e-6 * requests
    return CellResult(
        variant=variant,
        role=role,
        replicas=replicas,
        users=12 * replicas,
        seconds=SECONDS,
        requests=requests,
        failures=0,
        p50_ms=5,
        p95_ms=9,
        p99_ms=12,
        cpu_seconds={
            role: sum(v for k, v in processes.items() if k.startswith(role)),
            "redis": sum(v for k, v in processes.items() if k.startswith("redis")),
            "gateway": processes["gateway"],
        },
        machine_busy_seconds=2 * SECONDS * (1 - idle_share),
        cores=2.0,
        redis_calls={},
        series=variant if shards == 1 else f"{variant}, {shards} shards",
        shards=shards,
        process_cpu_seconds=processes,
        budgets={name: BUDGETS.cores(name.rsplit("-", 1)[0]) for name in processes},
        idle_cores={name: idle_redis for name in processes if name.startswith("redis")},
    )


def test_a_full_replica_budget_bounds_the_cell() -> None:
    full = cell(2, 100, replica_us=2000)  # 2 x 0.1 core at 100 req/s x 2 ms: full
    shares = full.budget_shares()
    assert shares["replicas"] == pytest.approx(1.0)
    assert full.bound == "replicas" and full.budget_bound


def test_the_busiest_redis_node_is_the_redis_share() -> None:
    # 4 shards, 200 req/s at 40 us on Redis: each node 0.002 + 0.002 idle of its 0.01.
    shares = cell(8, 200, shards=4, replica_us=1000).budget_shares()
    assert shares["redis"] == pytest.approx(0.4)


def test_no_full_budget_is_the_machine_or_the_load_generator() -> None:
    starved = cell(2, 50, replica_us=2000, idle_share=0.1)  # replicas at half their budget
    assert starved.bound == "machine" and not starved.budget_bound
    idle = cell(2, 50, replica_us=2000, idle_share=0.6)
    assert idle.bound == "load generator" and not idle.budget_bound


def test_the_marginal_cost_leaves_out_what_a_process_spends_idle() -> None:
    result = cell(2, 100, redis_us=40, idle_redis=0.003)
    assert result.marginal_cpu_per_request("redis") == pytest.approx(40e-6)
    assert result.cpu_per_request("redis") > 40e-6
    assert result.idle_cores_of("redis") == pytest.approx(0.003)


def test_redis_costs_are_the_busiest_masters_the_shards_replicas_have_budgets_of_their_own() -> (
    None
):
    result = cell(4, 200, shards=2, redis_us=40, idle_redis=0.0)
    # Each master's replica applies the replication stream: a tenth of its master's work.
    replicas = {f"redis-{7100 + node}": 40e-6 * 200 * SECONDS / 2 / 10 for node in range(2)}
    # The users' keys never spread evenly: the first master serves 60 % of the requests.
    masters = {"redis-7000": 40e-6 * 120 * SECONDS, "redis-7001": 40e-6 * 80 * SECONDS}
    uneven = dataclasses.replace(
        result,
        process_cpu_seconds={**result.process_cpu_seconds, **replicas, **masters},
        budgets={**result.budgets, **{name: BUDGETS.redis for name in replicas}},
    )
    assert uneven.serving("redis") == ["redis-7000"]
    assert uneven.marginal_cpu_per_request("redis") == pytest.approx(40e-6 * 0.6)


def test_a_replica_cost_comes_from_the_cells_its_budget_alone_limited() -> None:
    # At 2 replicas Redis is full too; at 4 and 8 replicas Redis alone is full.
    light = cell(2, 100, redis_us=100, idle_redis=0.0)
    full = [cell(n, 250, redis_us=40, idle_redis=0.0, replica_us=1000) for n in (4, 8)]
    assert light.full_budgets() == {"replicas", "redis"}
    assert [c.full_budgets() for c in full] == [{"redis"}, {"redis"}]
    costs = scale_model.fit([light, *full])["session"]
    assert costs.replicas == pytest.approx(2000e-6)  # the cells it was full in: just light


def test_redis_costs_less_per_request_the_more_users_wait_on_it() -> None:
    # Redis full at 24, 48 and 96 users, its per-wake-up work shared by the users waiting:
    # 10 us + 2,160 us / users a request.
    costs_at = {n: 10 + 2160 / (12 * n) for n in (2, 4, 8)}
    full = [
        cell(n, 0.01 / (costs_at[n] * 1e-6), redis_us=costs_at[n], idle_redis=0.0, replica_us=500)
        for n in (2, 4, 8)
    ]
    assert all(c.full_budgets() == {"redis"} for c in full)
    costs = scale_model.fit(full)["session"]
    assert costs.redis == pytest.approx(10e-6, rel=0.02)
    assert costs.redis_shared == pytest.approx(2160e-6, rel=0.02)
    for n in (2, 4, 8):
        expected = 0.01 / (costs_at[n] * 1e-6)
        prediction = scale_model.predict(costs, BUDGETS, n, 12 * n)
        assert prediction == scale_model.Prediction(pytest.approx(expected, rel=0.02), "redis")


def test_costs_are_fitted_at_the_median_pace_and_each_cell_predicted_at_its_own() -> None:
    # The same work in three windows, the second on a machine a fifth slower: its replicas
    # spent 1.2 x the CPU per request and served 1/1.2 of the rate on the same budget.
    usual = [dataclasses.replace(cell(n, 50 * n), pace=2e-3) for n in (1, 4)]
    slow = dataclasses.replace(cell(2, 100 / 1.2, replica_us=2400), pace=2.4e-3)
    costs = scale_model.fit([*usual, slow])["session"]
    assert costs.pace == pytest.approx(2e-3)
    assert costs.replicas == pytest.approx(2000e-6)
    checks = scale_model.check([*usual, slow], {"session": costs}, BUDGETS)
    assert [c.error for c in checks] == pytest.approx([0, 0, 0], abs=1e-3)


def test_without_a_pace_in_every_cell_costs_are_in_cpu_seconds() -> None:
    mixed = [dataclasses.replace(cell(1, 50), pace=2e-3), cell(2, 100 / 1.2, replica_us=2400)]
    costs = scale_model.fit(mixed)["session"]
    assert costs.pace is None
    assert costs.replicas == pytest.approx(2200e-6)


def test_a_budget_never_full_gets_no_ceiling() -> None:
    # The token variant's Redis serves only its refreshes: a cost measured far from its ceiling,
    # and a ceiling drawn from it would stop replicas that never call Redis.
    token = [cell(n, 50 * n, variant="token", redis_us=40, idle_redis=0.0) for n in (1, 2, 4)]
    assert all("redis" not in c.full_budgets() for c in token)
    costs = scale_model.fit(token)["token"]
    assert costs.limits == {"replicas"}
    assert scale_model.predict(costs, BUDGETS, 8, 96) == scale_model.Prediction(
        pytest.approx(400), "replicas"
    )


def test_replica_costs_are_per_series_and_redis_costs_pooled_over_shards() -> None:
    one = [cell(1, 50), cell(8, 300, replica_us=1000, redis_us=32, idle_redis=0.0)]
    # Four shards: each replica's client spends more per request, and Redis is never alone full.
    four = [cell(n, 40 * n, shards=4, replica_us=2500) for n in (1, 2)]
    costs = scale_model.fit([*one, *four])
    assert costs["session, 4 shards"].replicas == pytest.approx(2500e-6)
    assert costs["session"].replicas == pytest.approx(2000e-6)
    assert costs["session, 4 shards"].redis == pytest.approx(32e-6)


def test_logins_in_the_window_mark_the_cell() -> None:
    late = dataclasses.replace(
        cell(8, 200), by_name={"session dashboard": (1990, 0), "session login": (10, 0)}
    )
    assert late.logins_in_window == 10
    assert late.bound == "logins in window" and not late.budget_bound


def test_fit_uses_budget_bound_cells_only() -> None:
    bound = [cell(1, 50), cell(2, 100)]
    marked = cell(4, 60, replica_us=3000, idle_share=0.1)  # replicas at 45 %: the machine
    costs = scale_model.fit([*bound, marked])["session"]
    assert costs.cells == 2
    assert costs.replicas == pytest.approx(2000e-6)
    assert costs.redis == pytest.approx(40e-6)
    assert costs.idle["redis"] == pytest.approx(0.002)


def test_predictions_take_the_smallest_limit_and_redis_grows_with_shards() -> None:
    # At 8 replicas Redis alone is full: 200 req/s x 40 us + 0.002 idle = its 0.01 core.
    costs = scale_model.fit([cell(1, 50), cell(2, 100), cell(8, 200, replica_us=1000)])["session"]
    assert costs.limits == {"replicas", "redis"}
    # Replicas: n x 0.1 / 2 ms = 50 n; Redis: (0.01 - 0.002) / 40 us = 200.
    assert scale_model.predict(costs, BUDGETS, 2, 24) == scale_model.Prediction(
        pytest.approx(100), "replicas"
    )
    assert scale_model.predict(costs, BUDGETS, 8, 96) == scale_model.Prediction(
        pytest.approx(200), "redis"
    )
    # Four shards, the requests spread evenly: the busiest master serves a quarter of them.
    four = [cell(1, 50, shards=4), cell(8, 800, shards=4, replica_us=250)]
    costs = scale_model.fit(four)["session, 4 shards"]
    assert costs.redis == pytest.approx(10e-6)
    assert scale_model.predict(costs, BUDGETS, 32, 384) == scale_model.Prediction(
        pytest.approx(800), "redis"
    )


def test_check_marks_cells_and_the_largest_error_skips_them() -> None:
    results = [cell(1, 50), cell(2, 100), cell(8, 150, idle_share=0.1, replica_us=4000)]
    costs = scale_model.fit(results)
    checks = scale_model.check(results, costs, BUDGETS)
    assert [c.marked for c in checks] == [False, False, True]
    # Redis was never full, so only the replicas bound the model: 8 x 50 req/s.
    assert checks[2].model_bound == "replicas"
    assert checks[2].error == pytest.approx(400 / 150 - 1)
    assert scale_model.largest_error(checks) == pytest.approx(0.0, abs=1e-9)


def test_efficiency_is_against_the_series_fewest_replicas() -> None:
    results = [cell(1, 50), cell(2, 90), cell(4, 200), cell(2, 80, shards=2)]
    found = scale_model.efficiency(results)
    assert found[("session", 1)] == pytest.approx(1.0)
    assert found[("session", 2)] == pytest.approx(0.9)
    assert found[("session", 4)] == pytest.approx(1.0)
    assert found[("session, 2 shards", 2)] == pytest.approx(1.0)


def test_a_calibration_over_ten_percent_says_so() -> None:
    steady = Calibration(Reference("10:00", 50, 2e-3), Reference("10:30", 54, 2e-3), BUDGETS)
    assert steady.steady and steady.spread == pytest.approx(0.08)
    assert steady.rate == pytest.approx(52)
    assert "spread 8.0% (within 10%)" in steady.describe()
    moved = Calibration(Reference("10:00", 50, 2e-3), Reference("10:30", 40, 2e-3), BUDGETS)
    assert not moved.steady and "(OVER 10%)" in moved.describe()


def test_the_grid_runs_shards_for_variants_on_redis_per_request_only() -> None:
    session = Variant("session", "session")
    token = Variant("token", "token", redis_per_request=False)
    cells = grid([session, token], (1, 8), ("hypercorn",), (1, 2, 4))
    assert [(c.variant.name, c.shards, c.replicas) for c in cells] == [
        *[("session", s, n) for s in (1, 2, 4) for n in (1, 8)],
        ("token", 1, 1),
        ("token", 1, 8),
    ]
    assert len({c.slug for c in cells}) == len(cells)
    assert cells[0].series == "session, 1 shard" and cells[2].series == "session, 2 shards"
    assert Cell(session, 2).series == "session" and Cell(session, 2).slug == "session-2"


def test_the_calibration_says_how_much_of_its_spread_the_pace_accounts_for() -> None:
    # The end ran a fifth slower and the probe's unit took a fifth longer: the machine moved.
    start = Reference("10:00", 50, 2e-3, pace=2.0e-3)
    end = Reference("10:30", 50 / 1.2, 2.4e-3, pace=2.4e-3)
    moved = Calibration(start, end, BUDGETS)
    assert not moved.steady
    assert moved.spread_at_one_pace == pytest.approx(0.0, abs=1e-9)
    assert "at the start's pace the spread would be 0.0%" in moved.describe()
    assert "CPU per ping 2,000 then 2,400 µs" in moved.describe()
    assert Calibration(Reference("10:00", 50, 2e-3), end, BUDGETS).spread_at_one_pace is None


def test_efficiency_at_one_pace_takes_out_the_hosts_moves() -> None:
    # Two replicas on a machine a fifth slower served 2 x 50 / 1.2: efficiency 0.83, at one
    # pace 1.0.
    usual = dataclasses.replace(cell(1, 50), pace=2.0e-3)
    slow = dataclasses.replace(cell(2, 100 / 1.2, replica_us=2400), pace=2.4e-3)
    assert scale_model.efficiency([usual, slow])[("session", 2)] == pytest.approx(1 / 1.2, rel=1e-2)
    at_one_pace = scale_model.efficiency([usual, slow], at_one_pace=True)
    assert at_one_pace[("session", 2)] == pytest.approx(1.0, rel=1e-2)
    assert scale_model.efficiency([cell(1, 50), cell(2, 100)], at_one_pace=True) == {}


def test_redis_curve_is_read_only_over_the_users_it_was_fitted_on() -> None:
    # Full at 24, 48 and 96 users; a cell of 12 users, where Redis was never seen full, takes
    # the cost at 24 rather than the curve's 2,160 / 12 extrapolated.
    costs_at = {n: 10 + 2160 / (12 * n) for n in (2, 4, 8)}
    full = [
        cell(n, 0.01 / (costs_at[n] * 1e-6), redis_us=costs_at[n], idle_redis=0.0, replica_us=500)
        for n in (2, 4, 8)
    ]
    costs = scale_model.fit(full)["session"]
    assert costs.redis_users == (24, 96)
    assert costs.redis_per_request(12) == pytest.approx(costs.redis_per_request(24))
    assert costs.redis_per_request(192) == pytest.approx(costs.redis_per_request(96))
    assert costs.redis_per_request(48) == pytest.approx((10 + 2160 / 48) * 1e-6, rel=0.02)


def test_redis_curve_is_fitted_by_relative_error() -> None:
    # Session on one shard in the run of 09:19: Redis full from 12 to 96 users, its cost per
    # request flattening at 96. A plain least-squares fit lets 12 users' 197 us set the slope
    # and misses 96 users' 45 us by 14.5 %; the relative fit spreads the misses evenly.
    points = [(12, 197e-6), (24, 103e-6), (48, 55e-6), (96, 45e-6)]

    def misses(fixed: float, shared: float) -> list[float]:
        return [abs((fixed + shared / users) / cost - 1) for users, cost in points]

    slope, intercept = statistics.linear_regression(
        [1 / u for u, _ in points], [c for _, c in points]
    )
    plain = misses(intercept, slope)
    relative = misses(*scale_model._fixed_and_shared(points))
    assert plain[-1] > 0.14 and relative[-1] < 0.1
    assert max(relative) < max(plain)
    # Exact points come back exactly, and a falling curve never gets a negative part.
    assert scale_model._fixed_and_shared([(10, 3e-6), (20, 2e-6)]) == pytest.approx((1e-6, 2e-5))
    assert scale_model._fixed_and_shared([(10, 1e-6), (20, 2e-6)]) == (1.5e-6, 0.0)
