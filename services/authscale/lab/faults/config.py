"""What the fault scenarios are run with: a :class:`~authscale.lab.run.RunConfig` and the fault."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from authscale.lab.budgets import CpuBudgets
from authscale.lab.run import RunConfig
from authscale.lab.stack.processes import StackError


@dataclass(frozen=True)
class FaultConfig(RunConfig):
    #: The scenarios to run, by name; none: all of them.
    scenarios: Sequence[str] = ()
    #: Seconds after Locust starts when the fault begins.
    fault_at: float = 12.0
    #: How long Redis stays down, and how long a killed replica stays dead.
    outage: float = 10.0
    #: Accounts logged in outside Locust before the fault and checked after it.
    probes: int = 20
    #: Seconds of load in the soak scenario.
    soak: float = 600.0
    command: str = "authscale experiment faults"
    #: Compose only: each scenario's project is ``<project>-<scenario>``.
    project: str = "authscale-faults"
    #: A CPU budget per component, the scaling experiment's by default, so that a lost replica
    #: takes its share of the capacity with it as on a machine of its own; ``None``: every
    #: process shares the machine's cores. Every scenario's plan carries them.
    cpu_budgets: CpuBudgets | None = field(default_factory=CpuBudgets)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend == "compose" and self.cpu_budgets == CpuBudgets():
            # The local stack's defaults do not fit compose, where a container's healthchecks
            # run in its budget (docs/deploy.md): compose runs without unless given others.
            object.__setattr__(self, "cpu_budgets", None)
        if self.users < 2 or self.fault_at < 0 or self.outage < 0:
            raise StackError(
                "users must be 2 or more (one per variant), fault time and outage 0 or more"
            )
        if self.soak <= self.fault_at:
            raise StackError(f"the soak ({self.soak:g} s) must outlast the fault delay")
        if self.fault_at + self.outage >= self.seconds:
            raise StackError(
                f"the fault ({self.fault_at:g} s + {self.outage:g} s) must end before the load "
                f"does ({self.seconds:g} s): raise --seconds"
            )
