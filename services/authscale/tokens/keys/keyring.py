"""The issuer's signing keys directory: private keys and the schedule that rotates them.

The directory holds one ``<kid>.pem`` per key (PKCS#8, mode 0600) and ``keyring.json``, the
schedule. Every issuer replica reads the same directory; only ``authscale keys`` writes it, under a
lock, replacing files atomically. The schedule is a list of timestamps, so every replica derives
the same answer to "which key signs now, which keys are published" from the clock alone.

Rotation in phases, so that no verifier ever meets a ``kid`` it cannot know yet:

1. ``rotate`` publishes the new key at once, with ``activates_at`` = now + activation delay (longer
   than any token replica needs to fetch it); the current key keeps signing until then.
2. At ``activates_at`` the new key signs and the old one stops (its ``deactivates_at``).
3. The old key stays published for ``deactivates_at`` + access lifetime + leeway (the retention),
   until every token it signed has expired, and then leaves the key set.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from authscale.tokens.keys.jwk import (
    DEFAULT_KEY_BITS,
    KID_PATTERN,
    InvalidKey,
    generate_private_key,
    load_private_pem,
    private_pem,
    thumbprint,
)
from authscale.tokens.settings import MAX_ACCESS_LIFETIME, MAX_LEEWAY

STATE_FILE = "keyring.json"
LOCK_FILE = ".keyring.lock"
STATE_VERSION = 1
#: Retired and revoked keys leave the schedule after this long: no issuer, whatever its access
#: lifetime, can still be publishing them by then.
PRUNE_AFTER = MAX_ACCESS_LIFETIME + MAX_LEEWAY


class KeyringError(Exception):
    """The keys directory cannot do what was asked; the message says what to do instead."""


@dataclass(frozen=True)
class KeyEntry:
    kid: str
    created_at: float
    activates_at: float
    deactivates_at: float | None = None
    revoked_at: float | None = None

    @property
    def live(self) -> bool:
        return self.revoked_at is None

    def signs_at(self, now: float) -> bool:
        return (
            self.live
            and self.activates_at <= now
            and (self.deactivates_at is None or now < self.deactivates_at)
        )

    def published_at(self, now: float, retention: float) -> bool:
        return self.live and (self.deactivates_at is None or now < self.deactivates_at + retention)

    def status(self, now: float, retention: float) -> str:
        if not self.live:
            return "revoked"
        if self.activates_at > now:
            return "next"
        if self.signs_at(now):
            return "active"
        return "retiring" if self.published_at(now, retention) else "retired"


def signing_entry(entries: Sequence[KeyEntry], now: float) -> KeyEntry | None:
    signing = [entry for entry in entries if entry.signs_at(now)]
    return max(signing, key=lambda entry: entry.activates_at, default=None)


def _entry(data: Any) -> KeyEntry:
    if not isinstance(data, dict) or not KID_PATTERN.fullmatch(str(data.get("kid", ""))):
        raise KeyringError(f"malformed key entry {data!r}")
    try:
        return KeyEntry(
            kid=str(data["kid"]),
            created_at=float(data["created_at"]),
            activates_at=float(data["activates_at"]),
            deactivates_at=None
            if data.get("deactivates_at") is None
            else float(data["deactivates_at"]),
            revoked_at=None if data.get("revoked_at") is None else float(data["revoked_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyringError(f"malformed key entry {data!r}") from exc


class Keyring:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def entries(self) -> tuple[KeyEntry, ...]:
        """The schedule; empty when the directory has none yet."""
        try:
            text = self.state_file.read_text()
        except FileNotFoundError:
            return ()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise KeyringError(f"{self.state_file} is not JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise KeyringError(f"{self.state_file} is not a version {STATE_VERSION} keyring")
        keys = data.get("keys")
        if not isinstance(keys, list):
            raise KeyringError(f"{self.state_file} has no list of keys")
        return tuple(_entry(item) for item in keys)

    def private_key(self, kid: str) -> rsa.RSAPrivateKey:
        path = self.path / f"{kid}.pem"
        try:
            key = load_private_pem(path.read_bytes())
        except InvalidKey as exc:
            raise KeyringError(f"{path}: {exc}") from exc
        if thumbprint(key.public_key()) != kid:
            raise KeyringError(f"{path} does not hold the key {kid} (its thumbprint differs)")
        return key

    # Writers: ``authscale keys`` and ``ensure_signing_key``, never a serving replica.

    def generate(
        self, *, bits: int = DEFAULT_KEY_BITS, now: float | None = None
    ) -> KeyEntry | None:
        """A first key, signing at once, when nothing signs yet; ``None`` when a key signs already.

        Nothing can have verified a token of this keyring yet, so no phase is needed.
        """
        with self._locked():
            now = time.time() if now is None else now
            entries = list(self._pruned(self.entries(), now))
            if any(entry.live and entry.deactivates_at is None for entry in entries):
                return None
            entry = KeyEntry(self._write_key(bits), created_at=now, activates_at=now)
            self._write([*entries, entry])
            return entry

    def rotate(
        self, activation_delay: float, *, bits: int = DEFAULT_KEY_BITS, now: float | None = None
    ) -> KeyEntry:
        """Publish a new key now; it takes over signing after ``activation_delay`` seconds."""
        with self._locked():
            now = time.time() if now is None else now
            entries = list(self._pruned(self.entries(), now))
            tails = [e for e in entries if e.live and e.deactivates_at is None]
            if not tails:
                raise KeyringError("no key to rotate from: run `authscale keys generate` first")
            entry = KeyEntry(
                self._write_key(bits), created_at=now, activates_at=now + activation_delay
            )
            entries = [
                replace(e, deactivates_at=entry.activates_at) if e in tails else e for e in entries
            ]
            self._write([*entries, entry])
            return entry

    def revoke(
        self, kid: str, *, bits: int = DEFAULT_KEY_BITS, now: float | None = None
    ) -> tuple[KeyEntry, KeyEntry | None]:
        """Withdraw a compromised key at once; returns it and the key that signs instead, if new.

        Its private key file is deleted. If it was signing, the earliest published next key signs
        from now on, or else a new key does (token replicas then learn it through their
        unknown-kid fetch, so fresh tokens may be refused for up to their minimum refetch
        interval). If it had not signed yet, the key before it keeps signing.
        """
        with self._locked():
            now = time.time() if now is None else now
            entries = list(self._pruned(self.entries(), now))
            found = [e for e in entries if e.kid == kid and e.live]
            if not found:
                raise KeyringError(f"no live key {kid!r}; see `authscale keys list`")
            target = found[0]
            revoked = replace(target, revoked_at=now)
            entries = [revoked if e is target else e for e in entries]
            successor: KeyEntry | None = None
            if target.activates_at > now:
                entries = [
                    replace(e, deactivates_at=target.deactivates_at)
                    if e.live and e.deactivates_at == target.activates_at
                    else e
                    for e in entries
                ]
            elif target.signs_at(now):
                pending = sorted(
                    (e for e in entries if e.live and e.activates_at > now),
                    key=lambda e: e.activates_at,
                )
                if pending:
                    successor = replace(pending[0], activates_at=now)
                    entries = [successor if e is pending[0] else e for e in entries]
                else:
                    successor = KeyEntry(self._write_key(bits), created_at=now, activates_at=now)
                    entries.append(successor)
            self._write(entries)
            (self.path / f"{kid}.pem").unlink(missing_ok=True)
            return revoked, successor

    def _pruned(self, entries: Sequence[KeyEntry], now: float) -> Iterator[KeyEntry]:
        for entry in entries:
            ended = entry.revoked_at if entry.revoked_at is not None else entry.deactivates_at
            if ended is not None and now >= ended + PRUNE_AFTER:
                (self.path / f"{entry.kid}.pem").unlink(missing_ok=True)
                continue
            yield entry

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_key(self, bits: int) -> str:
        private_key = generate_private_key(bits)
        kid = thumbprint(private_key.public_key())
        _write_atomically(self.path / f"{kid}.pem", private_pem(private_key), mode=0o600)
        return kid

    def _write(self, entries: Sequence[KeyEntry]) -> None:
        data = {"version": STATE_VERSION, "keys": [asdict(entry) for entry in entries]}
        text = json.dumps(data, indent=2) + "\n"
        _write_atomically(self.state_file, text.encode(), mode=0o644)


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Readers see the old file or the new one, never half of one (rename is atomic)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    # The rename itself must survive a crash too.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
