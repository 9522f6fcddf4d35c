"""The wheel works outside the checkout.

A wheel is built from a copy of what the build reads (pyproject.toml, README.md, services/, and
the gateway/ and loadtests/ folders the lab's asset links point to) and installed into a fresh
venv in a temporary folder. The dependencies come from the venv running the tests, through a
``.pth`` line (no download), while authscale itself comes from the wheel alone: the test checks
that no other ``authscale`` is importable there. From a working directory outside the checkout,
``authscale up --detach`` starts a stack on free ports (the gateway template from the wheel), the
demo user logs in through the gateway, ``authscale down`` stops it, and nothing it started is left
running. The compose backend, which needs a checkout, says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from authscale.lab.stack import processes, rundir
from authscale.lab.stack.config import DEMO_USER
from authscale.lab.stack.processes import free_port

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[1]
#: A bound that proves "does not hang": building, installing, a stack starting on a busy machine.
TIMEOUT = 300


@dataclass(frozen=True)
class Venv:
    root: Path
    work: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        # Nothing of the checkout on the path: no PYTHONPATH, and a working directory outside it.
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"PYTHONPATH", "AUTHSCALE_RUN_DIR", "AUTHSCALE_REDIS_URL"}
        }
        return subprocess.run(
            [str(part) for part in argv],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=self.work,
            env=env,
            check=False,
        )

    def authscale(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.root / "bin" / "authscale", *args)


def build_wheel(directory: Path) -> Path:
    source = directory / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("services", "gateway", "loadtests"):
        shutil.copytree(
            ROOT / name,
            source / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
    dist = directory / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, source],
        check=True,
        timeout=TIMEOUT,
    )
    (wheel,) = dist.glob("authscale-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    directory = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(directory)
    root = directory / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    installed = Venv(root, directory / "work")
    installed.work.mkdir()
    site = Path(installed.run(root / "bin" / "python", "-c", PURELIB).stdout.strip())
    # The tests' own dependencies, after the venv's site-packages: a path line, so the .pth
    # files there (the editable install of the checkout) are not run.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(installed.python)]
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=TIMEOUT,
    )
    return installed


PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
WHERE = """
import json, os, sys
import authscale
from authscale.lab import assets
print(json.dumps({
    "authscale": authscale.__file__,
    "template": str(assets.path("gateway", "nginx.conf.template")),
    "locustfile": str(assets.path("loadtests", "locustfile.py")),
    "packages": [p for p in sys.path if os.path.isdir(os.path.join(p, "authscale"))],
}))
"""


def test_authscale_comes_from_the_wheel_alone(venv: Venv) -> None:
    result = venv.run(venv.python, "-c", WHERE)
    assert result.returncode == 0, result.stderr
    where = json.loads(result.stdout)
    assert Path(where["authscale"]).is_relative_to(venv.root)
    # No other folder on the path offers an authscale package (the checkout's services/).
    assert [Path(path).resolve() for path in where["packages"]] == [
        Path(where["authscale"]).parent.parent.resolve()
    ]
    for asset in ("template", "locustfile"):
        path = Path(where[asset])
        assert path.is_relative_to(venv.root) and path.is_file() and not path.is_symlink()


def test_up_log_in_down_from_outside_the_checkout(venv: Venv) -> None:
    run_dir = venv.work / ".authscale"
    gateway_port, web_port = free_port(), free_port()
    started: list[tuple[int, int]] = []
    up = venv.authscale(
        "up",
        "--detach",
        "--replicas",
        "1",
        "--gateway-port",
        str(gateway_port),
        "--redis-port",
        str(free_port()),
        "--web-port",
        str(web_port),
        "--base-port",
        "0",
    )
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((run_dir / "stack.json").read_text())
        started += [(entry["pid"], entry["ticks"]) for entry in state["processes"]]
        assert started and all(processes.is_same_process(*pid) for pid in started)
        username, password = DEMO_USER
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway_port}", timeout=30) as client:
            login = client.post("/session/login", json={"username": username, "password": password})
            assert login.status_code == 200, login.text
            dashboard = client.get("/session/dashboard")
            assert dashboard.status_code == 200, dashboard.text
        # The browser page ships in the wheel too.
        page = httpx.get(f"http://127.0.0.1:{web_port}/page.js", timeout=30)
        assert page.status_code == 200 and "SessionFlow" in page.text
        down = venv.authscale("down")
        assert down.returncode == 0, down.stderr
    finally:
        rundir.stop_recorded(run_dir)
    # Whole process groups: an nginx worker outliving its master would count as left running.
    assert not any(processes.group_members(pid) for pid, _ in started)
    assert not (run_dir / "stack.json").exists()


def test_the_compose_backend_says_it_needs_a_checkout(venv: Venv) -> None:
    script = (
        "from types import SimpleNamespace\n"
        "from authscale.lab.compose.backend import ComposeBackend\n"
        "ComposeBackend().prepare(SimpleNamespace(env={}))\n"
    )
    result = venv.run(venv.python, "-c", script)
    assert result.returncode != 0
    assert "StackError: the compose backend needs a checkout of the repository" in result.stderr
