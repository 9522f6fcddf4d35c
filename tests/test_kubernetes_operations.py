"""deploy/k8s under operation, checked on every overlay and component combination: the autoscaler
owns the replica count, pods drain in the order base/draining.yaml derives, egress is denied but
for DNS and the paths the roles need, images are pinned, and disruptions stay survivable.
"""

from __future__ import annotations

import re

import pytest

from authscale.core.servers import GRACEFUL_SECONDS
from tests.manifests import (
    REPLICA_ROLES,
    Manifest,
    by_kind,
    containers,
    every_deployment,
    gateway_config,
    in_cluster_redis,
    pod_spec,
    render_every_deployment,
    workloads,
)

#: The worst case for the gateway to stop sending to a deleted pod, besides nginx's own
#: `resolver ... valid=` (read from the config): endpoint removal reaching the cluster DNS, and
#: the age of the DNS answer (CoreDNS's default TTL). base/draining.yaml derives the same sum.
ENDPOINT_PROPAGATION_SECONDS = 5
CLUSTER_DNS_TTL_SECONDS = 5
#: Tags pinned on purpose, each with its reason; every other image goes by digest.
NAMED_TAGS = {
    # Built on the operator's machine and loaded into the local cluster, never pulled.
    "authscale:local",
    # The official images the project tests against; production pins them by digest with
    # `kustomize edit set image` in its own kustomization (deploy/k8s/README.md).
    "nginx:1.28-bookworm",
    "redis:7.2-bookworm",
}
DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


