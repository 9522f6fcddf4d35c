"""``authscale bench`` once, in a tiny configuration, against a real stack of its own.

It shows the command works end to end; the figures of so short a run mean nothing, and no test
ever asserts a speed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authscale.cli import build_parser, load_lab, main
from authscale.lab.bench import report as bench_report
from authscale.lab.bench import runner as bench
from authscale.lab.bench.measurement import Layout
from authscale.lab.measure import cpu


@pytest.mark.lab
def test_a_tiny_bench_measures_every_pair_and_prints_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modes = list(bench.MODES[:2])
    config = bench.BenchConfig(
        modes=modes, seconds=1, warm_up=0, rounds=1, connections=4, run_dir=tmp_path / "run"
    )
    layout = Layout.for_cpus(cpu.usable_cpus())
    measurements = bench.run_bench(config, layout, out=lambda line: None)
    assert len(measurements) == len(modes) * 2 * 2
    assert all(m.result.requests > 0 for m in measurements)
    # Every answer was right: the credential worked on every dashboard request.
    assert all(m.result.bad_status == 0 for m in measurements)
    ratios = bench_report.ratios(measurements, bench.TARGETS)
    assert {(r.server, r.mode, r.route) for r in ratios} == {
        ("hypercorn", m.slug, route) for m in modes for route in bench.ROUTES
    }
    assert "dashboard/ping" in bench_report.summary(measurements, layout, bench.TARGETS)
    # The bench stack is gone: it left its logs, and no process recorded as running.
    assert not (tmp_path / "run" / "stack.json").exists()


@pytest.mark.lab
def test_servers_take_turns_in_every_round_and_are_compared(tmp_path: Path) -> None:
    config = bench.BenchConfig(
        modes=list(bench.MODES[:1]),
        routes=["direct"],
        seconds=1,
        warm_up=0,
        rounds=2,
        connections=4,
        run_dir=tmp_path / "run",
        servers=("hypercorn", "uvicorn", "granian"),
    )
    layout = Layout.for_cpus(cpu.usable_cpus())
    measurements = bench.run_bench(config, layout, out=lambda line: None)
    # Round by round, each server in turn: ping then dashboard.
    order = [(m.round, m.server) for m in measurements[::2]]
    assert order == [(n, s) for n in (1, 2) for s in config.servers]
    assert all(m.result.requests > 0 and m.result.bad_status == 0 for m in measurements)
    side_by_side = bench_report.servers_side_by_side(measurements)
    assert [line.split()[0] for line in side_by_side[3:]] == list(config.servers)


def test_an_unknown_server_is_refused_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--servers", "hypercorn,gunicorn"])
    assert "servers are hypercorn, hypercorn-uvloop, uvicorn, granian" in capsys.readouterr().err


def test_an_unknown_mode_is_refused_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--modes", "session,tokn"])
    assert "unknown mode tokn; modes are session, token" in capsys.readouterr().err


def test_the_command_line_defaults_are_the_configs() -> None:
    args = build_parser(load_lab()).parse_args(["bench"])
    defaults = bench.BenchConfig()
    for name in ("seconds", "rounds", "warm_up", "connections", "routes", "servers"):
        assert getattr(args, name) == getattr(defaults, name), name
