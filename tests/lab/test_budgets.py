"""CPU budgets: the text a user gives, the period each budget gets, the driver a machine allows,
and, as root on cgroup v1, that the kernel holds a process and its children to its budget."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authscale.lab import budget_groups, budgets
from authscale.lab.budget_groups import CgroupDriver
from authscale.lab.budgets import BudgetError, CpuBudgets
from authscale.lab.stack import processes, redis_node, supervisor
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import ProcessSpec
from tests.conftest import stack_config
from tests.lab.stack.test_local import alive, authscale, cli_ports, recorded_pids

# -- what a user writes ----------------------------------------------------------------------


def test_parse_fills_the_rest_with_defaults() -> None:
    parsed = CpuBudgets.parse(" replica=0.2, redis=0.02 ,period=30ms")
    assert parsed == CpuBudgets(replica=0.2, redis=0.02, period_ms=30)


def test_parse_none_is_no_budgets_and_default_the_defaults() -> None:
    assert CpuBudgets.parse("none") is None
    assert CpuBudgets.parse(" None ") is None
    assert CpuBudgets.parse("default") == CpuBudgets()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("replicas=0.1", "budgets look like replica=0.1,issuer=0.2"),
        ("cpu=1", "got 'cpu=1'"),
        ("replica=fast", "budget replica must be a number, got 'fast'"),
        ("issuer", "budget issuer must be a number, got ''"),
        ("replica=0", "the replica budget must be 0.001 to 64 cores"),
        ("gateway=65", "the gateway budget must be 0.001 to 64 cores"),
        ("redis=-0.01", "got -0.01"),
        ("redis=nan", "the redis budget must be 0.001 to 64 cores"),
        ("period=0.5", "the budget period must be 1 to 1000 ms, got 0.5"),
        ("period=2000", "the budget period must be 1 to 1000 ms"),
    ],
)
def test_parse_refuses_what_it_cannot_apply(text: str, message: str) -> None:
    with pytest.raises(BudgetError, match="budget") as refused:
        CpuBudgets.parse(text)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("cores", "period_ms", "expected_us"),
    [
        (0.1, 20, 20_000),  # 2 ms fits in the period asked for
        (0.01, 20, 100_000),  # 1 ms per 100 ms: the shortest period holding the floor
        (0.001, 20, 1_000_000),  # 1 ms per second
        (0.003, 20, 333_334),  # rounded up, so the quota never falls under 1 ms
        (2.0, 1, 1_000),
    ],
)
def test_period_is_the_shortest_that_holds_a_1_ms_quota(
    cores: float, period_ms: float, expected_us: int
) -> None:
    budget = CpuBudgets(period_ms=period_ms)
    assert budget.period_us(cores) == expected_us
    assert budget.quota_us(cores) >= budgets.MIN_QUOTA_US
    assert budget.quota_us(cores) == round(cores * expected_us)


def test_describe_gives_every_budget_its_quota_and_period() -> None:
    assert CpuBudgets().describe() == (
        "replica 0.1 core (2 ms per 20 ms), issuer 0.2 core (4 ms per 20 ms), "
        "redis (each node) 0.005 core (1 ms per 200 ms), gateway 0.3 core (6 ms per 20 ms)"
    )


def test_cores_for_every_role() -> None:
    budget = CpuBudgets(replica=0.15, issuer=0.25, redis=0.02, gateway=0.5)
    assert {role: budget.cores(role) for role in budgets.BUDGETED} == {
        "session": 0.15,
        "token": 0.15,
        "issuer": 0.25,
        "redis": 0.02,
        "gateway": 0.5,
    }
    assert budget.total({"session": 2, "token": 2, "issuer": 1, "redis": 1}) == pytest.approx(0.87)
    with pytest.raises(BudgetError, match="no CPU budget for 'web'; budgeted: session, token"):
        budget.cores("web")


# -- which driver ----------------------------------------------------------------------------


def v1_mount(point: Path) -> str:
    return f"cgroup {point} cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n"


def test_v1_only_is_a_group_under_the_cpu_mount(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    cpu.mkdir()
    mounts = f"cgroup {tmp_path}/memory cgroup rw,memory 0 0\n" + v1_mount(cpu)
    driver = budget_groups.driver("run-1", mounts=mounts, euid=0)
    assert isinstance(driver, CgroupDriver)
    assert (driver.version, driver.name, driver.parent) == (1, "cgroup v1", cpu / "authscale/run-1")
    assert driver.parent.is_dir()


def test_v1_place_writes_period_before_quota_and_release_removes_the_groups(
    tmp_path: Path,
) -> None:
    driver = budget_groups.driver("run-1", mounts=v1_mount(tmp_path), euid=0)
    assert isinstance(driver, CgroupDriver)
    placement = driver.place("redis", 0.01, CpuBudgets())
    group = driver.parent / "redis"
    assert placement.enter is not None and placement.argv_prefix == ()
    assert (group / "cpu.cfs_period_us").read_text() == "100000"
    assert (group / "cpu.cfs_quota_us").read_text() == "1000"
    assert driver.groups() == [group, driver.parent]
    # The kernel's files vanish with the group; here they are plain files to clear first.
    for file in group.iterdir():
        file.unlink()
    driver.release()
    assert not driver.parent.exists() and driver.groups() == [driver.parent]


def test_v2_with_the_cpu_controller_comes_first_and_enables_it_down_to_the_groups(
    tmp_path: Path,
) -> None:
    unified, cpu = tmp_path / "unified", tmp_path / "cpu"
    unified.mkdir()
    cpu.mkdir()
    (unified / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    mounts = v1_mount(cpu) + f"cgroup2 {unified} cgroup2 rw,nsdelegate 0 0\n"
    driver = budget_groups.driver("run-2", mounts=mounts, euid=0)
    assert isinstance(driver, CgroupDriver)
    assert (driver.version, driver.parent) == (2, unified / "authscale/run-2")
    for level in (unified, unified / "authscale", driver.parent):
        assert (level / "cgroup.subtree_control").read_text() == "+cpu"
    driver.place("token-1", 0.1, CpuBudgets())
    assert (driver.parent / "token-1" / "cpu.max").read_text() == "2000 20000"


def test_v2_without_the_cpu_controller_falls_back_to_v1_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    unified, cpu = tmp_path / "unified", tmp_path / "cpu"
    unified.mkdir()
    cpu.mkdir()
    # As on a hybrid machine: v1 holds the cpu controller, so v2 cannot offer it.
    (unified / "cgroup.controllers").write_text("pids\n")
    mounts = f"cgroup2 {unified} cgroup2 rw 0 0\n" + v1_mount(cpu)
    driver = budget_groups.driver("run-3", mounts=mounts, euid=0)
    assert isinstance(driver, CgroupDriver) and driver.version == 1
    assert not (unified / "authscale").exists()


def test_v2_that_refuses_the_controller_midway_removes_the_levels_it_made(
    tmp_path: Path,
) -> None:
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("cpu\n")
    # A level whose subtree_control cannot be written, as the kernel refuses where a group
    # holds processes of its own.
    (unified / "authscale" / "cgroup.subtree_control").mkdir(parents=True)
    mounts = f"cgroup2 {unified} cgroup2 rw 0 0\n"
    with pytest.raises(BudgetError):
        budget_groups.driver("run-4", mounts=mounts, euid=0)
    assert not (unified / "authscale" / "run-4").exists()


def test_no_writable_group_and_no_user_systemd_says_how_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no systemd-run
    with pytest.raises(BudgetError) as refused:
        budget_groups.driver("run-5", mounts=v1_mount(tmp_path), euid=1000)
    message = str(refused.value)
    assert "CPU budgets need control groups this user can write" in message
    assert "run as root" in message and "systemd-run --user" in message
    assert "--cpu-budgets none" in message
    assert not (tmp_path / "authscale").exists()


def test_a_read_only_cgroup_mount_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    missing = tmp_path / "not-mounted"  # mkdir under it fails, as on a read-only mount
    (tmp_path / "not-mounted").write_text("")
    with pytest.raises(BudgetError, match="control groups this user can write"):
        budget_groups.driver("run-6", mounts=v1_mount(missing), euid=0)


# -- the kernel ------------------------------------------------------------------------------

#: Burns CPU after forking a child that sleeps: both must stay in the group.
BURNER = (
    "import os, sys, time\n"
    "child = os.fork()\n"
    "if child == 0:\n"
    "    time.sleep(120)\n"
    "    sys.exit()\n"
    "print(child, flush=True)\n"
    "while True:\n"
    "    pass\n"
)


def kernel_driver(tag: str) -> CgroupDriver:
    """The machine's cgroup v1 cpu driver, or a skip saying why there is none."""
    if os.geteuid() != 0:
        pytest.skip("placing processes in control groups needs root")
    try:
        driver = budget_groups.driver(tag)
    except BudgetError as error:
        pytest.skip(f"no writable cpu controller: {error}")
    if not isinstance(driver, CgroupDriver) or driver.version != 1:
        driver.release()
        pytest.skip(f"these tests read cgroup v1 files; this machine offers {driver.name}")
    return driver


