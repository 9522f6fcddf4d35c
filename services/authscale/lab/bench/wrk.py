"""wrk, the load generator of ``authscale bench``: one C process, one thread per core.

wrk keeps each connection busy from an event loop written in C and spends a few microseconds per
request, where Locust (Python and gevent) spends hundreds: on one core it can saturate a Python
replica on another core, so the replica, not the generator, sets the figure. The credential goes
in a static header (``-H``), which wrk formats once; its Lua ``done`` hook only reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from authscale.lab.stack.processes import StackError

#: Prints one JSON line at the end of a run: latencies in microseconds, error counts by kind.
REPORT_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"authscale_wrk":1,"duration_us":%d,"requests":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p95":%d,"p99":%d,"mean":%f}\\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    #: Answers that were not 2xx/3xx, and sockets that failed (connect, read, write, timeout).
    bad_status: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    #: CPU seconds wrk itself used (user + system), from the kernel's accounting of the child.
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_share(self) -> float:
        """wrk's CPU over the run, as a fraction of one core."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


def binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise StackError(
            "wrk is not installed; install it with: sudo apt-get install -y wrk "
            "(or run `make bench`, which installs what is missing)"
        )
    return found


def run(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    headers: Sequence[str] = (),
    cpus: Iterable[int] | None = None,
) -> WrkResult:
    """Load ``url`` for ``seconds`` with ``connections`` kept busy; bounded in time."""
    allowed = set(cpus) if cpus is not None else None
    with tempfile.TemporaryDirectory(prefix="authscale-wrk-") as directory:
        script = Path(directory) / "report.lua"
        script.write_text(REPORT_SCRIPT)
        argv = [
            binary(),
            f"--threads={threads}",
            f"--connections={max(connections, threads)}",
            f"--duration={max(1, round(seconds))}s",
            "--timeout=5s",
            f"--script={script}",
        ]
        for header in headers:
            argv += ["--header", header]
        argv.append(url)
        report = Path(directory) / "report.txt"
        with report.open("wb") as sink:
            process = subprocess.Popen(
                argv,
                stdout=sink,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda: os.sched_setaffinity(0, allowed)) if allowed else None,
            )
        cpu = _wait(process, url, deadline=time.monotonic() + seconds + 30)
        text = report.read_text(errors="replace")
    return _parse(text, url, cpu)


def _wait(process: subprocess.Popen[bytes], url: str, deadline: float) -> float:
    """Reap wrk and return the CPU seconds it used, from the kernel's accounting (wait4)."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise StackError(f"wrk did not finish its run against {url} in time")
        time.sleep(0.05)


def _parse(text: str, url: str, cpu: float) -> WrkResult:
    for line in text.splitlines():
        if line.startswith('{"authscale_wrk"'):
            data = json.loads(line)
            return WrkResult(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                bad_status=int(data["status"]),
                socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
                p50_ms=data["p50"] / 1000,
                p95_ms=data["p95"] / 1000,
                p99_ms=data["p99"] / 1000,
                cpu_seconds=cpu,
            )
    raise StackError(f"wrk gave no report for {url}:\n{text[-2000:]}")
