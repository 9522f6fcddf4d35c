"""CPU budgets on compose: an override file giving every budgeted container its quota and period.

The compose backend layers it over compose.yaml (``COMPOSE_FILE=compose.yaml:<override>``), so
each container of a budgeted service, and each replica ``deploy/compose-scale.sh`` adds later,
gets ``cpu_quota`` and ``cpu_period`` of its own: a replica's budget is per container, as on the
local stack it is per process.

Why written integers, not ``${...}`` variables in compose.yaml: an interpolated value is a
string, and the two Compose programs read a ``cpu_quota`` or ``cpu_period`` string differently.
docker-compose 1.29 reads a duration (``2000us``; a bare ``2000`` fails), Compose v2 an integer
(``2000``; ``2000us`` fails). No string passes both, not even one meaning "no limit", so a
variable would break a plain ``up`` under one of them. An integer written in the file means
microseconds to both. ``cpus`` reads alike in both but fixes the period at 100 ms, which turns a
0.1 budget into stalls of 90 ms (:mod:`authscale.lab.budgets`).

Unlike a process of the local stack, a container pays for its probes: Docker runs each
healthcheck, and every ``docker exec``, inside the container's group, so they draw on its budget
(:data:`TOO_SMALL`).
"""

from __future__ import annotations

from pathlib import Path

from authscale.lab.budgets import CpuBudgets

#: Said when a budgeted project fails to come up: the likeliest reason is the probes' cost.
TOO_SMALL = (
    "Under CPU budgets a container's healthchecks, like every `docker exec` into it, run in its "
    "budget: every 5 s, about 30 ms of CPU for the gateway's, 40-80 ms for Redis's and 100-125 "
    "ms for a replica's (runc's start alone is about 30 ms). A budget that cannot pay for one "
    "within its 3 s timeout (Redis at 0.005 core, 5 ms a second) leaves its container unhealthy "
    "(docs/deploy.md, CPU budgets)."
)

#: compose.yaml's budgeted services -> the component whose budget each of their containers
#: gets: the replica roles, the gateway, and every Redis node (``redis``, and the cluster
#: profile's, for a user who layers the file over that profile by hand).
SERVICES = {
    "session": "session",
    "token": "token",
    "issuer": "issuer",
    "redis": "redis",
    **{f"redis-{node}": "redis" for node in range(1, 7)},
    "gateway": "gateway",
}


def override(budgets: CpuBudgets) -> str:
    """The override file's text: ``cpu_quota`` and ``cpu_period`` (µs) for every service."""
    lines = [
        "# CPU budgets for compose.yaml, written by authscale's compose backend: "
        f"{budgets.describe()}.",
        "services:",
    ]
    for service, component in SERVICES.items():
        cores = budgets.cores(component)
        lines += [
            f"  {service}:",
            f"    cpu_quota: {budgets.quota_us(cores)}",
            f"    cpu_period: {budgets.period_us(cores)}",
        ]
    return "\n".join(lines) + "\n"


def write_override(budgets: CpuBudgets, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(override(budgets))
    return path
