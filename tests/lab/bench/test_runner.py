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
    assert {(r.mode, r.route) for r in ratios} == {
        (m.slug, route) for m in modes for route in bench.ROUTES
    }
    assert "dashboard/ping" in bench_report.summary(measurements, layout, bench.TARGETS)
    # The bench stack is gone: it left its logs, and no process recorded as running.
    assert not (tmp_path / "run" / "stack.json").exists()


def test_an_unknown_mode_is_refused_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--modes", "session,tokn"])
    assert "unknown mode tokn; modes are session, token" in capsys.readouterr().err


def test_the_command_line_defaults_are_the_configs() -> None:
    args = build_parser(load_lab()).parse_args(["bench"])
    defaults = bench.BenchConfig()
    for name in ("seconds", "rounds", "warm_up", "connections", "routes"):
        assert getattr(args, name) == getattr(defaults, name), name
