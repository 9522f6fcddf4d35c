"""The ``authscale`` command with and without the lab.

The container image installs the product alone (deploy/Dockerfile leaves services/authscale/lab
out); here a copy of the package without ``lab/`` stands in for it: every product module imports,
``users`` and ``keys`` are there, and a lab command says it is not installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import authscale
from authscale import cli


def test_lab_commands_names_every_command_the_lab_registers() -> None:
    lab = cli.load_lab()
    assert lab is not None
    commands = argparse.ArgumentParser().add_subparsers()
    for register in lab.command_groups:
        register(commands)
    assert set(commands.choices) == set(cli.LAB_COMMANDS)


@pytest.fixture(scope="module")
def product_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package without the lab, importable ahead of the checkout's."""
    root = tmp_path_factory.mktemp("product")
    shutil.copytree(
        Path(authscale.__file__).parent,
        root / "authscale",
        ignore=shutil.ignore_patterns("lab", "__pycache__"),
    )
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )


def test_every_product_module_imports_without_the_lab(product_only: Path) -> None:
    script = (
        "import importlib, pkgutil, authscale\n"
        "for module in pkgutil.walk_packages(authscale.__path__, 'authscale.'):\n"
        "    if not module.name.endswith('__main__'):\n"
        "        importlib.import_module(module.name)\n"
        "print(authscale.__file__)\n"
    )
    result = run(product_only, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(product_only / "authscale" / "__init__.py")


def test_without_the_lab_the_product_commands_remain(product_only: Path) -> None:
    result = run(product_only, "-m", "authscale", "--help")
    assert result.returncode == 0, result.stderr
    assert "users" in result.stdout and "keys" in result.stdout
    assert "not installed here" in " ".join(result.stdout.split())
    keys = run(product_only, "-m", "authscale", "keys", "--help")
    assert keys.returncode == 0, keys.stderr


def test_without_the_lab_a_lab_command_says_it_is_not_installed(product_only: Path) -> None:
    result = run(product_only, "-m", "authscale", "up", "--detach")
    assert result.returncode == 2
    assert result.stderr.startswith("authscale up: the lab's commands")
    assert "not installed here" in result.stderr
