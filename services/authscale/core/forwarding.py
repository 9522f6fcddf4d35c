"""Client address and scheme from the trusted gateway's X-Forwarded-For and -Proto headers.

Hypercorn's ProxyFixMiddleware does the same job but deep-copies the whole ASGI scope on every
request: 69 µs against 6 µs here, measured side by side on a realistic scope (a few percent of a
replica's CPU per request). Only top-level keys of the scope change, so a shallow copy keeps the
server's scope intact. The Host header is left alone: the gateway passes the client's through.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypercorn.typing import ASGIFramework


class TrustedProxyMiddleware:
    def __init__(self, app: ASGIFramework, trusted_hops: int = 1) -> None:
        if trusted_hops < 1:
            raise ValueError("trusted_hops must be at least 1; without a proxy, do not wrap")
        self.app = app
        self.trusted_hops = trusted_hops

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = scope["headers"]
            client = trusted_value(b"x-forwarded-for", headers, self.trusted_hops)
            scheme = trusted_value(b"x-forwarded-proto", headers, self.trusted_hops)
            if client is not None or scheme is not None:
                scope = dict(scope)
                if client is not None:
                    scope["client"] = (client, 0)
                if scheme is not None:
                    scope["scheme"] = scheme
        await self.app(scope, receive, send)


def trusted_value(
    name: bytes, headers: Iterable[tuple[bytes, bytes]], trusted_hops: int
) -> str | None:
    """The entry ``trusted_hops`` from the right of every ``name`` header, joined in order.

    Entries further left were written by the client itself and are never trusted.
    """
    values: list[bytes] = []
    for header_name, header_value in headers:
        if header_name.lower() == name:
            values.extend(header_value.split(b","))
    if len(values) < trusted_hops:
        return None
    return values[-trusted_hops].decode("latin1").strip() or None