@pytest.fixture(scope="module", params=every_deployment(), ids=lambda deployment: deployment.name)
def manifests(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    return render_every_deployment()[request.param]


@pytest.fixture(
    scope="module",
    params=[d for d in every_deployment() if in_cluster_redis(d)],
    ids=lambda deployment: deployment.name,
)
def with_redis(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    """The deployments that run their own Redis."""
    return render_every_deployment()[request.param]


def seconds(text: str, directive: str) -> list[int]:
    return [int(value) for value in re.findall(rf"\b{directive}\s+(\d+)s;", text)]


def pause(container: Manifest) -> int:
    """The preStop pause, as an exec'd `sleep` or the kubelet's own sleep action."""
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return int(command[1])


def test_the_autoscaler_alone_sets_the_replicas_it_scales(manifests: tuple[Manifest, ...]) -> None:
    targets = {
        hpa["spec"]["scaleTargetRef"]["name"]
        for hpa in by_kind(manifests, "HorizontalPodAutoscaler").values()
    }
    assert targets == set(REPLICA_ROLES)
    for name, deployment in by_kind(manifests, "Deployment").items():
        if name in targets:
            assert "replicas" not in deployment["spec"], f"{name}: an apply would undo the HPA"
        else:
            assert deployment["spec"]["replicas"] >= 2, name


def test_single_process_replicas_request_what_they_use(manifests: tuple[Manifest, ...]) -> None:
    deployments = by_kind(manifests, "Deployment")
    for role in REPLICA_ROLES:
        (container,) = pod_spec(deployments[role])["containers"]
        resources = container["resources"]
        # Requests equal limits: scheduled at its real size, and the HPA's percentage means it.
        assert resources["requests"] == resources["limits"], role
    for hpa in by_kind(manifests, "HorizontalPodAutoscaler").values():
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["target"]["averageUtilization"] <= 80


def test_replicas_pause_past_the_gateways_re_resolution_then_drain_within_grace(
    manifests: tuple[Manifest, ...],
) -> None:
    text = gateway_config(manifests)
    (valid,) = [int(v) for v in re.findall(r"resolver \S+ valid=(\d+)s", text)]
    login_timeouts = seconds(text, "proxy_read_timeout")
    login_timeout = max(login_timeouts)
    re_resolution = ENDPOINT_PROPAGATION_SECONDS + CLUSTER_DNS_TTL_SECONDS + valid
    deployments = by_kind(manifests, "Deployment")
    for role in REPLICA_ROLES:
        pod = pod_spec(deployments[role])
        (container,) = pod["containers"]
        grace = pod["terminationGracePeriodSeconds"]
        assert re_resolution < pause(container), role
        assert pause(container) + GRACEFUL_SECONDS < grace, role
        assert login_timeout < grace, role


def test_the_gateway_pauses_then_lets_the_longest_login_finish_within_grace(
    manifests: tuple[Manifest, ...],
) -> None:
    text = gateway_config(manifests)
    login_timeout = max(seconds(text, "proxy_read_timeout"))
    (shutdown,) = seconds(text, "worker_shutdown_timeout")
    pod = pod_spec(by_kind(manifests, "Deployment")["gateway"])
    (container,) = pod["containers"]
    assert login_timeout < shutdown
    assert pause(container) + shutdown < pod["terminationGracePeriodSeconds"]


def test_egress_is_denied_but_for_dns_and_the_paths_the_roles_need(
    manifests: tuple[Manifest, ...],
) -> None:
    policies = by_kind(manifests, "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    dns = policies["dns"]["spec"]
    assert dns["podSelector"] == {}
    ((rule,),) = [dns["egress"]]
    assert {(port["port"], port["protocol"]) for port in rule["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
    }
    (destination,) = rule["to"]
    assert destination["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    # Every way out names its ports: nothing leaves for anywhere on any port.
    for name, policy in policies.items():
        for egress in policy["spec"].get("egress", []):
            assert egress.get("ports") and egress.get("to"), name


def test_every_image_goes_by_digest_or_by_a_tag_named_on_purpose(
    manifests: tuple[Manifest, ...],
) -> None:
    for name, workload in workloads(manifests).items():
        for container in containers(workload):
            image = container["image"]
            assert DIGEST.match(image) or image in NAMED_TAGS, f"{name}: {image}"


def test_production_runs_its_own_image_by_digest() -> None:
    production = next(m for d, m in render_every_deployment().items() if d.overlay == "production")
    (session,) = pod_spec(by_kind(production, "Deployment")["session"])["containers"]
    assert DIGEST.match(session["image"]), session["image"]


def test_disruptions_stay_survivable(manifests: tuple[Manifest, ...]) -> None:
    for name, budget in by_kind(manifests, "PodDisruptionBudget").items():
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", name
    for name, deployment in by_kind(manifests, "Deployment").items():
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0, name
        assert str(rolling["maxSurge"]).endswith("%"), name
        pod = pod_spec(deployment)
        assert pod["priorityClassName"] == "authscale-serving", name
        spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
        assert set(spread) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        # A full node must never keep an autoscaled pod pending.
        assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "ScheduleAnyway", name
    for name, workload in workloads(manifests).items():
        if workload["kind"] != "Deployment":
            assert pod_spec(workload)["priorityClassName"] == "authscale-data", name


def test_an_in_cluster_redis_leaves_room_for_the_rewrite_and_is_backed_up(
    with_redis: tuple[Manifest, ...],
) -> None:
    manifests = with_redis
    redis = by_kind(manifests, "StatefulSet")["redis"]
    (container,) = pod_spec(redis)["containers"]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    maxmemory = int(env["REDIS_MAXMEMORY"].removesuffix("mb")) * 2**20
    limit = container["resources"]["limits"]["memory"]
    size = re.fullmatch(r"(\d+)(Mi|Gi)", limit)
    assert size, limit
    limit_bytes = int(size[1]) * (2**20 if size[2] == "Mi" else 2**30)
    # The AOF rewrite's fork may copy as much again as the data set: both must fit the limit.
    assert 2 * maxmemory < limit_bytes
    backup = by_kind(manifests, "CronJob")["redis-backup"]
    (volume,) = pod_spec(backup)["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "redis-backups"
    (job,) = pod_spec(backup)["containers"]
    assert "redis-cli -h redis --rdb" in job["command"][-1]