def cgroup_of(pid: int) -> str:
    """The pid's group in the v1 cpu hierarchy, from /proc/PID/cgroup (``4:cpu:/a/b``)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
    raise AssertionError(f"no cpu controller line for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def relative(group: Path) -> str:
    """A group's path as /proc/PID/cgroup names it: below the hierarchy's mount."""
    mount = next(p for p in group.parents if (p / "cgroup.procs").exists() and p.is_mount())
    return "/" + str(group.relative_to(mount))


@pytest.fixture
def burner(tmp_path: Path) -> Iterator[tuple[CgroupDriver, processes.Running]]:
    driver = kernel_driver(f"test-{os.getpid()}-burner")
    spec = ProcessSpec("token-1", "token", [sys.executable, "-c", BURNER], tmp_path / "burn.log")
    placement = driver.place(spec.name, 0.1, CpuBudgets())
    running = processes.start(spec, die_with_parent=True, enter=placement.enter)
    try:
        yield driver, running
    finally:
        processes.stop_pid(running.pid, running.started_ticks, signal.SIGKILL)
        running.process.wait()
        driver.release()


def test_the_kernel_holds_a_burning_process_and_its_child_to_the_budget(
    burner: tuple[CgroupDriver, processes.Running], tmp_path: Path
) -> None:
    driver, running = burner
    group = driver.parent / "token-1"
    log = tmp_path / "burn.log"
    deadline = time.monotonic() + 30  # does not hang; starting python at 0.1 core is slow
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(log.read_text().split()[0])
    assert cgroup_of(running.pid) == cgroup_of(child) == relative(group)

    before, started = cpu_seconds(running.pid), time.monotonic()
    time.sleep(2)
    used = (cpu_seconds(running.pid) - before) / (time.monotonic() - started)
    # Unbounded, a busy loop takes a whole core; the budget is 0.1.
    assert used <= 0.2, f"{used:.2f} core/s"
    throttling = driver.throttling("token-1")
    assert throttling.throttled > 0 and throttling.periods >= throttling.throttled
    assert throttling.throttled_seconds > 0


def test_release_removes_the_groups_once_their_processes_have_exited(tmp_path: Path) -> None:
    driver = kernel_driver(f"test-{os.getpid()}-release")
    spec = ProcessSpec("redis", "redis", [sys.executable, "-c", "pass"], tmp_path / "r.log")
    placement = driver.place(spec.name, 0.01, CpuBudgets())
    running = processes.start(spec, die_with_parent=True, enter=placement.enter)
    running.process.wait(timeout=60)
    driver.release()
    assert not (driver.parent / "redis").exists() and not driver.parent.exists()


def test_a_quota_the_kernel_refuses_is_an_error_and_leaves_no_group() -> None:
    driver = kernel_driver(f"test-{os.getpid()}-refused")
    try:
        # v1 refuses a group more than its parent: here the parent gets a hundredth of a core.
        (driver.parent / "cpu.cfs_period_us").write_text("100000")
        (driver.parent / "cpu.cfs_quota_us").write_text("1000")
        with pytest.raises(BudgetError, match="cannot give gateway its CPU budget") as refused:
            driver.place("gateway", 0.3, CpuBudgets())
        assert "(cgroup v1)" in str(refused.value)
        assert not (driver.parent / "gateway").exists()
        assert driver.groups() == [driver.parent]
    finally:
        driver.release()
    assert not driver.parent.exists()


@pytest.fixture
def budgeted_stack(tmp_path: Path) -> Iterator[LocalStack]:
    kernel_driver(f"test-{os.getpid()}-probe").release()
    config = stack_config(
        tmp_path,
        cpu_budgets=CpuBudgets(),
        ready_timeout=120,  # a replica imports its program at a tenth of a core
    )
    local = LocalStack(dataclasses.replace(config, replicas={"token": 1, "issuer": 1}))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.mark.lab
def test_a_budgeted_stack_runs_every_process_in_its_group(budgeted_stack: LocalStack) -> None:
    driver = budgeted_stack.budget_driver
    assert isinstance(driver, CgroupDriver)
    with httpx.Client(base_url=budgeted_stack.gateway_url, timeout=30) as client:
        assert client.get("/token/ping").status_code == 200
    assert set(budgeted_stack.running) == {"redis", "issuer-1", "token-1", "gateway"}
    for name, running in budgeted_stack.running.items():
        group = driver.parent / name
        assert cgroup_of(running.pid) == relative(group), name
        period = int((group / "cpu.cfs_period_us").read_text())
        quota = int((group / "cpu.cfs_quota_us").read_text())
        cores = CpuBudgets().cores(running.spec.role)
        assert (quota, period) == (CpuBudgets().quota_us(cores), CpuBudgets().period_us(cores))
    assert set(budgeted_stack.throttling()) == set(budgeted_stack.running)
    # Redis's housekeeping is scaled down with its budget (budgets.REDIS_LINES).
    config = budgeted_stack.config
    with redis_node.client(config.host, config.redis_port, budgeted_stack.redis_password) as r:
        assert r.config_get("hz") == {"hz": "1"}
    parent = driver.parent
    budgeted_stack.stop()
    assert not parent.exists()


@pytest.mark.lab
def test_a_restarted_process_enters_its_group_again(budgeted_stack: LocalStack) -> None:
    driver = budgeted_stack.budget_driver
    assert isinstance(driver, CgroupDriver)
    budgeted_stack.stop_process("issuer-1")
    budgeted_stack.start_process("issuer-1")
    restarted = budgeted_stack.running["issuer-1"]
    assert cgroup_of(restarted.pid) == relative(driver.parent / "issuer-1")


# -- the command line ------------------------------------------------------------------------


def test_up_refuses_a_bad_budget_before_starting_anything(tmp_path: Path) -> None:
    result = authscale("up", "--run-dir", str(tmp_path), "--cpu-budgets", "replica=lots")
    assert result.returncode == 2
    assert "--cpu-budgets: budget replica must be a number, got 'lots'" in result.stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([], None),
        (["--cpu-budgets", "none"], None),
        (["--cpu-budgets", "default"], CpuBudgets()),
        (["--cpu-budgets", "replica=0.2,period=30"], CpuBudgets(replica=0.2, period_ms=30)),
    ],
)
def test_up_passes_the_budgets_to_the_stack(given: list[str], expected: CpuBudgets | None) -> None:
    parser = argparse.ArgumentParser()
    supervisor.register_commands(parser.add_subparsers())
    args = parser.parse_args(["up", *given])
    assert supervisor.config_from_args(args).cpu_budgets == expected


@pytest.mark.lab
def test_up_detached_with_budgets_then_down_removes_the_groups(tmp_path: Path) -> None:
    kernel_driver(f"test-{os.getpid()}-probe").release()
    run_dir = tmp_path / "run"
    up = authscale(
        "up",
        "--detach",
        "--replicas",
        "1",
        "--no-demo-user",
        "--cpu-budgets",
        "default",
        "--run-dir",
        str(run_dir),
        *cli_ports(),
        env={"AUTHSCALE_ARGON2_MEMORY_KIB": "1024"},
        timeout=240,
    )
    assert up.returncode == 0, up.stderr
    assert "  cpu       a budget per process (cgroup v1):" in up.stdout
    for line in (
        "replica   0.1 core (2 ms per 20 ms)",
        "issuer    0.2 core (4 ms per 20 ms)",
        "redis     0.005 core (1 ms per 200 ms)",
        "gateway   0.3 core (6 ms per 20 ms)",
    ):
        assert line in up.stdout
    pids = recorded_pids(run_dir)
    groups = [
        Path(group) for group in json.loads((run_dir / "stack.json").read_text())["cpu_groups"]
    ]
    assert groups and all(group.is_dir() for group in groups)
    down = authscale("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stderr
    assert not any(alive(*pid) for pid in pids)
    assert not any(group.exists() for group in groups)
