"""The gateway's X-Forwarded-For and -Proto: trusted for the hops set, nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from authscale.core.forwarding import TrustedProxyMiddleware, trusted_value


async def seen_scope(headers: list[tuple[bytes, bytes]], hops: int = 1) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {"type": "http", "headers": headers, "client": ("10.9.9.9", 4000), "scheme": "http"}
    await TrustedProxyMiddleware(app, hops)(scope, None, None)
    assert scope["client"] == ("10.9.9.9", 4000)  # the server's own scope is never changed
    return seen


async def test_the_gateway_names_the_client_and_scheme() -> None:
    scope = await seen_scope(
        [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    )
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "https"


async def test_entries_the_client_wrote_itself_are_not_trusted() -> None:
    spoofed = [(b"X-Forwarded-For", b"1.2.3.4, 198.51.100.9"), (b"x-forwarded-for", b"203.0.113.7")]
    assert (await seen_scope(spoofed))["client"] == ("203.0.113.7", 0)
    assert (await seen_scope(spoofed, hops=2))["client"] == ("198.51.100.9", 0)


async def test_without_forwarding_headers_the_scope_is_untouched() -> None:
    scope = await seen_scope([(b"host", b"localhost")])
    assert scope["client"] == ("10.9.9.9", 4000)
    assert scope["scheme"] == "http"


def test_fewer_entries_than_trusted_hops_trust_nothing() -> None:
    assert trusted_value(b"x-forwarded-for", [(b"x-forwarded-for", b"1.2.3.4")], 2) is None
    assert trusted_value(b"x-forwarded-for", [(b"x-forwarded-for", b" ")], 1) is None


def test_zero_hops_is_refused() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    with pytest.raises(ValueError, match="trusted_hops"):
        TrustedProxyMiddleware(app, 0)
