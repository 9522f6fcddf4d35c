"""CPU budgets on compose: the override the backend layers over compose.yaml, and a stack under it.

The first tests read the files alone. The compose-marked ones need a compose program (the
rendered config) and a Docker engine (one budgeted stack, up and down under its own project
name), and skip or fail (under CI) like tests/test_compose.py.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from authscale.lab.backend import StackPlan
from authscale.lab.budgets import CpuBudgets
from authscale.lab.compose import backend as compose_backend
from authscale.lab.compose import engine as docker_engine
from authscale.lab.compose.budgets import SERVICES, override, write_override
from tests.test_compose import ROOT, compose_file, require_engine

PROJECT = "authscale-budgets-test"
#: Not the defaults: every component's own numbers, and Redis's longer period for a 1 ms quota.
#: Each large enough for its container's healthchecks, which run in its budget.
BUDGETS = CpuBudgets(replica=0.5, issuer=0.4, redis=0.05, gateway=0.3, period_ms=10)
CPU_KEYS = {"cpus", "cpu_quota", "cpu_period", "cpu_shares", "cpu_count", "cpu_percent"}


def limits(budgets: CpuBudgets, service: str) -> dict[str, int]:
    cores = budgets.cores(SERVICES[service])
    return {"cpu_quota": budgets.quota_us(cores), "cpu_period": budgets.period_us(cores)}


def test_compose_yaml_itself_limits_no_cpu() -> None:
    # A plain `docker compose up` runs as before: the budgets come only with the override.
    for name, service in compose_file()["services"].items():
        assert CPU_KEYS.isdisjoint(service), name


def test_the_override_budgets_every_replica_redis_node_and_the_gateway() -> None:
    services = compose_file()["services"]
    layered: dict[str, Any] = yaml.safe_load(override(BUDGETS))["services"]
    assert set(layered) <= set(services), "the override names only compose.yaml's services"
    for name in services:
        if name in SERVICES:
            assert layered[name] == limits(BUDGETS, name), name
        else:
            assert name not in layered, f"{name} runs outside the budgets"
    assert layered["session"] == {"cpu_quota": 5000, "cpu_period": 10000}
    assert layered["redis"] == {"cpu_quota": 1000, "cpu_period": 20000}


def test_a_plan_with_other_budgets_needs_a_fresh_project(tmp_path: Path) -> None:
    plan = StackPlan(label="session x1", replicas={"session": 1}, run_dir=tmp_path)
    budgeted = replace(plan, cpu_budgets=BUDGETS)
    other = replace(plan, cpu_budgets=CpuBudgets())
    rescaled = replace(budgeted, replicas={"session": 3})
    assert compose_backend.running_for(rescaled) == compose_backend.running_for(budgeted), (
        "a replica count alone is a rescale"
    )
    running_for = [compose_backend.running_for(each) for each in (plan, budgeted, other)]
    for index, each in enumerate(running_for):
        assert each not in running_for[index + 1 :]


@pytest.mark.compose
def test_the_compose_program_renders_the_limits(tmp_path: Path) -> None:
    program = docker_engine.compose_program()
    if program is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    path = write_override(BUDGETS, tmp_path / "compose-budgets.yaml")
    env = {
        **os.environ,
        "COMPOSE_FILE": f"{ROOT / 'compose.yaml'}{os.pathsep}{path}",
        "AUTHSCALE_REDIS_PASSWORD": secrets.token_hex(24),
        "AUTHSCALE_COOKIE_SECURE": "false",
    }
    rendered = subprocess.run(
        [*program, "--profile", "cluster", "config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    services = yaml.safe_load(rendered)["services"]
    for name, service in services.items():
        found = {key: service[key] for key in CPU_KEYS if key in service}
        assert found == (limits(BUDGETS, name) if name in SERVICES else {}), name


@pytest.mark.compose
def test_a_budgeted_stack_runs_each_container_under_its_quota(tmp_path: Path) -> None:
    require_engine("the compose budgets test")
    backend = compose_backend.ComposeBackend(project=PROJECT)
    backend.prepare({})
    # Two session replicas: the second comes from deploy/compose-scale.sh, after `up`.
    plan = StackPlan(
        label="session x2 budgeted",
        replicas={"session": 2},
        run_dir=tmp_path,
        family="session",
        cpu_budgets=BUDGETS,
    )
    try:
        with backend.stack(plan):
            assert backend.running is not None
            ids = backend.running.ids()
            template = (
                '{{index .Config.Labels "com.docker.compose.service"}} {{.Id}} '
                "{{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}}"
            )
            seen: dict[str, list[str]] = {}
            for line in docker_engine.inspect(ids, template):
                service, identifier, quota, period = line.split()
                seen.setdefault(service, []).append(identifier)
                wanted = limits(BUDGETS, service) if service in SERVICES else {}
                assert (int(quota), int(period)) == (
                    wanted.get("cpu_quota", 0),
                    wanted.get("cpu_period", 0),
                ), service
            assert len(seen["session"]) == 2
            assert {"token", "issuer", "redis", "gateway"} <= set(seen)
            # The kernel's own view, from inside the replica compose-scale.sh added:
            # cpu.max on cgroup v2, cfs_quota_us and cfs_period_us on v1.
            read = (
                "cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "
                '"$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) '
                '$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"'
            )
            for identifier in seen["session"]:
                argv = ["docker", "exec", identifier, "sh", "-c", read]
                kernel = docker_engine.run(argv, what="reading the replica's cgroup").stdout
                assert kernel.split() == ["5000", "10000"], identifier
        assert "replica 0.5 core (5 ms per 10 ms)" in backend.describe()
    finally:
        backend.close()
