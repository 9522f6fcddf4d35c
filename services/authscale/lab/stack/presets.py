"""``authscale gateway render``: the gateway's configuration for each way the stack runs.

The presets for compose and Kubernetes live beside the template (:mod:`.gateway`); the local
one comes from the local stack's defaults (:mod:`.local`), which render the gateway themselves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from authscale.lab.stack.config import ROLE_PORT_OFFSETS, StackConfig, gateway_config
from authscale.lab.stack.gateway import (
    POD_NAMESERVER,
    RENDERED_COPIES,
    GatewayConfig,
    compose_config,
    kubernetes_config,
    render,
)

TARGETS = ("local", *RENDERED_COPIES)


def local_config() -> GatewayConfig:
    """What ``authscale up`` renders with its default options (it renders its own at start)."""
    stack = StackConfig()
    base = stack.base_port or 8100
    upstreams = {
        role: [
            f"{stack.host}:{base + ROLE_PORT_OFFSETS[role] + index}"
            for index in range(1, stack.replicas.get(role, 0) + 1)
        ]
        for role in ROLE_PORT_OFFSETS
    }
    return gateway_config(stack, stack.run_dir.resolve(), upstreams)


def preset(target: str, args: argparse.Namespace) -> GatewayConfig:
    """The configuration ``authscale gateway render --target TARGET`` writes."""
    limits = {"login_rate": args.login_rate, "login_burst": args.login_burst}
    if target == "local":
        return local_config()
    if target == "compose":
        return compose_config(**limits)
    if target in {"kubernetes", "kubernetes-production"}:
        return kubernetes_config(
            namespace=args.namespace,
            cluster_domain=args.cluster_domain,
            production=target == "kubernetes-production",
            real_ip_from=tuple(args.real_ip_from or ("10.0.0.0/8",)),
            resolver=args.resolver,
            **limits,
        )
    raise ValueError(f"unknown gateway target {target!r}; targets: {', '.join(TARGETS)}")


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("gateway", help="the nginx gateway's configuration")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    render_cmd = actions.add_parser(
        "render",
        help="render gateway/nginx.conf.template for one way of running the stack",
        description="Committed copies: "
        + ", ".join(f"{target} -> {path}" for target, path in RENDERED_COPIES.items()),
    )
    render_cmd.add_argument("--target", choices=TARGETS, required=True)
    render_cmd.add_argument("--output", type=Path, help="write here instead of stdout")
    render_cmd.add_argument("--login-rate", default="10r/s", help="limit_req rate (10r/s)")
    render_cmd.add_argument("--login-burst", type=int, default=20, help="limit_req burst (20)")
    render_cmd.add_argument("--namespace", default="authscale", help="Kubernetes namespace")
    render_cmd.add_argument("--cluster-domain", default="cluster.local")
    render_cmd.add_argument(
        "--real-ip-from",
        action="append",
        metavar="CIDR",
        help="kubernetes-production: addresses of the TLS-terminating load balancer or ingress "
        "(repeatable; default 10.0.0.0/8)",
    )
    render_cmd.add_argument(
        "--resolver",
        default=POD_NAMESERVER,
        help="kubernetes: the DNS server nginx re-resolves the replicas with (default: the "
        "pod's own nameserver, filled in when the gateway starts)",
    )
    render_cmd.set_defaults(run=_render_command)


def _render_command(args: argparse.Namespace) -> int:
    text = render(preset(args.target, args))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output} ({args.target})", file=sys.stderr)
    return 0
