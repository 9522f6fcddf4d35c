"""CPU readings from /proc and core pinning, on real child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from authscale.lab.measure import cpu

BUSY = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_a_busy_child_is_counted_in_its_parents_tree() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BUSY!r}])",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        seen = 0.0
        while parent.poll() is None and time.monotonic() < deadline:
            seen = max(seen, cpu.tree_cpu_seconds(parent.pid))
            time.sleep(0.05)
        # The child burnt CPU while the parent waited: the tree saw it, the parent alone did not.
        assert seen > 0.1
    finally:
        parent.kill()
        parent.wait()


def test_pin_confines_a_process_and_its_threads() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(5,)).start()\ntime.sleep(5)",
        ]
    )
    try:
        threads: list[str] = []
        for _ in range(200):  # until the thread has started (10 s: does not hang)
            threads = os.listdir(f"/proc/{process.pid}/task")
            if len(threads) >= 2:
                break
            time.sleep(0.05)
        assert len(threads) >= 2
        core = cpu.usable_cpus()[-1]
        cpu.pin(process.pid, [core])
        threads = os.listdir(f"/proc/{process.pid}/task")
        assert all(os.sched_getaffinity(int(thread)) == {core} for thread in threads)
    finally:
        process.kill()
        process.wait()


def test_samples_subtract_into_what_happened_between() -> None:
    first = cpu.sample({"me": [os.getpid()]}, at=1.0)
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    second = cpu.sample({"me": [os.getpid()]}, at=3.0)
    spent = second.minus(first)
    assert spent.at == 2.0
    assert spent.components["me"] > 0
    assert spent.machine_total > 0
    assert 0 <= spent.machine_busy <= spent.machine_total + 1e-6  # float sums of ticks
    busy, total = cpu.machine_busy_seconds(cpu.usable_cpus()[0])
    assert 0 <= busy <= total


def test_an_exited_process_has_no_tree() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert cpu.descendants(process.pid) == []
    assert cpu.cpu_seconds(process.pid) == 0.0


def test_cpu_seconds_are_finer_than_clock_ticks() -> None:
    # A hundredth of a core for a second is one clock tick: the count must resolve far below it.
    code = (
        "import sys, time\n"
        "end = time.process_time() + 0.0123\n"
        "while time.process_time() < end: pass\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        seen = 0.0
        while time.monotonic() < deadline:
            seen = cpu.cpu_seconds(child.pid)
            if seen >= 0.0123:
                break
            time.sleep(0.02)
        # Start-up plus the loop; ticks would read a multiple of 0.01 s.
        assert seen >= 0.0123
        assert round(seen * 100) != seen * 100
    finally:
        child.kill()
        child.wait()
