"""A token replica's key set: start, refresh, unknown kids, and keeping the last good set."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authscale.core.errors import ConfigError, DependencyUnavailable
from authscale.tokens.keys.jwk import generate_private_key, private_pem, public_jwk, thumbprint
from authscale.tokens.keys.keyset import JwksError, KeySet, PrivateKeyLeak, parse_jwks
from authscale.tokens.settings import JwksSettings
from tests.conftest import ManualClock

KEYS = [generate_private_key() for _ in range(2)]
JWKS = [public_jwk(key.public_key(), thumbprint(key.public_key())) for key in KEYS]
KIDS = [jwk["kid"] for jwk in JWKS]


def document(*jwks: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(jwks)}).encode()


@dataclass
class JwksServer:
    """A real HTTP server whose answer each test sets."""

    body: bytes = field(default_factory=lambda: document(JWKS[0]))
    status: int = 200
    location: str | None = None
    requests: int = 0
    url: str = ""


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def settings_for(server: JwksServer, **changes: Any) -> JwksSettings:
    values: dict[str, Any] = {
        "url": server.url,
        "refresh_interval": 60.0,
        "min_refetch_interval": 0.3,
        "fetch_timeout": 1.0,
        **changes,
    }
    return JwksSettings(**values)


def test_parse_skips_other_keys_and_refuses_private_material():
    ec_key = {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}
    assert set(parse_jwks(document(JWKS[0], ec_key))) == {KIDS[0]}
    with pytest.raises(PrivateKeyLeak):
        parse_jwks(document({**JWKS[0], "d": "AQAB"}))
    with pytest.raises(PrivateKeyLeak):
        parse_jwks(private_pem(KEYS[0]))
    for bad in (b"[]", b"{}", b'{"keys": {}}', b"nope", document(), document(ec_key)):
        with pytest.raises(JwksError):
            parse_jwks(bad)
    with pytest.raises(JwksError, match="twice"):
        parse_jwks(document(JWKS[0], JWKS[0]))
    with pytest.raises(JwksError, match="at most"):
        parse_jwks(document(*[JWKS[0]] * 65))


async def test_a_url_set_loads_at_start_and_stops_cleanly(jwks_server):
    keys = KeySet(settings_for(jwks_server))
    with pytest.raises(DependencyUnavailable):
        await keys.check_ready()
    await keys.start()
    try:
        await keys.check_ready()
        assert keys.kids == {KIDS[0]}
        assert keys.get(KIDS[0]) is not None
    finally:
        await keys.stop()


async def test_a_failed_fetch_keeps_the_last_good_set(jwks_server):
    keys = KeySet(settings_for(jwks_server))
    assert await keys.refresh()
    before = keys.get(KIDS[0])
    for status, body in ((500, b"oops"), (200, b"not json"), (200, document())):
        jwks_server.status, jwks_server.body = status, body
        assert not await keys.refresh()
        assert keys.get(KIDS[0]) is before
    # A source that starts serving private keys is refused, and the set stays.
    jwks_server.status, jwks_server.body = 200, document({**JWKS[1], "d": "AQAB"})
    assert not await keys.refresh()
    assert keys.kids == {KIDS[0]}


async def test_an_unreachable_source_keeps_the_last_good_set(jwks_server):
    keys = KeySet(settings_for(jwks_server))
    await keys.refresh()
    unreachable = KeySet(settings_for(jwks_server, url="http://127.0.0.1:9/jwks.json"))
    unreachable._keys, unreachable._jwks = keys._keys, keys._jwks
    assert not await unreachable.refresh()
    assert unreachable.kids == {KIDS[0]}


async def test_redirects_are_not_followed(jwks_server):
    jwks_server.status, jwks_server.location = 302, "http://127.0.0.1:9/elsewhere"
    keys = KeySet(settings_for(jwks_server))
    assert not await keys.refresh()


async def test_a_private_key_at_start_stops_the_replica(jwks_server):
    jwks_server.body = document({**JWKS[0], "d": "AQAB"})
    keys = KeySet(settings_for(jwks_server))
    with pytest.raises(ConfigError, match=r"AUTHSCALE_JWKS_URL=.*private key material"):
        await keys.start()


async def test_an_unknown_kid_fetches_again_at_most_once_per_interval(jwks_server):
    clock = ManualClock()
    keys = KeySet(settings_for(jwks_server, min_refetch_interval=5), clock=clock)
    await keys.refresh()
    jwks_server.requests = 0
    jwks_server.body = document(JWKS[0], JWKS[1])
    clock.now += 5
    # Many requests with the same new kid at once share one fetch.
    found = await asyncio.gather(*(keys.refetch(KIDS[1]) for _ in range(20)))
    assert all(key is not None for key in found)
    assert jwks_server.requests == 1
    # Made-up kids within the interval: no fetch, however long the requests take.
    clock.now += 4.5
    for number in range(20):
        assert await keys.refetch(f"made-up-{number}") is None
    assert jwks_server.requests == 1
    clock.now += 0.5
    assert await keys.refetch("made-up-again") is None
    assert jwks_server.requests == 2


async def test_a_removed_kid_is_dropped_and_reported(jwks_server):
    removed: list[str] = []
    keys = KeySet(settings_for(jwks_server), on_removed=removed.extend)
    jwks_server.body = document(JWKS[0], JWKS[1])
    await keys.refresh()
    unchanged = keys.get(KIDS[1])
    jwks_server.body = document(JWKS[1])
    await keys.refresh()
    assert keys.kids == {KIDS[1]}
    assert removed == [KIDS[0]]
    assert keys.get(KIDS[1]) is unchanged  # parsed once, kept across fetches


async def test_a_kid_bound_to_another_key_counts_as_removed(jwks_server):
    removed: list[str] = []
    keys = KeySet(settings_for(jwks_server), on_removed=removed.extend)
    await keys.refresh()
    jwks_server.body = document({**JWKS[1], "kid": KIDS[0]})
    await keys.refresh()
    assert removed == [KIDS[0]]
    assert keys.get(KIDS[0]).public_numbers() == KEYS[1].public_key().public_numbers()


async def test_the_timer_refreshes_the_set(jwks_server):
    keys = KeySet(settings_for(jwks_server, refresh_interval=0.2, min_refetch_interval=0.1))
    await keys.start()
    try:
        jwks_server.body = document(JWKS[1])
        for _ in range(100):  # does not hang: 10 s at most
            if keys.kids == {KIDS[1]}:
                break
            await asyncio.sleep(0.1)
        assert keys.kids == {KIDS[1]}
    finally:
        await keys.stop()


def test_a_key_file_loads_before_serving(tmp_path: Path):
    path = tmp_path / "jwks.json"
    path.write_bytes(document(*JWKS))
    keys = KeySet(JwksSettings(file=path))
    keys.load_now()
    assert keys.kids == set(KIDS)
    path.write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(ConfigError, match=r"AUTHSCALE_JWKS_FILE=.*larger than"):
        KeySet(JwksSettings(file=path)).load_now()
