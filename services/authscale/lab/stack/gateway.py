"""Rendering the one nginx template in gateway/ for each way the stack runs.

The template uses ``{{ name }}`` placeholders so that nginx's own ``$variables`` stay untouched;
rendering fails on a placeholder without a value, so a typo never reaches nginx.
The compose and Kubernetes presets are here; ``authscale gateway render`` and the local preset
are in :mod:`authscale.lab.stack.presets`, beside the local stack they read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

from authscale.lab import assets

#: The roles the gateway routes to, in the order their upstream blocks are written.
UPSTREAM_ROLES = ("session", "token", "issuer")
#: Roles that serve logins, which get a second upstream of the same replicas (``<role>_login``).
LOGIN_ROLES = ("session", "issuer")

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def template_path() -> Path:
    """The gateway template shipped with the package (gateway/ in a checkout), unless overridden."""
    override = os.environ.get("AUTHSCALE_GATEWAY_TEMPLATE")
    if override:
        return Path(override)
    return assets.path("gateway", "nginx.conf.template")


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
    #: A DNS server nginx asks again and again (every ``resolver_valid``) for each upstream
    #: name, so replicas that come and go are followed without a reload. ``resolve`` on upstream
    #: servers needs nginx 1.27.3 or later; ``None`` resolves names once, at start or reload.
    resolver: str | None = None
    resolver_valid: str = "5s"
    #: An internal-only listener (``8081``, ``127.0.0.1:9113``) serving ``/stub_status`` for the
    #: nginx exporter; ``None`` serves none.
    status_listen: str | None = None

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
        "resolver": (
            f"    resolver {config.resolver} valid={config.resolver_valid} ipv6=off;\n"
            f"    resolver_timeout 2s;\n"
            if config.resolver
            else ""
        ),
        "upstreams": "\n".join(
            [
                *(_upstream(config, role) for role in UPSTREAM_ROLES),
                *(_upstream(config, role, login=True) for role in LOGIN_ROLES),
            ]
        ),
        "listen": config.listen,
        "listen_options": config.listen_options,
        "server_extra": "".join(f"        {line}\n" for line in config.server_extra),
        "forwarded_proto": config.forwarded_proto,
        "next_upstream_tries": str(max(2, min(largest, 4))),
        "status_server": _status_server(config.status_listen),
    }


def _status_server(listen: str | None) -> str:
    if listen is None:
        return ""
    return (
        "    # nginx's connection counters for the Prometheus exporter, on a listener of its\n"
        "    # own that is never published: the server above answers /stub_status with a 404.\n"
        "    server {\n"
        f"        listen {listen};\n"
        "        access_log off;\n"
        "        location = /stub_status {\n"
        "            stub_status;\n"
        "        }\n"
        "        location / {\n"
        '            return 404 \'{"message":"Not found"}\';\n'
        "        }\n"
        "    }\n"
    )


def _upstream(config: GatewayConfig, role: str, *, login: bool = False) -> str:
    servers = config.upstreams.get(role, ())
    name = f"{role}_login" if login else role
    # A zone keeps the group's state in memory shared by nginx's workers: a replica one worker
    # marked failed is out for all of them, and back for all once one reaches it again. Without
    # it each worker counted on its own, and a rolling restart that went on as soon as one
    # worker had taken a replica back met 502s from a worker that still held the others out.
    # Re-resolved servers (``resolve``) need it too.
    lines = [f"    upstream {name} {{", f"        zone {name} 256k;"]
    resolve = " resolve" if config.resolver else ""
    # A login waits its turn for a password hash, and a flood of logins makes that wait long: a
    # slow login is not a failed replica. Logins go through an upstream of their own (the same
    # replicas, state of its own) that never marks a replica failed; one that refuses the
    # connection is still skipped for that request. Sharing the readers' upstream, a flood's
    # timed-out logins took both session replicas out of rotation (5,863 readers got 502).
    health = (
        "max_fails=0"
        if login
        else f"max_fails={config.max_fails} fail_timeout={config.fail_timeout}"
    )
    if servers:
        lines += [f"        server {address}{resolve} {health};" for address in servers]
    else:
        # nginx refuses an empty upstream; a server marked down makes the role answer 502.
        lines.append("        server 127.0.0.1:9 down;")
    lines += [f"        keepalive {config.keepalive};", "    }", ""]
    return "\n".join(lines)


# -- presets: the same template for each way the stack runs ------------------------------------

#: Where each preset's rendered copy is committed; tests fail when a copy drifts from the
#: template (compose mounts its copy, and kustomize reads nothing outside deploy/k8s).
RENDERED_COPIES = {
    "compose": Path("gateway/compose.conf"),
    "kubernetes": Path("deploy/k8s/base/gateway/nginx.conf"),
    "kubernetes-production": Path("deploy/k8s/overlays/production/gateway/nginx.conf"),
}
#: The replicas' port inside containers and pods.
REPLICA_PORT = 8000
#: Stands for the pod's own nameserver in the Kubernetes configs. The gateway's start command
#: (deploy/k8s/base/gateway.yaml) writes the first ``nameserver`` of the pod's /etc/resolv.conf in
#: its place: the cluster's DNS Service or a node-local cache, whatever the kubelet gives pods,
#: so no cluster's DNS name or address is baked into the config. Left unreplaced, nginx refuses
#: to start (it cannot resolve the name), so it never runs without a resolver.
POD_NAMESERVER = "pod-nameserver.invalid"

#: The gateway's stub_status listener inside compose's networks; compose publishes only 8080.
STATUS_PORT = 8081
#: HSTS for two years with subdomains: the production overlay serves nothing but HTTPS.
HSTS = 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;'


#: Unprivileged nginx under a read-only root filesystem can write only here (a tmpfs in compose,
#: an emptyDir in Kubernetes); its logs go to the container's stderr and stdout.
CONTAINER_TMP = "/tmp"  # noqa: S108 - the container's own tmpfs or emptyDir, shared with no one


class _Files(TypedDict):
    pid_file: str
    error_log: str
    access_log: str
    temp_dir: str


#: Where nginx writes in a container: logs to the container's streams, the rest to its tmpfs.
CONTAINER_FILES = _Files(
    pid_file=f"{CONTAINER_TMP}/nginx.pid",
    error_log="stderr",
    access_log="/dev/stdout",
    temp_dir=CONTAINER_TMP,
)


def compose_config(login_rate: str = "10r/s", login_burst: int = 20) -> GatewayConfig:
    """Upstreams by compose service name: Docker's DNS answers with every replica.

    nginx 1.22 (the image tested here) resolves them at start and on reload only, so
    deploy/compose-scale.sh reloads the gateway after every change of replicas.
    """
    return GatewayConfig(
        listen="8080",
        upstreams={role: [f"{role}:{REPLICA_PORT}"] for role in UPSTREAM_ROLES},
        login_rate=login_rate,
        login_burst=login_burst,
        status_listen=str(STATUS_PORT),
        **CONTAINER_FILES,
    )


def kubernetes_config(
    *,
    namespace: str = "authscale",
    cluster_domain: str = "cluster.local",
    production: bool = False,
    real_ip_from: Sequence[str] = ("10.0.0.0/8",),
    login_rate: str = "10r/s",
    login_burst: int = 20,
    resolver: str = POD_NAMESERVER,
) -> GatewayConfig:
    """Headless Services re-resolved every few seconds, one upstream server per pod.

    Through a ClusterIP Service, kept-alive connections would stick to whichever pods they first
    reached; with a headless Service nginx sees every pod's address, balances and keeps
    connections alive per pod, and re-resolution follows scaling and rolling updates. nginx's
    own resolver ignores resolv.conf search domains: names are fully qualified.
    """
    suffix = f"{namespace}.svc.{cluster_domain}"
    config = GatewayConfig(
        listen="8080",
        upstreams={role: [f"{role}.{suffix}:{REPLICA_PORT}"] for role in UPSTREAM_ROLES},
        # Pods see the node's cores, not their CPU limit: match the limit in the manifests.
        worker_processes="2",
        resolver=resolver,
        login_rate=login_rate,
        login_burst=login_burst,
        **CONTAINER_FILES,
    )
    if not production:
        return config
    # TLS ends at the ingress in front of the gateway: only it may say who the client is.
    return replace(
        config, forwarded_proto="https", real_ip_from=tuple(real_ip_from), server_extra=(HSTS,)
    )
