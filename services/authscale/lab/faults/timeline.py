"""What Locust's ``--timeline`` CSV says: answers per second by request name, status and outcome.

A run's timeline also carries the same run's latency history (``*_stats_history.csv``), which
the report plots beside the answers.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from authscale.lab.faults.latency import LatencyHistory


@dataclass(frozen=True)
class Row:
    second: int
    name: str
    status: int
    failed: bool
    count: int


@dataclass(frozen=True)
class Timeline:
    rows: Sequence[Row]
    #: Locust's percentiles per second for the same run, when it wrote them.
    latency: LatencyHistory | None = None

    @classmethod
    def read(cls, path: Path) -> Timeline:
        with path.open(newline="") as file:
            rows = [
                Row(
                    int(r["second"]),
                    r["name"],
                    int(r["status"]),
                    r["outcome"] == "failed",
                    int(r["count"]),
                )
                for r in csv.DictReader(file)
            ]
        return cls(rows)

    def select(
        self,
        *,
        names: Iterable[str] | None = None,
        prefix: str | None = None,
        start: float | None = None,
        stop: float | None = None,
    ) -> list[Row]:
        wanted = set(names) if names is not None else None
        return [
            row
            for row in self.rows
            if (wanted is None or row.name in wanted)
            and (prefix is None or row.name.startswith(prefix))
            and (start is None or row.second >= int(start))
            and (stop is None or row.second < stop)
        ]

    @staticmethod
    def total(rows: Iterable[Row]) -> int:
        return sum(row.count for row in rows)

    @staticmethod
    def failed(rows: Iterable[Row]) -> int:
        return sum(row.count for row in rows if row.failed)

    @staticmethod
    def by_status(rows: Iterable[Row], *, failed_only: bool = False) -> dict[int, int]:
        counts: Counter[int] = Counter()
        for row in rows:
            if row.failed or not failed_only:
                counts[row.status] += row.count
        return dict(sorted(counts.items()))

    @property
    def first_second(self) -> int:
        return min((row.second for row in self.rows), default=0)

    def per_second(self, prefix: str) -> tuple[list[int], list[int], dict[int, list[int]]]:
        """Seconds since the first answer, answers per second, and failures per second by status."""
        rows = self.select(prefix=prefix)
        if not rows:
            return [], [], {}
        start = self.first_second
        end = max(row.second for row in rows)
        seconds = list(range(0, end - start + 1))
        answers = [0] * len(seconds)
        failures: dict[int, list[int]] = {}
        for row in rows:
            slot = row.second - start
            answers[slot] += row.count
            if row.failed:
                failures.setdefault(row.status, [0] * len(seconds))[slot] += row.count
        return seconds, answers, failures


def describe(counts: dict[int, int]) -> str:
    """``{503: 12, 0: 1}`` -> ``"12 x 503, 1 x connection error"``; empty -> ``"none"``."""
    if not counts:
        return "none"
    return ", ".join(
        f"{count} x {'connection error' if status == 0 else status}"
        for status, count in counts.items()
    )
