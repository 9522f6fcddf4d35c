"""What Locust's ``*_stats_history.csv`` says: response-time percentiles, second by second.

With ``--csv-full-history`` (the fault runner passes it) Locust writes a row per second per
request name, and its percentiles are "current" ones: over the answers of the last 10 s
(``locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW``), so a stall shows for up to 10 s
after it ended, and a spike shorter than that is smoothed, never lost. Without the option (the
runs committed before it) there is only the ``Aggregated`` row, and its percentiles are over
every answer since the start: a fault barely moves them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

AGGREGATED = "Aggregated"
#: The percentile columns plotted, as Locust names them.
PERCENTILES = ("50%", "95%", "99%")


@dataclass(frozen=True)
class Sample:
    second: int
    name: str
    #: Response-time percentiles in milliseconds, by column (``"95%"``); NaN before any answer.
    milliseconds: dict[str, float]
    #: Answers to this name since the run started (Locust's running total).
    total: int


@dataclass(frozen=True)
class Series:
    """One request name's percentiles per second, ready to plot."""

    name: str
    seconds: list[int]
    milliseconds: dict[str, list[float]]


@dataclass(frozen=True)
class LatencyHistory:
    samples: list[Sample]

    @classmethod
    def read(cls, path: Path) -> LatencyHistory:
        with path.open(newline="") as file:
            samples = [
                Sample(
                    second=int(row["Timestamp"]),
                    name=row["Name"],
                    milliseconds={column: _number(row[column]) for column in PERCENTILES},
                    total=int(row["Total Request Count"]),
                )
                for row in csv.DictReader(file)
            ]
        return cls(samples)

    def busiest(self, prefix: str) -> str | None:
        """The request name under ``prefix`` with the most answers: a variant's readers."""
        totals: dict[str, int] = {}
        for sample in self.samples:
            if sample.name.startswith(prefix):
                totals[sample.name] = max(totals.get(sample.name, 0), sample.total)
        return max(totals, key=lambda name: totals[name]) if totals else None

    def series(self, prefix: str, start: int) -> Series | None:
        """The busiest name's percentiles under ``prefix``, in seconds since ``start``.

        A history without per-name rows (a run without ``--csv-full-history``) gives the
        cumulative aggregate of every request instead, named so; an empty one gives None.
        """
        name = self.busiest(prefix) or (AGGREGATED if self._has(AGGREGATED) else None)
        if name is None:
            return None
        rows = [sample for sample in self.samples if sample.name == name]
        return Series(
            name=name if name != AGGREGATED else "all requests since the start",
            seconds=[sample.second - start for sample in rows],
            milliseconds={
                column: [sample.milliseconds[column] for sample in rows] for column in PERCENTILES
            },
        )

    def _has(self, name: str) -> bool:
        return any(sample.name == name for sample in self.samples)


def quiet_for(path: Path, word: str) -> int | None:
    """Seconds the history has held every request name containing ``word`` unchanged: how
    long since the last of them was answered. None while the history has no such name yet.

    Locust writes the file while it runs (flushing every few seconds), so a line it is still
    writing is left out.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    lines = text.splitlines(keepends=True)
    complete = [line for line in lines if line.endswith("\n")]
    newest = None
    totals: dict[str, int] = {}
    changed = None
    for row in csv.DictReader(complete):
        try:
            second, total = int(row["Timestamp"]), int(row["Total Request Count"])
        except (KeyError, TypeError, ValueError):
            continue
        newest = second
        name = row.get("Name") or ""
        if word in name and totals.get(name) != total:
            totals[name] = total
            changed = second
    if newest is None or changed is None:
        return None
    return newest - changed


def _number(text: str) -> float:
    """Locust writes ``N/A`` for a percentile of no answers."""
    try:
        return float(text)
    except ValueError:
        return math.nan
