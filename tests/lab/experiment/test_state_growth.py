"""``authscale experiment state-growth`` on real stacks: one Redis and a 3-master cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authscale.lab.experiment.growth_results import GrowthConfig
from authscale.lab.experiment.state_growth import run_state_growth
from authscale.lab.stack.processes import StackError


@pytest.mark.lab
def test_a_short_run_measures_both_deployments(tmp_path: Path) -> None:
    config = GrowthConfig(
        sizes=(100, 1_000), shards=(0, 3), requests=40, rounds=2, results_dir=tmp_path
    )
    out = run_state_growth(config, say=lambda line: None)
    results = json.loads((out / "results.json").read_text())["results"]
    assert [(r["shards"], r["size"]) for r in results] == [
        (0, 100),
        (0, 1_000),
        (3, 100),
        (3, 1_000),
    ]
    for result in results:
        # Bytes of real keys: more than the key names, less than a kilobyte a user.
        assert 100 < result["bytes_per_extra_session"] < 1_000
        assert 100 < result["bytes_per_extra_family"] < 1_000
        assert result["dashboard"]["per_second"] > 0 and result["ratio"] > 0
    cluster = [r for r in results if r["shards"] == 3][-1]
    # The tags spread users over every master: none holds nothing.
    assert len(cluster["keys_per_master"]) == 3 and min(cluster["keys_per_master"]) > 0
    report = (out / "report.md").read_text()
    assert "a session with its index entry <= 300 B" in report
    assert (out / "state_growth.png").stat().st_size > 0


@pytest.mark.parametrize(("sizes", "shards"), [((1_000, 100), (0,)), ((), (0,)), ((100,), (-1,))])
def test_bad_sizes_or_shards_are_refused_before_anything_starts(
    sizes: tuple[int, ...], shards: tuple[int, ...]
) -> None:
    with pytest.raises(StackError):
        GrowthConfig(sizes=sizes, shards=shards)
