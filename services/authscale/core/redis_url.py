"""Where Redis is: one server (``redis://``) or a Redis Cluster (``redis+cluster://``).

A cluster URL lists one or more of its nodes, comma separated, as seeds: the client asks the first
that answers for the rest of the cluster (``CLUSTER SLOTS``) and follows it from then on, through
failovers and resharding. Listing every master makes a start survive one seed being down.

    redis+cluster://[USER]:PASSWORD@HOST:PORT[,HOST:PORT...]
    rediss+cluster://...   (TLS)

A cluster has no databases, so no ``/0`` path; every node must know the same users and passwords.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from authscale.core.errors import ConfigError

SINGLE_SCHEMES = frozenset({"redis", "rediss", "unix"})
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}


@dataclass(frozen=True)
class ClusterAddress:
    """What a ``redis+cluster://`` URL says: the seed nodes, the credentials and TLS."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool


def scheme_of(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def is_cluster(url: str) -> bool:
    return scheme_of(url) in CLUSTER_SCHEMES


def cluster_address(url: str, *, name: str = "AUTHSCALE_REDIS_URL") -> ClusterAddress:
    """Parse a cluster URL, naming ``name`` in the error when it is malformed."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in CLUSTER_SCHEMES:
        raise ConfigError(f"{name} is not a redis+cluster:// URL: {scheme!r}")
    netloc, _, path = rest.partition("/")
    if path.strip("/") or "?" in rest or "#" in rest:
        raise ConfigError(
            f"{name}: a Redis Cluster URL takes no database, path or options "
            "(redis+cluster://[USER]:PASSWORD@HOST:PORT[,HOST:PORT...])."
        )
    userinfo, at, hosts = netloc.rpartition("@")
    username, password = None, None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(part.strip(), name) for part in hosts.split(","))
    return ClusterAddress(nodes, username, password, CLUSTER_SCHEMES[scheme.lower()])


def _node(text: str, name: str) -> tuple[str, int]:
    if text.startswith("["):  # an IPv6 literal: [::1]:7000
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{name}: every Redis Cluster node must be HOST:PORT with a port in 1-65535, "
            f"got {text!r}."
        )
    return host, int(port)
