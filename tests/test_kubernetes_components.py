"""deploy/k8s/components: what each one changes in the rendered objects, and nothing more.

The components that touch objects of their own only (monitoring, the PodMonitor, the native
pause) are compared with the overlay without them: that they change nothing else is what lets
tests/manifests.py spread them over the combinations instead of multiplying them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from authscale.tokens.denylist import ACL_USER, acl_line
from tests.manifests import (
    OVERLAYS,
    REPLICA_ROLES,
    Deployment,
    Manifest,
    by_kind,
    pod_spec,
    rendered,
    settings,
)

Changes = dict[str, set[str]]


def changes(before: tuple[Manifest, ...], after: tuple[Manifest, ...]) -> Changes:
    """Object (``Kind/name``, generated names without their hash) -> the paths that differ."""

    def key(manifest: Manifest) -> str:
        name = manifest["metadata"]["name"]
        if manifest["kind"] == "ConfigMap":
            name = name.rsplit("-", 1)[0]
        return f"{manifest['kind']}/{name}"

    old = {key(m): m for m in before}
    new = {key(m): m for m in after}
    found: Changes = {}
    for name in old.keys() | new.keys():
        paths = set(_differences(old.get(name), new.get(name), ""))
        if paths:
            found[name] = paths
    return found


def _differences(old: Any, new: Any, path: str) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            yield from _differences(old.get(key), new.get(key), f"{path}/{key}")
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _differences(a, b, f"{path}/{index}")
    elif old != new:
        yield path or "/"


def component_changes(overlay: str, component: str) -> Changes:
    return changes(rendered(Deployment(overlay)), rendered(Deployment(overlay, (component,))))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitoring_only_annotates_the_replicas_pods(overlay: str) -> None:
    annotations = "/spec/template/metadata/annotations"
    assert component_changes(overlay, "monitoring") == {
        f"Deployment/{role}": {annotations} for role in REPLICA_ROLES
    }
    manifests = rendered(Deployment(overlay, ("monitoring",)))
    for role in REPLICA_ROLES:
        pod = by_kind(manifests, "Deployment")[role]["spec"]["template"]
        assert pod["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8000",
            "prometheus.io/path": "/metrics",
        }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_monitor_only_adds_itself_and_scrapes_each_replica_port(overlay: str) -> None:
    assert component_changes(overlay, "monitoring-podmonitor") == {"PodMonitor/authscale": {"/"}}
    manifests = rendered(Deployment(overlay, ("monitoring-podmonitor",)))
    (monitor,) = by_kind(manifests, "PodMonitor").values()
    assert monitor["metadata"]["namespace"] == "authscale"
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    assert sorted(expression["values"]) == sorted(REPLICA_ROLES)
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scrapers_reach_the_replicas_only_from_labelled_namespaces(overlay: str) -> None:
    policy = by_kind(rendered(Deployment(overlay)), "NetworkPolicy")["metrics"]["spec"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"authscale/monitoring": "true"}}}
    ]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_native_pause_only_swaps_the_sleep_binary_for_the_same_seconds(overlay: str) -> None:
    pre_stop = "/spec/template/spec/containers/0/lifecycle/preStop"
    found = component_changes(overlay, "native-sleep")
    assert set(found) == {f"Deployment/{name}" for name in ("gateway", *REPLICA_ROLES)}
    assert all(paths <= {f"{pre_stop}/exec", f"{pre_stop}/sleep"} for paths in found.values())
    before = by_kind(rendered(Deployment(overlay)), "Deployment")
    after = by_kind(rendered(Deployment(overlay, ("native-sleep",))), "Deployment")
    for name, deployment in after.items():
        (old,) = pod_spec(before[name])["containers"]
        (new,) = pod_spec(deployment)["containers"]
        assert new["lifecycle"]["preStop"] == {
            "sleep": {"seconds": int(old["lifecycle"]["preStop"]["exec"]["command"][1])}
        }, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_an_external_redis_replaces_the_in_cluster_one_and_the_way_out_to_it(
    overlay: str,
) -> None:
    manifests = rendered(Deployment(overlay, ("redis-external",)))
    assert "redis" not in by_kind(manifests, "StatefulSet")
    assert "redis" not in by_kind(manifests, "Service")
    assert "redis-backup" not in by_kind(manifests, "CronJob")
    policies = by_kind(manifests, "NetworkPolicy")
    assert "redis" not in policies
    (rule,) = policies["redis-clients"]["spec"]["egress"]
    assert [destination["ipBlock"]["cidr"] for destination in rule["to"]] == ["192.0.2.0/24"]
    # The roles still read the whole URL from the `redis` Secret: nothing else changes.
    assert set(component_changes(overlay, "redis-external")) == {
        "StatefulSet/redis",
        "Service/redis",
        "CronJob/redis-backup",
        "NetworkPolicy/redis",
        "NetworkPolicy/redis-clients",
    }


@pytest.mark.parametrize("redis", [(), ("redis-external",)], ids=["in-cluster", "external"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_denylist_mode_gives_token_replicas_a_read_only_user_and_a_way_to_redis(
    overlay: str, redis: tuple[str, ...]
) -> None:
    manifests = rendered(Deployment(overlay, (*redis, "token-denylist")))
    assert settings(manifests)["AUTHSCALE_TOKEN_DENYLIST"] == "true"
    policies = by_kind(manifests, "NetworkPolicy")
    (clients,) = policies["redis-clients"]["spec"]["podSelector"]["matchExpressions"]
    assert "token" in clients["values"]
    server = by_kind(manifests, "StatefulSet").get("redis")
    if server is None:
        return
    (rule,) = policies["redis"]["spec"]["ingress"]
    (allowed,) = rule["from"][0]["podSelector"]["matchExpressions"]
    assert "token" in allowed["values"]
    (container,) = pod_spec(server)["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["REDIS_TOKEN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-token"
    # The start script defines exactly the user the token replicas' code expects.
    assert acl_line("%s") in container["command"][-1].replace("'", "")
    assert ACL_USER == "authscale-token"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_without_denylist_mode_no_way_leads_from_token_replicas_to_redis(overlay: str) -> None:
    policies = by_kind(rendered(Deployment(overlay)), "NetworkPolicy")
    (clients,) = policies["redis-clients"]["spec"]["podSelector"]["matchExpressions"]
    assert "token" not in clients["values"]
    (rule,) = policies["redis"]["spec"]["ingress"]
    (allowed,) = rule["from"][0]["podSelector"]["matchExpressions"]
    assert sorted(allowed["values"]) == ["issuer", "redis-backup", "session"]


#: Gateway API's hostname: a DNS name (a leading wildcard label allowed), never a port or address.
HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_gateway_api_routes_the_issuer_host_to_the_gateway_from_the_edge_only() -> None:
    manifests = rendered(Deployment("production", ("edge-gateway-api",)))
    assert not by_kind(manifests, "Ingress")
    (route,) = by_kind(manifests, "HTTPRoute").values()
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    issuer = settings(manifests)["AUTHSCALE_TOKEN_ISSUER"]
    assert route["spec"]["hostnames"] == [issuer.split("/")[2]]
    assert all(HOSTNAME.match(name) for name in route["spec"]["hostnames"])
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "gateway", "port": 80}]
    (parent,) = route["spec"]["parentRefs"]
    assert {"name", "namespace"} <= set(parent)
    (ingress,) = by_kind(manifests, "NetworkPolicy")["gateway"]["spec"]["ingress"]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"authscale/edge": "true"}}}]
