"""The fault scenarios' CPU budgets: the default, the command line, every plan, the report."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from authscale.lab.budgets import CpuBudgets
from authscale.lab.experiment import command
from authscale.lab.experiment.runner import ExperimentConfig
from authscale.lab.faults import report
from authscale.lab.faults.config import FaultConfig
from authscale.lab.faults.runner import FaultRun
from authscale.lab.stack.backend import LocalBackend


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.register_commands(parser.add_subparsers())
    return parser.parse_args(["experiment", "replica-loss", *argv])


def test_the_scenarios_run_on_the_default_budgets_unless_told() -> None:
    assert FaultConfig().cpu_budgets == CpuBudgets()
    assert parse().cpu_budgets == CpuBudgets()
    assert parse("--cpu-budgets", "default").cpu_budgets == CpuBudgets()
    assert parse("--cpu-budgets", "none").cpu_budgets is None
    assert parse("--cpu-budgets", "replica=0.2,period=30").cpu_budgets == CpuBudgets(
        replica=0.2, period_ms=30
    )


def test_a_bad_budget_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--cpu-budgets", "replica=lots")
    assert "budget replica must be a number" in capsys.readouterr().err


def test_the_command_hands_the_budgets_to_the_scenarios(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[FaultConfig] = []
    monkeypatch.setattr(command, "run_faults", lambda config, scenarios: given.append(config))
    args = parse("--cpu-budgets", "replica=0.3")
    assert args.run(args) == 0
    assert given[0].cpu_budgets == CpuBudgets(replica=0.3)


@pytest.mark.parametrize("budgets", [CpuBudgets(), CpuBudgets(replica=0.5), None])
def test_every_plan_carries_the_budgets(budgets: CpuBudgets | None, tmp_path: Path) -> None:
    config = FaultConfig(cpu_budgets=budgets)
    fault_run = FaultRun(config, "replica-loss", tmp_path, LocalBackend())
    assert fault_run.plan.cpu_budgets == budgets


def test_the_report_states_the_budgets() -> None:
    text = report.markdown([], FaultConfig(), {})
    assert f"CPU budgets: {CpuBudgets().describe()}" in text
    assert "CPU budgets: none" in report.markdown([], FaultConfig(cpu_budgets=None), {})


def test_compose_runs_without_the_local_default_budgets() -> None:
    # A compose container's healthchecks run in its budget: the defaults leave Redis unhealthy.
    assert FaultConfig(backend="compose").cpu_budgets is None
    assert ExperimentConfig(backend="compose", shards=(0,)).cpu_budgets is None
    larger = CpuBudgets(redis=0.1)
    assert FaultConfig(backend="compose", cpu_budgets=larger).cpu_budgets == larger
    assert FaultConfig().cpu_budgets == CpuBudgets()
