"""What a local stack leaves in its run directory: ``stack.json``, read by ``authscale down``.

It records every process's pid with the kernel's start time of that pid, so a stack stopped
later (or by another command) signals exactly the processes it started, never a recycled pid.
It also holds the Redis URL (with its password), so the file is readable by its owner only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from authscale.lab import budget_groups
from authscale.lab.stack import processes

DEFAULT_RUN_DIR = Path(".authscale")
STATE_FILE = "stack.json"


def stop_rank(role: str) -> int:
    """Gateway first (no new requests), then the replicas (they drain), Redis last."""
    return {"gateway": 0, "redis": 2}.get(role, 1)


def write_state(
    run_dir: Path,
    *,
    gateway_url: str,
    redis_url: str,
    processes: Sequence[tuple[str, int, int]],
    cpu_groups: Sequence[Path] = (),
) -> None:
    """``cpu_groups``: the CPU budgets' control groups, removed in order once all have stopped."""
    state = {
        "gateway_url": gateway_url,
        "redis_url": redis_url,
        "processes": [{"name": name, "pid": pid, "ticks": ticks} for name, pid, ticks in processes],
        "cpu_groups": [str(group) for group in cpu_groups],
    }
    path = run_dir / STATE_FILE
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(state, indent=2))


def forget(run_dir: Path) -> None:
    (run_dir / STATE_FILE).unlink(missing_ok=True)


def read_state(run_dir: Path) -> dict[str, object] | None:
    try:
        state: dict[str, object] = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state


def _recorded(run_dir: Path) -> list[tuple[str, int, int]]:
    """(name, pid, start ticks) of each recorded process."""
    state = read_state(run_dir)
    records = state.get("processes") if state else None
    if not isinstance(records, list):
        return []
    entries = [(str(r["name"]), int(r["pid"]), int(r["ticks"])) for r in records]
    return entries


def alive_recorded(run_dir: Path) -> bool:
    return any(processes.is_same_process(pid, ticks) for _, pid, ticks in _recorded(run_dir))


def stop_in_order(entries: Sequence[tuple[str, int, int]]) -> int:
    """Stop (name, pid, start ticks) entries rank by rank, each rank all at once so replicas
    drain in parallel; returns how many were still running."""
    alive = [entry for entry in entries if processes.is_same_process(entry[1], entry[2])]
    for rank in sorted({stop_rank(_role(name)) for name, _, _ in alive}):
        processes.stop_all(
            [(pid, ticks) for name, pid, ticks in alive if stop_rank(_role(name)) == rank]
        )
    return len(alive)


def stop_recorded(run_dir: Path) -> int:
    """Stop the processes a detached stack recorded, then remove its CPU budgets' groups (the
    stack's supervisor returned long ago); returns how many were still running."""
    stopped = stop_in_order(_recorded(run_dir))
    state = read_state(run_dir)
    groups = state.get("cpu_groups") if state else None
    if isinstance(groups, list):
        budget_groups.remove_groups([Path(group) for group in groups])
    forget(run_dir)
    return stopped


def _role(name: str) -> str:
    """``session-2`` -> ``session``; ``redis`` and ``gateway`` are their own role."""
    return name.split("-")[0]


def running_redis_url(run_dir: Path | None = None) -> str | None:
    state = read_state(run_dir or Path(os.environ.get("AUTHSCALE_RUN_DIR", DEFAULT_RUN_DIR)))
    url = state.get("redis_url") if state else None
    return url if isinstance(url, str) else None
