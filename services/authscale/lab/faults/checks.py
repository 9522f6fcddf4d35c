"""What a fault scenario gives back: its table of targets, its marks, its timeline, its notes."""

from __future__ import annotations

from dataclasses import dataclass, field

from authscale.lab.faults.timeline import Timeline


@dataclass(frozen=True)
class Check:
    """One row of a scenario's table."""

    target: str
    observed: str
    met: bool
    #: A measured target (speed, memory growth): reported, never asserted by the test suite,
    #: whose short runs say nothing about either.
    measured: bool = False


@dataclass
class ScenarioResult:
    name: str
    title: str
    checks: list[Check] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    timeline: Timeline | None = None
    notes: list[str] = field(default_factory=list)
    #: What ran the stack: ``local`` or ``compose``.
    backend: str = "local"
    #: The scenario's own figures by name (seconds, counts), for summary.json and comparisons.
    figures: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return all(check.met for check in self.checks)
