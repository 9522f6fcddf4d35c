"""The machine's pace during a window: the CPU time a fixed unit of Python work takes.

This virtual machine's CPU does more or less work per second as its host's load moves, within
minutes and between windows of one run (a replica's CPU per request moved by a fifth between two
cells of the same series, 15 s apart). A budget fixes CPU seconds, not work, so a cost per
request measured in one window does not carry to the next. The probe runs beside the load, one
unit every :data:`INTERVAL` seconds (about 2 % of a core), and records each unit's CPU time;
the median over a window is that window's *pace*, and a cost divided by it is a cost in units,
which does carry (:mod:`authscale.lab.experiment.scale_model`).

The unit is the interpreter work a replica does per request (dicts, JSON, small loops), run
after a sleep so that it starts with cold caches, as a replica's request does.

Run as ``python -m authscale.lab.measure.pace SECONDS [INTERVAL]``: it prints
``<wall time> <CPU ns>`` per unit and stops after ``SECONDS`` (or when terminated).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

#: Seconds between the starts of two units: a unit takes a few milliseconds.
INTERVAL = 0.1
#: The shortest interval a short window may ask for (a unit every 25 ms is about 8 % of a core).
MIN_INTERVAL = 0.025
#: Fewer units than this in a window give no pace: a median of a handful is noise.
MIN_UNITS = 20


def unit(rounds: int = 150) -> int:
    """The fixed unit of work: a small document encoded, decoded and summed ``rounds`` times."""
    document: dict[str, object] = {"sub": "user-1", "roles": ["reader", "writer"], "n": 0}
    total = 0
    for index in range(rounds):
        document["n"] = index
        total += len(json.loads(json.dumps(document)))
        total += sum(value * value for value in range(20))
    return total


@dataclass(frozen=True)
class Reading:
    at: float
    cpu_seconds: float


def parse(text: str) -> list[Reading]:
    readings = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2:
            readings.append(Reading(float(fields[0]), int(fields[1]) / 1e9))
    return readings


def interval_for(window: float | None) -> float:
    """The interval that fits twice :data:`MIN_UNITS` units into a window of ``window`` seconds,
    never longer than :data:`INTERVAL` nor shorter than :data:`MIN_INTERVAL`: a window of 2 s
    (a test's calibration) gets a pace, not None."""
    if window is None:
        return INTERVAL
    return max(MIN_INTERVAL, min(INTERVAL, window / (2 * MIN_UNITS)))


def pace(readings: Sequence[Reading], start: float, stop: float) -> float | None:
    """The median CPU seconds of the units that ran between ``start`` and ``stop``."""
    inside = [r.cpu_seconds for r in readings if start <= r.at <= stop]
    return statistics.median(inside) if len(inside) >= MIN_UNITS else None


class Probe:
    """The probe as a child process for the length of a ``with`` block.

    ``seconds`` bounds the probe's life; ``window`` is the length of the window whose pace is
    wanted, which sets how often a unit runs (:func:`interval_for`).
    """

    def __init__(self, seconds: float, window: float | None = None) -> None:
        self.seconds = seconds
        self.interval = interval_for(window)
        self.readings: list[Reading] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Probe:
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, f"{self.seconds:g}", f"{self.interval:g}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._process is not None
        self._process.terminate()
        output, _ = self._process.communicate(timeout=30)
        self.readings = parse(output)


def main(seconds: float, interval: float = INTERVAL) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        began = time.thread_time_ns()
        unit()
        spent = time.thread_time_ns() - began
        print(f"{time.time():.6f} {spent}", flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        main(float(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else INTERVAL)
