"""Per-second counts of every answer by request name, status and outcome, for fault experiments.

Locust's own history (``--csv-full-history``) has failures per second but not their status, and
a fault experiment must tell a 503 (the design) from a 401 (a lost session) or a 500 (a bug). With
``--timeline FILE`` every request is counted in its second, and the counts are written as CSV
(``second,name,status,outcome,count``; status 0 is a connection error) when the run stops.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

#: (whole second since the epoch, request name, HTTP status, "ok" or "failed") -> answers.
Key = tuple[int, str, int, str]


class Timeline:
    def __init__(self) -> None:
        self.counts: Counter[Key] = Counter()

    def count(
        self,
        name: str,
        response: Any,
        exception: BaseException | None,
        start_time: float | None,
    ) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        outcome = "failed" if exception is not None else "ok"
        second = int(start_time) if start_time else 0
        self.counts[(second, name, status, outcome)] += 1

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["second", "name", "status", "outcome", "count"])
            for key in sorted(self.counts):
                writer.writerow([*key, self.counts[key]])
