"""The server dimension of the experiment: the cell grid and the report's comparison table."""

from __future__ import annotations

import dataclasses

import pytest

from authscale.lab.experiment import capacity, server_table
from authscale.lab.experiment.cells import CellResult
from authscale.lab.experiment.runner import ExperimentConfig
from authscale.lab.stack.processes import StackError
from tests.lab.experiment.test_capacity import cell


def test_one_server_keeps_the_cells_names_as_they_were() -> None:
    cells = ExperimentConfig(variants=("session",), replicas=(1, 2), shards=(1,)).cells()
    assert [(c.label, c.slug, c.server) for c in cells] == [
        ("session x1", "session-1", "hypercorn"),
        ("session x2", "session-2", "hypercorn"),
    ]
    # --server alone still picks the one server, under the same names.
    alone = ExperimentConfig(
        variants=("session",), replicas=(1,), shards=(1,), server="uvicorn"
    ).cells()
    assert [(c.label, c.server) for c in alone] == [("session x1", "uvicorn")]


def test_several_servers_run_back_to_back_within_each_variant_and_count() -> None:
    config = ExperimentConfig(
        variants=("session", "token"),
        replicas=(1, 2),
        shards=(1,),
        servers=("hypercorn", "uvicorn"),
    )
    cells = config.cells()
    assert [c.label for c in cells[:4]] == [
        "session on hypercorn x1",
        "session on uvicorn x1",
        "session on hypercorn x2",
        "session on uvicorn x2",
    ]
    assert len(cells) == 8
    assert cells[1].slug == "session-1-uvicorn"
    assert config.stack_plan(cells[1], config.results_dir).server == "uvicorn"
    assert config.describe("local")["servers"] == "hypercorn, uvicorn"


def test_an_unknown_server_is_refused() -> None:
    with pytest.raises(StackError, match="unknown server nginx; servers are hypercorn"):
        ExperimentConfig(servers=("hypercorn", "nginx"))


def on(server: str, result: CellResult) -> CellResult:
    return dataclasses.replace(result, server=server, series=f"{result.variant} on {server}")


def test_the_table_gives_each_servers_rate_and_replicas_needed_against_hypercorn() -> None:
    results = [
        on("hypercorn", cell("session", 1, 3_000, session=300, redis=40)),
        on("uvicorn", cell("session", 1, 4_800, session=200, redis=40)),
    ]
    lines = server_table.section(results)
    assert "| session | 1 | hypercorn | 3,000 | 1.00x | 300 | 1.00 |" in lines
    assert "| session | 1 | uvicorn | 4,800 | 1.60x | 200 | 0.67 |" in lines
    # The capacity model fits each server apart.
    assert set(capacity.fit(results)) == {"session on hypercorn", "session on uvicorn"}


def test_a_single_server_run_has_no_server_table() -> None:
    assert server_table.section([cell("session", 1, 3_000, session=300)]) == []
