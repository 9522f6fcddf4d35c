"""deploy/k8s: every overlay, with every combination of the components (tests/manifests.py),
renders with `kubectl kustomize`, validates against the Kubernetes schemas offline, and keeps
the promises the manifests make (restricted Pod Security, probes and limits, the private key only
in `issuer`, headless Services for the gateway's upstreams, Redis only where it is needed).

Without kubectl the module skips, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from authscale.lab.stack.gateway import HSTS, POD_NAMESERVER, RENDERED_COPIES
from tests.manifests import (
    K8S,
    ONLY_ON,
    REPLICA_ROLES,
    Deployment,
    Manifest,
    by_kind,
    containers,
    every_deployment,
    gateway_config,
    in_cluster_redis,
    pod_spec,
    render,
    render_every_deployment,
    rendered,
    settings,
    workloads,
)

#: The oldest Kubernetes the manifests promise to suit, and the newest schemas shipped.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
KEY_SECRET = "issuer-signing-keys"
#: Custom resources: kubernetes-validate ships no schema for them (checked by the component
#: tests instead).
CUSTOM_KINDS = {"HTTPRoute", "PodMonitor"}
#: Volume types the "restricted" Pod Security Standard admits.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}

DEPLOYMENTS = every_deployment()


@pytest.fixture(scope="module", params=DEPLOYMENTS, ids=lambda deployment: deployment.name)
def manifests(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    return render_every_deployment()[request.param]


@pytest.fixture(
    scope="module",
    params=[d for d in DEPLOYMENTS if in_cluster_redis(d)],
    ids=lambda deployment: deployment.name,
)
def with_redis(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    """The deployments that run their own Redis."""
    return render_every_deployment()[request.param]


@pytest.mark.parametrize(
    "deployment",
    [d for d in DEPLOYMENTS if not in_cluster_redis(d)],
    ids=lambda deployment: deployment.name,
)
def test_an_external_redis_leaves_no_redis_behind(deployment: Deployment) -> None:
    manifests = render_every_deployment()[deployment]
    assert "redis" not in by_kind(manifests, "StatefulSet")
    assert "redis-backup" not in by_kind(manifests, "CronJob")


def test_base_and_cluster_render_too() -> None:
    assert {m["kind"] for m in render(K8S / "base")} >= {"Deployment", "StatefulSet", "Service"}
    cluster = render(K8S / "cluster")
    assert {m["kind"] for m in cluster} == {
        "Namespace",
        "PriorityClass",
        "PersistentVolumeClaim",
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_against_the_schemas(version: str) -> None:
    unique: dict[str, Manifest] = {}
    for manifests in [*render_every_deployment().values(), tuple(render(K8S / "cluster"))]:
        for manifest in manifests:
            if manifest["kind"] not in CUSTOM_KINDS:
                unique.setdefault(json.dumps(manifest, sort_keys=True), manifest)
    for manifest in unique.values():
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            pytest.fail(f"{name} is invalid for Kubernetes {version}: {error.message}")


def test_the_roles_are_all_there_and_the_namespace_is_not(
    manifests: tuple[Manifest, ...],
) -> None:
    assert set(by_kind(manifests, "Deployment")) == {"gateway", *REPLICA_ROLES}
    assert set(by_kind(manifests, "HorizontalPodAutoscaler")) == set(REPLICA_ROLES)
    assert set(by_kind(manifests, "PodDisruptionBudget")) == {"gateway", *REPLICA_ROLES}
    # `kubectl delete -k` of an overlay must never take the data's namespace with it.
    assert not by_kind(manifests, "Namespace")
    assert not by_kind(manifests, "PersistentVolumeClaim")
    assert {m["metadata"]["namespace"] for m in manifests} == {"authscale"}


def test_the_private_key_is_mounted_only_into_the_issuer(manifests: tuple[Manifest, ...]) -> None:
    holders = set()
    for name, workload in workloads(manifests).items():
        volumes = {
            volume["name"]
            for volume in pod_spec(workload).get("volumes", [])
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


def test_every_pod_meets_the_restricted_pod_security_standard(
    manifests: tuple[Manifest, ...],
) -> None:
    for name, workload in workloads(manifests).items():
        pod = pod_spec(workload)
        assert pod["automountServiceAccountToken"] is False, name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod), name
        for volume in pod.get("volumes", []):
            assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, f"{name}: {volume}"
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            context = {**pod["securityContext"], **container["securityContext"]}
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] != 0, where
            assert context.get("privileged", False) is False, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert set(context["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}, where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where
            assert all("hostPort" not in port for port in container.get("ports", [])), where
            resources = container["resources"]
            assert set(resources["limits"]) >= {"cpu", "memory"}, where
            assert set(resources["requests"]) >= {"cpu", "memory"}, where
            if workload["kind"] != "CronJob":
                assert "readinessProbe" in container, where
                assert "livenessProbe" in container, where


def test_the_gateway_upstreams_are_headless_and_resolved_with_the_pods_nameserver(
    manifests: tuple[Manifest, ...],
) -> None:
    services = by_kind(manifests, "Service")
    for role in REPLICA_ROLES:
        assert services[role]["spec"]["clusterIP"] == "None", role
    text = gateway_config(manifests)
    for role in REPLICA_ROLES:
        assert f"server {role}.authscale.svc.cluster.local:8000 resolve" in text
    # No cluster's DNS baked in: the start command writes resolv.conf's nameserver in its place.
    assert f"resolver {POD_NAMESERVER} valid=5s" in text
    (gateway,) = pod_spec(by_kind(manifests, "Deployment")["gateway"])["containers"]
    script = gateway["command"][-1]
    assert "/etc/resolv.conf" in script
    assert POD_NAMESERVER.replace(".", "\\.") in script
    assert "exec nginx -c /tmp/nginx.conf" in script


def test_an_in_cluster_redis_is_persistent_password_protected_and_never_evicts(
    with_redis: tuple[Manifest, ...],
) -> None:
    redis = by_kind(with_redis, "StatefulSet")["redis"]
    (container,) = pod_spec(redis)["containers"]
    script = container["command"][-1]
    assert "--appendonly yes" in script
    assert "--maxmemory-policy noeviction" in script
    assert "requirepass" in script
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert redis["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_session_and_issuer_read_the_whole_redis_url_from_the_secret(
    manifests: tuple[Manifest, ...],
) -> None:
    deployments = by_kind(manifests, "Deployment")
    for role in ("session", "issuer"):
        (container,) = pod_spec(deployments[role])["containers"]
        env = {variable["name"]: variable for variable in container["env"]}
        assert env["AUTHSCALE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "redis",
            "key": "url",
        }


def test_token_replicas_hold_redis_credentials_only_in_denylist_mode(
    manifests: tuple[Manifest, ...],
) -> None:
    (container,) = pod_spec(by_kind(manifests, "Deployment")["token"])["containers"]
    env = {variable["name"]: variable for variable in container.get("env", [])}
    denylist = settings(manifests)["AUTHSCALE_TOKEN_DENYLIST"] == "true"
    if not denylist:
        assert not set(env) & {"AUTHSCALE_REDIS_URL", "REDIS_PASSWORD"}
        return
    # A user of its own that may only check denylist markers, never the roles' password.
    assert env["AUTHSCALE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "redis-token"


def test_production_terminates_tls_in_front_and_trusts_only_the_edge() -> None:
    manifests = rendered(Deployment("production"))
    (ingress,) = by_kind(manifests, "Ingress").values()
    assert ingress["spec"]["tls"][0]["secretName"] == "gateway-tls"
    # No controller assumed: the cluster's default IngressClass, no controller's annotations.
    assert "ingressClassName" not in ingress["spec"]
    assert not any("ingress.kubernetes.io" in key for key in ingress["metadata"]["annotations"])
    text = gateway_config(manifests)
    assert HSTS in text
    assert "set_real_ip_from 10.0.0.0/8;" in text
    assert "proxy_set_header X-Forwarded-Proto https;" in text
    assert settings(manifests)["AUTHSCALE_COOKIE_SECURE"] == "true"
    gateway_policy = by_kind(manifests, "NetworkPolicy")["gateway"]["spec"]["ingress"]
    sources = [source for rule in gateway_policy for source in rule["from"]]
    assert sources == [{"namespaceSelector": {"matchLabels": {"authscale/edge": "true"}}}]


def test_the_issuer_host_is_written_once_and_copied_to_the_edge() -> None:
    manifests = rendered(Deployment("production"))
    issuer = settings(manifests)["AUTHSCALE_TOKEN_ISSUER"]
    host = issuer.removeprefix("https://")
    (ingress,) = by_kind(manifests, "Ingress").values()
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [host]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    written = [
        path
        for path in (K8S / "overlays" / "production").iterdir()
        if path.suffix == ".yaml" and host in path.read_text()
    ]
    assert [path.name for path in written] == ["kustomization.yaml"]


def test_local_overlay_serves_plain_http_and_says_so() -> None:
    manifests = rendered(Deployment("local"))
    assert settings(manifests)["AUTHSCALE_COOKIE_SECURE"] == "false"
    assert RENDERED_COPIES["kubernetes"] == Path("deploy/k8s/base/gateway/nginx.conf")


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
    assert settings(manifests)["AUTHSCALE_SERVER"] == server
    (config,) = (
        c for n, c in by_kind(manifests, "ConfigMap").items() if n.startswith("authscale-")
    )
    deployments = by_kind(manifests, "Deployment")
    for role in REPLICA_ROLES:
        (container,) = pod_spec(deployments[role])["containers"]
        assert container["command"] == ["authscale", "serve", role]
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]


def test_the_base_serves_every_role_on_hypercorn(manifests: tuple[Manifest, ...]) -> None:
    assert settings(manifests)["AUTHSCALE_SERVER"] == "hypercorn"


def test_every_overlay_and_combination_is_checked() -> None:
    names = {deployment.name for deployment in DEPLOYMENTS}
    components = {path.name for path in (K8S / "components").iterdir()} - {"uvicorn", "granian"}
    for overlay in ("local", "production"):
        assert overlay in names
        for component in components:
            rendered_with = any(
                name.startswith(overlay) and component in name.split("+") for name in names
            )
            assert rendered_with == (ONLY_ON.get(component, overlay) == overlay), (
                f"{overlay} with {component}"
            )


@pytest.mark.parametrize(
    ("nameserver", "resolver"), [("10.96.0.10", "10.96.0.10"), ("fd00::10", "[fd00::10]")]
)
def test_the_gateway_starts_with_the_pods_own_nameserver(
    nameserver: str, resolver: str, tmp_path: Path
) -> None:
    manifests = rendered(Deployment("production"))
    (gateway,) = pod_spec(by_kind(manifests, "Deployment")["gateway"])["containers"]
    (tmp_path / "resolv.conf").write_text(
        f"search authscale.svc.cluster.local svc.cluster.local\nnameserver {nameserver}\n"
        "nameserver 10.96.0.11\noptions ndots:5\n"
    )
    (tmp_path / "mounted.conf").write_text(gateway_config(manifests))
    # The container's own script, with its paths moved here and nginx left out (the local nginx
    # is older than the config's `resolve`).
    script = (
        gateway["command"][-1]
        .replace("/etc/resolv.conf", str(tmp_path / "resolv.conf"))
        .replace("/etc/nginx/authscale/nginx.conf", str(tmp_path / "mounted.conf"))
        .replace("/tmp/nginx.conf", str(tmp_path / "nginx.conf"))
        .replace("exec nginx", "exit 0; nginx")
    )
    subprocess.run([*gateway["command"][:-1], script], check=True, timeout=30)
    text = (tmp_path / "nginx.conf").read_text()
    assert f"    resolver {resolver} valid=5s ipv6=off;\n" in text
    assert POD_NAMESERVER not in text
