"""Readers of each Redis shard, polled without pause through a failover, answer by answer.

Locust's timeline counts answers by request name, all users together; a cluster fails for the
users of one shard only. These readers are accounts chosen by the shard their hash tag maps to
(``failed``: the shard whose master is killed; ``other``: the rest). Each holds a session and a
token pair made before the fault and, in a thread of its own, reads the session dashboard and
refreshes its token pair over and over, recording when each request began and ended and what it
answered. A credential refused (401) is recorded once and no longer asked: asking again would
only repeat the same refusal.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from authscale.lab.faults.probes import Probe, Probes

#: The two requests every reader makes: one of each variant that touches Redis.
REQUESTS = ("session dashboard", "token refresh")
#: Between two rounds of one reader: about ten rounds a second, light beside Locust's load.
PAUSE = 0.1


@dataclass(frozen=True)
class Answer:
    group: str
    request: str
    began: float
    ended: float
    #: 0: no answer (a connection error or the client's timeout).
    status: int


@dataclass
class ShardReaders:
    gateway_url: str
    #: Group name (``failed``, ``other``) -> its accounts.
    groups: Mapping[str, Sequence[str]]
    answers: list[Answer] = field(default_factory=list)
    _probes: list[Probes] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        # Logins hash a password each: one after another, 20 readers took 35 s under load.
        accounts = [(group, name) for group, names in self.groups.items() for name in names]
        with ThreadPoolExecutor(max_workers=len(accounts) or 1) as pool:
            self._probes = list(pool.map(self._log_in, [name for _, name in accounts]))
        for (group, _), probes in zip(accounts, self._probes, strict=True):
            for probe in probes.probes:
                thread = threading.Thread(target=self._read, args=(group, probe), daemon=True)
                self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def _log_in(self, username: str) -> Probes:
        probes = Probes(self.gateway_url, [username])
        probes.log_in()
        return probes

    def stop(self) -> None:
        """Stop every reader; safe to call more than once."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        for probes in self._probes:
            probes.__exit__()
        self._probes.clear()

    def _read(self, group: str, probe: Probe) -> None:
        refused: set[str] = set()
        while not self._stop.is_set():
            if "session dashboard" not in refused:
                self._ask(group, "session dashboard", probe, refused)
            if "token refresh" not in refused:
                self._ask(group, "token refresh", probe, refused)
            self._stop.wait(PAUSE)

    def _ask(self, group: str, request: str, probe: Probe, refused: set[str]) -> None:
        began = time.time()
        try:
            if request == "session dashboard":
                status = probe.client.get("/session/dashboard").status_code
            else:
                answer = probe.client.post(
                    "/token/refresh", json={"refresh_token": probe.refresh_token}
                )
                status = answer.status_code
                if status == 200:
                    probe.refresh_token = answer.json()["refresh_token"]
        except httpx.HTTPError:
            status = 0
        if status == 401:
            refused.add(request)
        with self._lock:
            self.answers.append(Answer(group, request, began, time.time(), status))

    # -- what they saw -----------------------------------------------------------------------

    def select(self, group: str, request: str, *, after: float | None = None) -> list[Answer]:
        with self._lock:
            return [
                a
                for a in self.answers
                if a.group == group and a.request == request and (after is None or a.began >= after)
            ]

    def first_success(self, group: str, request: str, *, after: float) -> float | None:
        """Seconds from ``after`` to the end of the first 200 of a request begun after it."""
        ends = [a.ended for a in self.select(group, request, after=after) if a.status == 200]
        return min(ends) - after if ends else None

    def unavailable(self, group: str, request: str, *, after: float) -> tuple[float, float] | None:
        """From ``after``, the first and last second (relative) with a failed answer."""
        failed = [a for a in self.select(group, request, after=after) if a.status != 200]
        if not failed:
            return None
        return min(a.began for a in failed) - after, max(a.ended for a in failed) - after


def statuses(answers: Iterable[Answer]) -> Counter[int]:
    return Counter(answer.status for answer in answers)


def per_second_table(readers: ShardReaders, zero: float, before: int = 2) -> list[str]:
    """A Markdown table: for each second from ``before`` s before ``zero`` (the kill), what each
    group saw per request, by status, in the second its requests began."""
    columns = [(group, request) for group in readers.groups for request in REQUESTS]
    rows: dict[int, dict[tuple[str, str], Counter[int]]] = {}
    for group, request in columns:
        for answer in readers.select(group, request, after=zero - before):
            second = int(answer.began - zero + before) - before
            rows.setdefault(second, {}).setdefault((group, request), Counter())[answer.status] += 1
    header = "| s after the kill | " + " | ".join(f"{g}: {r}" for g, r in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for second in sorted(rows):
        cells = [_cell(rows[second].get(column, Counter())) for column in columns]
        lines.append(f"| {second:+d} | " + " | ".join(cells) + " |")
    return lines


def _cell(counts: Counter[int]) -> str:
    def name(status: int) -> str:
        return "no answer" if status == 0 else str(status)

    return ", ".join(f"{n} x {name(s)}" for s, n in sorted(counts.items())) or "-"
