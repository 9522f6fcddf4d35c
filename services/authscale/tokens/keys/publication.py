"""Whether every issuer replica publishes a key yet: ``authscale keys published``.

A rotated key must be in every issuer replica's key set before it signs: a token replica that
meets an unknown ``kid`` refetches the set from whichever issuer replica answers, and one still
serving the old set makes it refuse the token. In Kubernetes the new set reaches each issuer pod
when the kubelet updates its copy of the Secret, pod by pod. The issuer's Service is headless,
so its name resolves to every ready pod: each address is asked in turn, over HTTP, for the
public key set alone.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from authscale.tokens.keys.keyset import MAX_JWKS_BYTES, JwksError, parse_jwks


@dataclass(frozen=True)
class Answer:
    """What one issuer replica (``address``, ``host:port``) publishes, or why it could not say."""

    address: str
    kids: frozenset[str] = frozenset()
    error: str | None = None


def addresses(url: str) -> list[str]:
    """``host:port`` of every address the URL's host resolves to, in a stable order.

    Only for ``http://``: a TLS certificate names the host, not each address, so an ``https://``
    URL is asked as it is (one answer, from whichever replica the name leads to)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"the JWKS URL names no host: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme != "http":
        return [f"{parts.hostname}:{port}"]
    found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    hosts = sorted({str(info[4][0]) for info in found})
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host in hosts]


def ask(url: str, address: str, timeout: float = 5.0) -> Answer:
    """The key ids the replica at ``address`` serves at ``url``'s path."""
    parts = urlsplit(url)
    host, _, port = address.rpartition(":")
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(host.strip("[]"), int(port), timeout=timeout)
    try:
        connection.request(
            "GET",
            parts.path or "/",
            headers={"Host": parts.netloc, "Accept": "application/json"},
        )
        response = connection.getresponse()
        body = response.read(MAX_JWKS_BYTES + 1)
        if response.status != 200:
            return Answer(address, error=f"HTTP {response.status}")
        if len(body) > MAX_JWKS_BYTES:
            return Answer(address, error=f"larger than {MAX_JWKS_BYTES} bytes")
        return Answer(address, kids=frozenset(parse_jwks(body)))
    except (OSError, http.client.HTTPException, JwksError) as exc:
        return Answer(address, error=str(exc) or type(exc).__name__)
    finally:
        connection.close()


def laggards(answers: list[Answer], kid: str) -> list[Answer]:
    """The replicas that do not publish ``kid`` (or could not say); none means all do."""
    return [answer for answer in answers if answer.error or kid not in answer.kids]
