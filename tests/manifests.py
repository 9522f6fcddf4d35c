"""Rendering deploy/k8s with `kubectl kustomize`: each overlay with every combination of the
components a user chooses between, and the accessors the Kubernetes tests read objects with.

Without kubectl the tests that render skip, except under CI, where they fail.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "production")
REPLICA_ROLES = ("issuer", "session", "token")

#: The choices a user makes, each one of its options (``None``: the overlay as it is). These
#: patch the same objects (Redis, its policies, the edge), so every combination is rendered.
INTERACTING: dict[str, tuple[str | None, ...]] = {
    "redis": (None, "redis-external"),
    "denylist": (None, "token-denylist"),
    "edge": (None, "edge-gateway-api"),
}
#: These touch objects of their own only (test_kubernetes_components.py checks that each
#: changes nothing else), so their options ride along with the combinations above instead of
#: multiplying them: every render is a kubectl process of about a second.
#: The server components (uvicorn, granian) change one setting; their own test covers them.
INDEPENDENT: dict[str, tuple[str | None, ...]] = {
    "monitoring": (None, "monitoring", "monitoring-podmonitor"),
    "pause": (None, "native-sleep"),
}

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Deployment:
    """One overlay with some components: what a user's own kustomization would list."""

    overlay: str
    components: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return "+".join((self.overlay, *self.components))


def in_cluster_redis(deployment: Deployment) -> bool:
    """Whether the deployment runs its own Redis (every one but those with ``redis-external``)."""
    return "redis-external" not in deployment.components


#: Components that suit one overlay only, and why.
ONLY_ON = {
    # The local overlay has no edge (port-forward), and its issuer address carries a port,
    # which no HTTPRoute hostname may.
    "edge-gateway-api": "production",
}


def every_deployment() -> list[Deployment]:
    """Each overlay with each combination of the interacting choices that suits it, and the
    independent ones interleaved over those rows (every pair of them within 6 rows)."""
    deployments = []
    for overlay in OVERLAYS:
        rows = [
            interacting
            for interacting in itertools.product(*INTERACTING.values())
            if all(ONLY_ON.get(name or "", overlay) == overlay for name in interacting)
        ]
        for index, interacting in enumerate(rows):
            independent = [options[index % len(options)] for options in INDEPENDENT.values()]
            chosen = (*interacting, *independent)
            deployments.append(Deployment(overlay, tuple(name for name in chosen if name)))
    return deployments


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        reason = "kubectl is not installed (it renders the kustomizations)"
        if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
            pytest.fail(f"CI must check the Kubernetes manifests, but {reason}")
        pytest.skip(reason)
    return path


def render(directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{directory}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def rendered(deployment: Deployment) -> tuple[Manifest, ...]:
    """The objects `kubectl apply -k` would send for ``deployment`` (rendered once per run)."""
    if not deployment.components:
        return tuple(render(K8S / "overlays" / deployment.overlay))
    with tempfile.TemporaryDirectory() as directory:
        here = Path(directory)
        # kustomize takes relative paths only.
        components = [
            os.path.relpath(K8S / "components" / name, here) for name in deployment.components
        ]
        (here / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [os.path.relpath(K8S / "overlays" / deployment.overlay, here)],
                    "components": components,
                }
            )
        )
        return tuple(render(here))


@functools.cache
def render_every_deployment() -> dict[Deployment, tuple[Manifest, ...]]:
    """Every combination, rendered a few at a time (each render is a kubectl process)."""
    deployments = every_deployment()
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(deployments, pool.map(rendered, deployments), strict=True))


def by_kind(manifests: tuple[Manifest, ...] | list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def workloads(manifests: tuple[Manifest, ...] | list[Manifest]) -> dict[str, Manifest]:
    """Everything that runs pods: Deployments, the StatefulSet, the backup CronJob."""
    return {
        m["metadata"]["name"]: m
        for m in manifests
        if m["kind"] in {"Deployment", "StatefulSet", "CronJob"}
    }


def pod_spec(workload: Manifest) -> Manifest:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: Manifest = spec["template"]["spec"]
    return pod


def containers(workload: Manifest) -> Iterator[Manifest]:
    pod = pod_spec(workload)
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def settings(manifests: tuple[Manifest, ...] | list[Manifest]) -> dict[str, str]:
    (config,) = (
        c for name, c in by_kind(manifests, "ConfigMap").items() if name.startswith("authscale-")
    )
    data: dict[str, str] = config["data"]
    return data


def gateway_config(manifests: tuple[Manifest, ...] | list[Manifest]) -> str:
    (config,) = (
        c for name, c in by_kind(manifests, "ConfigMap").items() if name.startswith("gateway-nginx")
    )
    text: str = config["data"]["nginx.conf"]
    return text
