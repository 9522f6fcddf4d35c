"""Rendering the one nginx template in gateway/ for each way the stack runs.

The template uses ``{{ name }}`` placeholders so that nginx's own ``$variables`` stay untouched;
rendering fails on a placeholder without a value, so a typo never reaches nginx.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The roles the gateway routes to, in the order their upstream blocks are written.
UPSTREAM_ROLES = ("session", "token", "issuer")

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def template_path() -> Path:
    """gateway/nginx.conf.template in the checkout this package runs from, unless overridden."""
    override = os.environ.get("AUTHSCALE_GATEWAY_TEMPLATE")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "gateway" / "nginx.conf.template"


@dataclass(frozen=True)
class GatewayConfig:
    listen: str
    #: Role -> replica addresses (``host:port``); a role with none answers 502 in JSON.
    upstreams: Mapping[str, Sequence[str]]
    pid_file: str
    error_log: str
    access_log: str
    temp_dir: str
    login_rate: str = "10r/s"
    login_burst: int = 20
    max_body: str = "16k"
    worker_processes: str = "auto"
    #: The worker user when nginx starts as root; ``None`` when it starts unprivileged.
    user: str | None = None
    #: What replicas are told the client used: ``$scheme`` where nginx terminates TLS itself,
    #: ``https`` behind a load balancer that does.
    forwarded_proto: str = "$scheme"
    #: Addresses of load balancers whose X-Forwarded-For names the real client.
    real_ip_from: Sequence[str] = ()
    keepalive: int = 32
    max_fails: int = 2
    fail_timeout: str = "5s"
    listen_options: str = ""
    server_extra: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d+r/[sm]", self.login_rate):
            raise ValueError(f"login rate must look like 10r/s or 300r/m, got {self.login_rate!r}")
        if self.login_burst < 0:
            raise ValueError(f"login burst must be 0 or more, got {self.login_burst}")
        unknown = set(self.upstreams) - set(UPSTREAM_ROLES)
        if unknown:
            raise ValueError(f"unknown gateway roles {sorted(unknown)}; known: {UPSTREAM_ROLES}")


def render(config: GatewayConfig, template: str | None = None) -> str:
    text = template if template is not None else template_path().read_text()
    values = _values(config)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"gateway template placeholder {{{{ {name} }}}} has no value")
        return values[name]

    return PLACEHOLDER.sub(substitute, text)


def _values(config: GatewayConfig) -> dict[str, str]:
    real_ip = "".join(f"    set_real_ip_from {address};\n" for address in config.real_ip_from)
    if real_ip:
        real_ip += "    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;\n"
    largest = max((len(servers) for servers in config.upstreams.values()), default=1)
    return {
        "user_directive": f"user {config.user};" if config.user else "",
        "worker_processes": config.worker_processes,
        "pid_file": config.pid_file,
        "error_log": config.error_log,
        "access_log": config.access_log,
        "temp_dir": config.temp_dir,
        "max_body": config.max_body,
        "real_ip": real_ip,
        "login_rate": config.login_rate,
        "login_burst": str(config.login_burst),
        "upstreams": "\n".join(_upstream(config, role) for role in UPSTREAM_ROLES),
        "listen": config.listen,
        "listen_options": config.listen_options,
        "server_extra": "".join(f"        {line}\n" for line in config.server_extra),
        "forwarded_proto": config.forwarded_proto,
        "next_upstream_tries": str(max(2, min(largest, 4))),
    }


def _upstream(config: GatewayConfig, role: str) -> str:
    servers = config.upstreams.get(role, ())
    lines = [f"    upstream {role} {{"]
    if servers:
        lines += [
            f"        server {address} max_fails={config.max_fails} "
            f"fail_timeout={config.fail_timeout};"
            for address in servers
        ]
    else:
        # nginx refuses an empty upstream; a server marked down makes the role answer 502.
        lines.append("        server 127.0.0.1:9 down;")
    lines += [f"        keepalive {config.keepalive};", "    }", ""]
    return "\n".join(lines)
