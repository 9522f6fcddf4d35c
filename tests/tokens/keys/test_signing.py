"""The issuer's view of the keys directory: start checks, reloads, what is published when."""

from __future__ import annotations

import asyncio
import os

import pytest

from authscale.core.errors import ConfigError, DependencyUnavailable
from authscale.tokens.keys.keyring import Keyring
from authscale.tokens.keys.signing import IssuerKeys
from authscale.tokens.settings import KEYRING_RELOAD_INTERVAL

RETENTION = 910.0


async def next_reload() -> None:
    await asyncio.sleep(KEYRING_RELOAD_INTERVAL + 0.1)


def test_a_missing_or_empty_directory_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match=r"AUTHSCALE_SIGNING_KEYS_DIR=.* is not a directory"):
        IssuerKeys.load(tmp_path / "missing", RETENTION)
    with pytest.raises(ConfigError, match="holds no key that signs now"):
        IssuerKeys.load(tmp_path, RETENTION)


def test_an_unreadable_key_stops_the_start_naming_the_variable(keys_dir):
    kid = Keyring(keys_dir).entries()[0].kid
    (keys_dir / f"{kid}.pem").write_text("garbage")
    with pytest.raises(ConfigError, match=r"AUTHSCALE_SIGNING_KEYS_DIR=.*cannot be read"):
        IssuerKeys.load(keys_dir, RETENTION)
    (keys_dir / f"{kid}.pem").unlink()
    with pytest.raises(ConfigError, match=r"AUTHSCALE_SIGNING_KEYS_DIR=.*cannot be read"):
        IssuerKeys.load(keys_dir, RETENTION)


def test_a_corrupt_schedule_stops_the_start(keys_dir):
    (keys_dir / "keyring.json").write_text("{")
    with pytest.raises(ConfigError, match="AUTHSCALE_SIGNING_KEYS_DIR"):
        IssuerKeys.load(keys_dir, RETENTION)


async def test_a_rotation_is_published_at_once_and_signs_after_its_delay(keys_dir):
    keys = IssuerKeys.load(keys_dir, RETENTION)
    old = (await keys.signing_key()).kid
    # The delay leaves room for a slow reload on a busy machine; the switch is then awaited
    # with a generous bound rather than timed.
    new = Keyring(keys_dir).rotate(4.0)
    await next_reload()
    published = {jwk["kid"] for jwk in (await keys.jwks())["keys"]}
    assert published == {old, new.kid}
    assert (await keys.signing_key()).kid == old
    for _ in range(100):
        if (await keys.signing_key()).kid == new.kid:
            break
        await asyncio.sleep(0.1)
    assert (await keys.signing_key()).kid == new.kid
    # The old key is still published: tokens it signed are still valid.
    assert keys.get(old) is not None


async def test_a_retired_key_leaves_the_key_set(keys_dir):
    keys = IssuerKeys.load(keys_dir, retention=0.2)
    old = (await keys.signing_key()).kid
    Keyring(keys_dir).rotate(0)
    await next_reload()
    await keys.jwks()
    await asyncio.sleep(0.3)
    published = {jwk["kid"] for jwk in (await keys.jwks())["keys"]}
    assert old not in published and len(published) == 1
    assert keys.get(old) is None


async def test_a_revoked_key_leaves_at_once(keys_dir):
    keys = IssuerKeys.load(keys_dir, RETENTION)
    old = (await keys.signing_key()).kid
    _, successor = Keyring(keys_dir).revoke(old)
    await next_reload()
    assert (await keys.signing_key()).kid == successor.kid
    assert {jwk["kid"] for jwk in (await keys.jwks())["keys"]} == {successor.kid}


async def test_a_broken_reload_keeps_the_last_good_keys(keys_dir):
    keys = IssuerKeys.load(keys_dir, RETENTION)
    kid = (await keys.signing_key()).kid
    state = keys_dir / "keyring.json"
    state.write_text("{broken")
    os.utime(state, ns=(1, 1))  # a different stamp, however fast this runs
    await next_reload()
    assert (await keys.signing_key()).kid == kid


async def test_no_signing_key_is_a_503_not_a_crash(keys_dir, tmp_path):
    keys = IssuerKeys.load(keys_dir, RETENTION)
    keyring = Keyring(keys_dir)
    entry = keyring.entries()[0]
    keyring._write(
        [entry.__class__(entry.kid, entry.created_at, entry.activates_at, revoked_at=1.0)]
    )
    await next_reload()
    with pytest.raises(DependencyUnavailable):
        await keys.signing_key()
    with pytest.raises(DependencyUnavailable):
        await keys.check_ready()
