"""What every lab run shares: one config whose defaults the command line takes, one clock."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from authscale.cli import build_parser, load_lab
from authscale.lab import run
from authscale.lab.experiment.command import SCENARIOS
from authscale.lab.experiment.runner import ExperimentConfig
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.scenarios import SCENARIOS as FAULT_SCENARIOS
from authscale.lab.stack.processes import StackError

#: Command-line option -> the config field it sets, where the names differ.
RENAMED = {"soak_seconds": "soak"}
#: The parser's own: which command ran (the config's ``command`` is the line to reproduce it).
PARSER_ONLY = {"command", "run", "scenario"}


def experiment_defaults() -> argparse.Namespace:
    return build_parser(load_lab()).parse_args(["experiment"])


@pytest.mark.parametrize("config", [ExperimentConfig, FaultConfig])
def test_the_command_line_defaults_are_the_configs(config: type[run.RunConfig]) -> None:
    args = vars(experiment_defaults())
    defaults = config()
    compared = 0
    for option, value in args.items():
        name = RENAMED.get(option, option)
        if option not in PARSER_ONLY and name in {f.name for f in dataclasses.fields(config)}:
            assert value == getattr(defaults, name), option
            compared += 1
    assert compared >= 6


def test_both_sides_share_one_run_config() -> None:
    assert ExperimentConfig().users == FaultConfig().users == run.RunConfig().users
    assert ExperimentConfig().seconds == FaultConfig().seconds == run.RunConfig().seconds


def test_the_scenarios_are_listed_once() -> None:
    assert ("scaling", "state-growth", "faults", *FAULT_SCENARIOS) == SCENARIOS


def test_several_fault_scenarios_run_into_one_report() -> None:
    args = build_parser(load_lab()).parse_args(["experiment", "redis-outage", "redis-failover"])
    assert args.scenario == ["redis-outage", "redis-failover"]


def test_an_unknown_backend_is_refused_for_every_run() -> None:
    for config in (run.RunConfig, ExperimentConfig, FaultConfig):
        with pytest.raises(StackError, match="backends are local, compose"):
            config(backend="kubernetes")


def test_the_clock_reads_minutes_and_seconds() -> None:
    assert run.clock(0) == "0m00s"
    assert run.clock(75.4) == "1m15s"
    assert run.clock(3600) == "60m00s"
