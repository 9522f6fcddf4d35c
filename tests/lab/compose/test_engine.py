"""The Docker engine's helpers that need no engine: recognising docker-proxy, bounded commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from authscale.lab.compose import engine as docker_engine
from authscale.lab.stack.processes import StackError


def test_docker_proxy_is_recognised_by_its_published_port() -> None:
    proxy = [
        "/usr/sbin/docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port",
        "18080", "-container-ip", "172.18.0.5", "-container-port", "8080",
    ]  # fmt: skip
    assert docker_engine.is_proxy_for(proxy, 18080)
    assert not docker_engine.is_proxy_for(proxy, 8080)
    assert not docker_engine.is_proxy_for(["nginx", "-host-port", "18080"], 18080)
    assert not docker_engine.is_proxy_for([], 18080)


def test_a_failing_command_is_an_error_naming_it_and_its_output() -> None:
    with pytest.raises(StackError, match=r"(?s)building the image failed \(exit 3\).*no wheels"):
        docker_engine.run(["sh", "-c", "echo no wheels >&2; exit 3"], what="building the image")
    quiet = docker_engine.run(["sh", "-c", "exit 3"], what="x", check=False)
    assert quiet.returncode == 3


def test_without_a_docker_command_the_engine_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert docker_engine.compose_program() is None
    assert (docker_engine.missing_engine() or "").startswith("no docker command")
