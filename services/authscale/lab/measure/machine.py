"""The machine and software a result was measured on, for the report's environment section."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from authscale.lab.measure import cpu

PACKAGES = (
    "quart",
    "hypercorn",
    "redis",
    "hiredis",
    "pyjwt",
    "cryptography",
    "argon2-cffi",
    "locust",
    "matplotlib",
)


def describe() -> dict[str, str]:
    facts = {
        "cpu": _cpu_model(),
        "cores usable": str(len(cpu.usable_cpus())),
        "memory": _memory(),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "nginx": _version(["nginx", "-v"], "/usr/sbin/nginx"),
        "redis-server": _version(["redis-server", "--version"]),
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    for package in PACKAGES:
        try:
            facts[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return platform.system()


def _version(argv: list[str], fallback: str | None = None) -> str:
    for binary in (argv[0], fallback):
        if binary is None:
            continue
        try:
            done = subprocess.run(
                [binary, *argv[1:]], capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        return (done.stdout + done.stderr).strip().splitlines()[0]
    return "not found"
