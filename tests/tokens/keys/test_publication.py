"""``authscale keys published``: every issuer replica asked whether a rotated key reached it,
against real issuer apps served over HTTP, one of which lags behind as a pod whose copy of the
key Secret has not been updated yet would."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from authscale.cli import main
from authscale.tokens.keys.keyring import Keyring
from authscale.tokens.keys.publication import addresses, ask
from tests.tokens.fixtures import http_served, issuer_app

#: Far enough ahead that the rotated key is published but never signs during the test.
ACTIVATION_DELAY = 3600.0


def address_of(base_url: str) -> str:
    return base_url.removeprefix("http://")


async def published(kid: str, *options: str) -> int:
    # The command blocks on its HTTP requests: off the event loop that serves the issuers.
    # The kid after "--": a base64url thumbprint begins with "-" one time in 64.
    return await asyncio.to_thread(main, ["keys", "published", *options, "--", kid])


async def test_the_check_names_the_replica_the_new_key_has_not_reached(
    issuer_environ: dict[str, str],
    keys_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lagging_dir = Path(shutil.copytree(keys_dir, tmp_path / "lagging-keys"))
    new = Keyring(keys_dir).rotate(ACTIVATION_DELAY)
    lagging_environ = {**issuer_environ, "AUTHSCALE_SIGNING_KEYS_DIR": str(lagging_dir)}
    async with (
        http_served(issuer_app(issuer_environ)) as updated,
        http_served(issuer_app(lagging_environ)) as lagging,
    ):
        url = f"{updated}/.well-known/jwks.json"
        replicas = ["--address", address_of(updated), "--address", address_of(lagging)]

        assert await published(new.kid, "--jwks-url", url, *replicas) == 1
        out = capsys.readouterr().out
        assert f"{address_of(updated)}: lists it" in out
        assert f"{address_of(lagging)}: does not list it yet" in out
        assert f"key {new.kid}: 1 of 2 issuer replicas do not publish it" in out

        # The Secret's new contents reach the lagging pod: it reloads its keyring and publishes.
        shutil.copytree(keys_dir, lagging_dir, dirs_exist_ok=True)
        assert await published(new.kid, "--jwks-url", url, *replicas, "--wait", "30") == 0
        assert "every issuer replica (2) publishes it" in capsys.readouterr().out


async def test_a_replica_that_cannot_answer_fails_the_check(
    issuer_environ: dict[str, str], keys_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (entry,) = Keyring(keys_dir).entries()
    kid = entry.kid
    async with http_served(issuer_app(issuer_environ)) as issuer:
        url = f"{issuer}/.well-known/jwks.json"
        answer = await asyncio.to_thread(ask, url, address_of(issuer))
        assert answer.kids == {kid} and answer.error is None
        assert await published(kid, "--jwks-url", url) == 0
        # A port nothing listens on: the previous server's, now closed.
    assert await published(kid, "--jwks-url", url) == 1
    out = capsys.readouterr().out
    assert "could not say" in out
    assert "1 of 1 issuer replicas do not publish it" in out


def test_the_check_needs_a_key_set_to_ask(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTHSCALE_JWKS_URL", raising=False)
    assert main(["keys", "published", "some-kid"]) == 2
    assert "AUTHSCALE_JWKS_URL" in capsys.readouterr().err


def test_every_address_of_a_plain_http_host_is_asked() -> None:
    assert addresses("http://127.0.0.1:8000/.well-known/jwks.json") == ["127.0.0.1:8000"]
    assert addresses("http://[::1]:8000/.well-known/jwks.json") == ["[::1]:8000"]
    # A certificate names the host, not each address: asked as it is.
    assert addresses("https://auth.example.com/.well-known/jwks.json") == ["auth.example.com:443"]
