"""deploy/k8s: every overlay renders with `kubectl kustomize`, validates against the Kubernetes
schemas offline, and keeps the promises the manifests make (probes, limits, non-root, the
private key only in `issuer`, headless Services for the gateway's upstreams).

Without kubectl the module skips, except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from authscale.lab.stack.gateway import HSTS, RENDERED_COPIES

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "production")
#: The oldest Kubernetes the manifests promise to suit, and the newest schemas shipped.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
REPLICA_ROLES = ("issuer", "session", "token")
KEY_SECRET = "issuer-signing-keys"

Manifest = dict[str, Any]


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
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    return request.param, render(K8S / "overlays" / request.param)


def by_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def workloads(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        m["metadata"]["name"]: m for m in manifests if m["kind"] in {"Deployment", "StatefulSet"}
    }


def containers(workload: Manifest) -> Iterator[Manifest]:
    spec = workload["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def test_base_renders_too() -> None:
    assert {m["kind"] for m in render(K8S / "base")} >= {"Deployment", "StatefulSet", "Service"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_schemas(
    overlay: tuple[str, list[Manifest]], version: str
) -> None:
    _, manifests = overlay
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            pytest.fail(f"{name} is invalid for Kubernetes {version}: {error.message}")


def test_the_roles_and_redis_are_all_there(overlay: tuple[str, list[Manifest]]) -> None:
    _, manifests = overlay
    assert set(by_kind(manifests, "Deployment")) == {"gateway", *REPLICA_ROLES}
    assert set(by_kind(manifests, "StatefulSet")) == {"redis"}
    assert set(by_kind(manifests, "HorizontalPodAutoscaler")) == set(REPLICA_ROLES)
    assert set(by_kind(manifests, "PodDisruptionBudget")) == {"gateway", *REPLICA_ROLES}
    assert {m["metadata"]["namespace"] for m in manifests if m["kind"] != "Namespace"} == {
        "authscale"
    }


def test_the_private_key_is_mounted_only_into_the_issuer(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    holders = set()
    for name, workload in workloads(manifests).items():
        spec = workload["spec"]["template"]["spec"]
        volumes = {
            volume["name"]
            for volume in spec.get("volumes", [])
            if volume.get("secret", {}).get("secretName") == KEY_SECRET
        }
        for container in containers(workload):
            mounts = {mount["name"] for mount in container.get("volumeMounts", [])}
            if mounts & volumes:
                holders.add(f"{name}/{container['name']}")
            for source in container.get("envFrom", []):
                assert source.get("secretRef", {}).get("name") != KEY_SECRET
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef", {})
                assert reference.get("name") != KEY_SECRET, f"{name} reads the key from env"
    assert holders == {"issuer/issuer"}


def test_every_container_has_probes_limits_and_a_non_root_read_only_context(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    for name, workload in workloads(manifests).items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            assert "readinessProbe" in container, where
            assert "livenessProbe" in container, where
            resources = container["resources"]
            assert set(resources["limits"]) >= {"cpu", "memory"}, where
            assert set(resources["requests"]) >= {"cpu", "memory"}, where
            context = {**pod["securityContext"], **container["securityContext"]}
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] != 0, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where


def test_rollouts_keep_capacity_and_let_requests_finish(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    for name, deployment in by_kind(manifests, "Deployment").items():
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        pause = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pause[0] == "sleep", name
        # The pause, then the drain (authscale serve's 10 s on every server, nginx's graceful quit).
        assert pod["terminationGracePeriodSeconds"] >= int(pause[1]) + 10, name


def test_the_gateway_upstreams_are_headless_services(overlay: tuple[str, list[Manifest]]) -> None:
    _, manifests = overlay
    services = by_kind(manifests, "Service")
    for role in REPLICA_ROLES:
        assert services[role]["spec"]["clusterIP"] == "None", role
    config = by_kind(manifests, "ConfigMap")
    (nginx,) = (c for name, c in config.items() if name.startswith("gateway-nginx"))
    text = nginx["data"]["nginx.conf"]
    for role in REPLICA_ROLES:
        assert f"server {role}.authscale.svc.cluster.local:8000 resolve" in text
    assert "resolver kube-dns.kube-system.svc.cluster.local valid=5s" in text


def test_redis_is_persistent_password_protected_and_never_evicts(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    redis = by_kind(manifests, "StatefulSet")["redis"]
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    script = container["command"][-1]
    assert "--appendonly yes" in script
    assert "--maxmemory-policy noeviction" in script
    assert "requirepass" in script
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"


def test_network_policies_let_only_the_gateway_reach_replicas_and_only_roles_reach_redis(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    policies = by_kind(manifests, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    (replicas_from,) = policies["replicas"]["spec"]["ingress"]
    assert replicas_from["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}
    ]
    (redis_from,) = policies["redis"]["spec"]["ingress"]
    (selector,) = redis_from["from"]
    (expression,) = selector["podSelector"]["matchExpressions"]
    # Token replicas never reach Redis outside denylist mode (least privilege).
    assert sorted(expression["values"]) == ["issuer", "session"]


def test_production_terminates_tls_in_front_and_trusts_only_the_ingress() -> None:
    manifests = render(K8S / "overlays" / "production")
    (ingress,) = by_kind(manifests, "Ingress").values()
    assert ingress["spec"]["tls"][0]["secretName"] == "gateway-tls"
    (nginx,) = (c for n, c in by_kind(manifests, "ConfigMap").items() if "gateway-nginx" in n)
    text = nginx["data"]["nginx.conf"]
    assert HSTS in text
    assert "set_real_ip_from 10.0.0.0/8;" in text
    assert "proxy_set_header X-Forwarded-Proto https;" in text
    settings = next(c for n, c in by_kind(manifests, "ConfigMap").items() if "settings" in n)
    assert settings["data"]["AUTHSCALE_COOKIE_SECURE"] == "true"
    gateway_policy = by_kind(manifests, "NetworkPolicy")["gateway"]["spec"]["ingress"]
    assert all("namespaceSelector" in source for rule in gateway_policy for source in rule["from"])


def test_local_overlay_serves_plain_http_and_says_so() -> None:
    manifests = render(K8S / "overlays" / "local")
    settings = next(c for n, c in by_kind(manifests, "ConfigMap").items() if "settings" in n)
    assert settings["data"]["AUTHSCALE_COOKIE_SECURE"] == "false"
    assert RENDERED_COPIES["kubernetes"] == Path("deploy/k8s/base/gateway/nginx.conf")


def test_token_replicas_hold_no_redis_password() -> None:
    manifests = render(K8S / "overlays" / "local")
    (token,) = [
        m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "token"
    ]
    (container,) = token["spec"]["template"]["spec"]["containers"]
    names = {variable["name"] for variable in container.get("env", [])}
    assert not names & {"AUTHSCALE_REDIS_URL", "REDIS_PASSWORD"}


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_a_server_component_switches_every_role(server: str, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        # kustomize takes relative paths only.
        f"resources: [{os.path.relpath(K8S / 'overlays' / 'local', tmp_path)}]\n"
        f"components: [{os.path.relpath(K8S / 'components' / server, tmp_path)}]\n"
    )
    manifests = render(tmp_path)
    (settings,) = (
        c for name, c in by_kind(manifests, "ConfigMap").items() if name.startswith("authscale-")
    )
    assert settings["data"]["AUTHSCALE_SERVER"] == server
    deployments = by_kind(manifests, "Deployment")
    for role in REPLICA_ROLES:
        (container,) = deployments[role]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["authscale", "serve", role]
        assert {"configMapRef": {"name": settings["metadata"]["name"]}} in container["envFrom"]


def test_the_base_serves_every_role_on_hypercorn(overlay: tuple[str, list[Manifest]]) -> None:
    _, manifests = overlay
    (settings,) = (
        c for name, c in by_kind(manifests, "ConfigMap").items() if name.startswith("authscale-")
    )
    assert settings["data"]["AUTHSCALE_SERVER"] == "hypercorn"
