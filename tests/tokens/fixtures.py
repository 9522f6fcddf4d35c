"""Fixtures for the token variant: a keys directory, a user, and the issuer and token apps.

Apps are entered with ``app.test_app()`` so their serving hooks run; where a token replica must
fetch the key set over HTTP, the issuer is served by a real Hypercorn on a loopback port.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart
from quart.typing import TestClientProtocol as Client

from authscale.core.settings import RedisSettings, Settings
from authscale.core.storage import RedisStore
from authscale.login.passwords import Passwords
from authscale.login.users import Users
from authscale.tokens import app as token
from authscale.tokens import issuer
from authscale.tokens.keys.command import ensure_signing_key
from authscale.tokens.keys.signing import IssuerKeys
from authscale.tokens.settings import IssuerSettings, TokenSettings
from tests.conftest import CHEAP_ARGON2, CHEAP_PASSWORDS, PASSWORD

USERNAME = "alice"


def issuer_app(environ: Mapping[str, str]) -> Quart:
    return issuer.create_app(Settings.from_environ(environ), IssuerSettings.from_environ(environ))


def token_app(environ: Mapping[str, str]) -> Quart:
    token_settings = TokenSettings.from_environ(environ)
    settings = Settings.from_environ(environ, uses_redis=token_settings.denylist)
    return token.create_app(settings, token_settings)


@asynccontextmanager
async def client_of(app: Quart) -> AsyncIterator[Client]:
    async with app.test_app() as test_app:
        yield test_app.test_client()


@asynccontextmanager
async def http_served(app: Quart) -> AsyncIterator[str]:
    """Serve ``app`` with Hypercorn on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stopping = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stopping.wait))  # type: ignore[arg-type]
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        break
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


def write_jwks(keys_dir: Path, path: Path, retention: float = 15 * 60 + 10) -> Path:
    """The key set the issuer publishes right now, written where a token replica reads it."""
    path.write_text(json.dumps(IssuerKeys.load(keys_dir, retention).document()))
    return path


@pytest.fixture(scope="session")
def first_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("first-keys") / "keys"
    assert ensure_signing_key(path)
    return path


@pytest.fixture
def keys_dir(first_keys_dir: Path, tmp_path: Path) -> Path:
    """A keys directory with one signing key (a copy: RSA key generation is slow)."""
    return Path(shutil.copytree(first_keys_dir, tmp_path / "keys"))


@pytest.fixture
def issuer_environ(redis_url: str, keys_dir: Path) -> dict[str, str]:
    return {
        "AUTHSCALE_REDIS_URL": redis_url,
        "AUTHSCALE_SIGNING_KEYS_DIR": str(keys_dir),
        "AUTHSCALE_REPLICA_ID": "issuer-test",
        "AUTHSCALE_TRUSTED_HOPS": "0",
        **CHEAP_ARGON2,
    }


@pytest.fixture
def jwks_file(keys_dir: Path, tmp_path: Path) -> Path:
    return write_jwks(keys_dir, tmp_path / "jwks.json")


@pytest.fixture
def token_environ(jwks_file: Path) -> dict[str, str]:
    """A token replica with no Redis at all: no AUTHSCALE_REDIS_URL."""
    return {
        "AUTHSCALE_JWKS_FILE": str(jwks_file),
        "AUTHSCALE_REPLICA_ID": "token-test",
        "AUTHSCALE_TRUSTED_HOPS": "0",
    }


@pytest.fixture
async def user(redis_url: str) -> tuple[str, str]:
    store = RedisStore(RedisSettings(redis_url))
    store.open()
    passwords = Passwords(CHEAP_PASSWORDS, workers=1)
    try:
        await Users(store, passwords).add(USERNAME, PASSWORD)
    finally:
        passwords.close()
        await store.close()
    return USERNAME, PASSWORD


@pytest.fixture
async def issuer_client(
    issuer_environ: dict[str, str], user: tuple[str, str]
) -> AsyncIterator[Client]:
    async with client_of(issuer_app(issuer_environ)) as client:
        yield client


@pytest.fixture
async def token_client(token_environ: dict[str, str]) -> AsyncIterator[Client]:
    async with client_of(token_app(token_environ)) as client:
        yield client


async def login(client: Client, mode: str = "body") -> dict[str, Any]:
    response = await client.post(
        "/token/login" + ("?mode=cookie" if mode == "cookie" else ""),
        json={"username": USERNAME, "password": PASSWORD},
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    body: dict[str, Any] = await response.get_json()
    return body


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}
