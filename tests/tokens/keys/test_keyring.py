"""The keys directory: a first key, rotation phases, emergency revocation, pruning."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from authscale.tokens.keys.keyring import (
    PRUNE_AFTER,
    KeyEntry,
    Keyring,
    KeyringError,
    signing_entry,
)

T0 = 1_800_000_000.0
RETENTION = 900 + 10
DELAY = 150.0


@pytest.fixture
def keyring(keys_dir: Path) -> Keyring:
    """A keyring whose first key was created at T0 (rewritten so the clock can be chosen)."""
    keyring = Keyring(keys_dir)
    (first,) = keyring.entries()
    keyring._write([KeyEntry(first.kid, created_at=T0, activates_at=T0)])
    return keyring


def statuses(keyring: Keyring, now: float) -> list[str]:
    return [entry.status(now, RETENTION) for entry in keyring.entries()]


def test_a_first_key_signs_at_once_and_only_once(tmp_path):
    keyring = Keyring(tmp_path / "keys")
    entry = keyring.generate(now=T0)
    assert entry is not None and entry.activates_at == T0
    assert keyring.generate(now=T0 + 1) is None
    assert stat.S_IMODE(keyring.path.stat().st_mode) == 0o700
    assert stat.S_IMODE((keyring.path / f"{entry.kid}.pem").stat().st_mode) == 0o600
    assert keyring.private_key(entry.kid).key_size == 2048


def test_rotation_goes_through_its_phases(keyring):
    old = keyring.entries()[0]
    new = keyring.rotate(DELAY, now=T0 + 10)
    activation = T0 + 10 + DELAY
    assert new.activates_at == activation
    # Phase 1: published at once, not signing; the old key signs on.
    assert statuses(keyring, T0 + 11) == ["active", "next"]
    assert signing_entry(keyring.entries(), activation - 0.001).kid == old.kid
    # Phase 2: the new key signs; the old one is published until its tokens expired.
    assert signing_entry(keyring.entries(), activation).kid == new.kid
    assert statuses(keyring, activation + RETENTION - 1) == ["retiring", "active"]
    # Phase 3: every token of the old key has expired; it leaves the key set.
    assert statuses(keyring, activation + RETENTION) == ["retired", "active"]


def test_a_second_rotation_before_the_first_activates_chains_the_keys(keyring):
    second = keyring.rotate(DELAY, now=T0 + 10)
    third = keyring.rotate(DELAY, now=T0 + 20)
    entries = {entry.kid: entry for entry in keyring.entries()}
    assert entries[second.kid].deactivates_at == third.activates_at
    assert signing_entry(keyring.entries(), T0 + 165).kid == second.kid
    assert signing_entry(keyring.entries(), T0 + 175).kid == third.kid


def test_rotating_an_empty_directory_is_refused(tmp_path):
    with pytest.raises(KeyringError, match="keys generate"):
        Keyring(tmp_path / "empty").rotate(DELAY)


def test_revoking_the_signing_key_alone_creates_a_replacement_at_once(keyring):
    old = keyring.entries()[0]
    revoked, successor = keyring.revoke(old.kid, now=T0 + 5)
    assert revoked.revoked_at == T0 + 5
    assert successor is not None and successor.activates_at == T0 + 5
    assert signing_entry(keyring.entries(), T0 + 5).kid == successor.kid
    assert statuses(keyring, T0 + 5) == ["revoked", "active"]
    assert not (keyring.path / f"{old.kid}.pem").exists()


def test_revoking_the_signing_key_activates_the_published_next_key(keyring):
    old = keyring.entries()[0]
    upcoming = keyring.rotate(DELAY, now=T0 + 10)
    _, successor = keyring.revoke(old.kid, now=T0 + 100)
    assert successor is not None and successor.kid == upcoming.kid
    assert signing_entry(keyring.entries(), T0 + 100).kid == upcoming.kid
    assert len(keyring.entries()) == 2  # no new key was needed


def test_revoking_the_next_key_keeps_the_current_one_signing(keyring):
    old = keyring.entries()[0]
    upcoming = keyring.rotate(DELAY, now=T0 + 10)
    _, successor = keyring.revoke(upcoming.kid, now=T0 + 20)
    assert successor is None
    assert signing_entry(keyring.entries(), T0 + 10_000).kid == old.kid
    # And rotation works again from it.
    assert keyring.rotate(DELAY, now=T0 + 30).activates_at == T0 + 30 + DELAY


def test_revoking_a_retiring_key_needs_no_successor(keyring):
    old = keyring.entries()[0]
    new = keyring.rotate(0, now=T0 + 10)
    _, successor = keyring.revoke(old.kid, now=T0 + 20)
    assert successor is None
    assert statuses(keyring, T0 + 20) == ["revoked", "active"]
    assert signing_entry(keyring.entries(), T0 + 20).kid == new.kid


def test_revoking_an_unknown_or_revoked_key_is_refused(keyring):
    with pytest.raises(KeyringError, match="no live key"):
        keyring.revoke("unknown", now=T0)
    kid = keyring.entries()[0].kid
    keyring.revoke(kid, now=T0)
    with pytest.raises(KeyringError, match="no live key"):
        keyring.revoke(kid, now=T0 + 1)


def test_old_keys_leave_the_schedule_and_the_directory(keyring):
    old = keyring.entries()[0]
    keyring.rotate(0, now=T0 + 10)
    keyring.rotate(0, now=T0 + 10 + PRUNE_AFTER + 1)
    assert old.kid not in {entry.kid for entry in keyring.entries()}
    assert not (keyring.path / f"{old.kid}.pem").exists()
    assert len(keyring.entries()) == 2


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"version": 2, "keys": []}),
        json.dumps({"version": 1}),
        json.dumps({"version": 1, "keys": [{"kid": "../x"}]}),
        json.dumps({"version": 1, "keys": [{"kid": "abc", "created_at": "soon"}]}),
    ],
)
def test_a_malformed_schedule_is_an_error_not_a_guess(tmp_path, content):
    (tmp_path / "keyring.json").write_text(content)
    with pytest.raises(KeyringError):
        Keyring(tmp_path).entries()


def test_a_key_file_that_does_not_match_its_kid_is_refused(keyring, tmp_path):
    first = keyring.entries()[0]
    second = keyring.rotate(DELAY, now=T0 + 1)
    (keyring.path / f"{first.kid}.pem").write_bytes(
        (keyring.path / f"{second.kid}.pem").read_bytes()
    )
    with pytest.raises(KeyringError, match="thumbprint differs"):
        keyring.private_key(first.kid)
