"""``authscale serve``: each server's command line keeps the same promises; errors say what to do.

The behaviour behind these flags (draining on SIGTERM, JSON logs, the contract) is checked on
real stacks in tests/lab/stack/test_servers.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from authscale.core import servers
from authscale.core.errors import ConfigError
from authscale.core.logs import JsonFormatter, logging_config

LOG_CONFIG = Path("/nonexistent/logging.json")


@pytest.mark.parametrize("server", sorted(servers.SERVERS))
@pytest.mark.parametrize("role", sorted(servers.ROLE_APPS))
def test_every_server_serves_every_role_in_one_process_without_proxy_flags(
    server: str, role: str
) -> None:
    argv = servers.server_argv(server, role, "127.0.0.1", 8123, LOG_CONFIG)
    # hypercorn-uvloop is Hypercorn with another worker class: the module is the server's.
    assert argv[:3] == [sys.executable, "-m", server.removesuffix("-uvloop")]
    assert any(servers.ROLE_APPS[role] in part for part in argv)
    assert str(servers.GRACEFUL_SECONDS) in argv
    # No server flag may take the client's address or scheme from headers: the app does.
    assert not any("proxy" in part and "no-proxy" not in part for part in argv)
    assert not any("access-log" in part and "no-access-log" not in part for part in argv)


def test_uvicorn_trusts_no_forwarded_headers_and_keeps_connections_past_nginx() -> None:
    argv = servers.server_argv("uvicorn", "session", "127.0.0.1", 8123, LOG_CONFIG)
    assert "--no-proxy-headers" in argv
    assert argv[argv.index("--forwarded-allow-ips") + 1] == ""
    assert argv[argv.index("--timeout-keep-alive") + 1] == str(servers.KEEP_ALIVE_SECONDS)
    assert argv[argv.index("--loop") + 1] == "uvloop"
    assert argv[argv.index("--http") + 1] == "httptools"


def test_hypercorn_serves_in_its_own_process() -> None:
    argv = servers.server_argv("hypercorn", "token", "127.0.0.1", 8000, LOG_CONFIG)
    assert argv[argv.index("--workers") + 1] == "0"
    assert argv[-1] == "authscale.tokens.app:create_app()"


@pytest.mark.parametrize(
    ("server", "worker_class"), [("hypercorn", "asyncio"), ("hypercorn-uvloop", "uvloop")]
)
def test_each_hypercorn_entry_names_its_worker_class(server: str, worker_class: str) -> None:
    """Said explicitly, so a change of Hypercorn's own default cannot change what was measured."""
    argv = servers.server_argv(server, "token", "127.0.0.1", 8000, LOG_CONFIG)
    assert argv[argv.index("--worker-class") + 1] == worker_class
    assert argv[argv.index("--workers") + 1] == "0"


def test_granian_runs_one_worker_and_kills_it_only_after_the_grace_period() -> None:
    argv = servers.server_argv("granian", "issuer", "127.0.0.1", 8000, LOG_CONFIG)
    assert argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--workers-kill-timeout") + 1] == str(servers.GRACEFUL_SECONDS)
    assert argv[argv.index("--interface") + 1] == "asgi"


def test_the_server_comes_from_the_environment_and_defaults_to_hypercorn() -> None:
    assert servers.server_from_environ({}) == "hypercorn"
    assert servers.server_from_environ({"AUTHSCALE_SERVER": " Uvicorn "}) == "uvicorn"
    with pytest.raises(ConfigError, match=f"choose one of {', '.join(servers.SERVERS)}"):
        servers.server_from_environ({"AUTHSCALE_SERVER": "gunicorn"})


def test_a_missing_server_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    modules, _ = servers.SERVERS["granian"]
    monkeypatch.setitem(servers.SERVERS, "granian", (("no_such_module_4f2a", *modules), "granian"))
    with pytest.raises(ConfigError, match=r"pip install 'authscale\[granian\]'"):
        servers.check_installed("granian")


def test_the_servers_log_config_formats_their_lines_as_the_apps_json() -> None:
    config = logging_config("token", "token-7", "INFO")
    formatter = config["formatters"]["json"]
    assert formatter["()"] == f"{JsonFormatter.__module__}.JsonFormatter"
    record = logging.LogRecord("_granian", logging.INFO, __file__, 1, "Listening", None, None)
    line = json.loads(JsonFormatter("token", "token-7").format(record))
    assert (line["role"], line["replica"], line["logger"]) == ("token", "token-7", "_granian")
    for access in ("hypercorn.access", "uvicorn.access", "granian.access"):
        assert config["loggers"][access]["level"] == "CRITICAL"


def test_serve_refuses_an_unknown_server_from_the_environment(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "authscale", "serve", "session"],
        env={"AUTHSCALE_SERVER": "gunicorn", "PATH": "/usr/bin:/bin", **_pythonpath()},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "AUTHSCALE_SERVER='gunicorn' is not a server" in result.stderr


def _pythonpath() -> dict[str, str]:
    import authscale

    return {"PYTHONPATH": str(Path(authscale.__file__).parents[1])}


def test_a_restarted_replica_reuses_its_log_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    env = {"AUTHSCALE_REPLICA_ID": "session-1"}
    first = servers.write_log_config("session", env)
    assert servers.write_log_config("session", env) == first
    assert servers.write_log_config("session", {"AUTHSCALE_REPLICA_ID": "session-2"}) != first
    assert len(list(first.parent.iterdir())) == 2
    assert first.parent.stat().st_mode & 0o777 == 0o700
