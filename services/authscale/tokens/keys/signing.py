"""The issuer's view of the keyring: which key signs now, which keys are published.

Each issuer replica reloads the directory when ``keyring.json`` changes (looked at no more than
once a second), keeps the last good view if a reload fails, and parses each private key once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from authscale.core.errors import ConfigError, DependencyUnavailable
from authscale.core.settings import PREFIX
from authscale.tokens.keys.jwk import SigningKey, public_jwk
from authscale.tokens.keys.keyring import KeyEntry, Keyring, KeyringError, signing_entry
from authscale.tokens.settings import KEYRING_RELOAD_INTERVAL

logger = logging.getLogger(__name__)

VARIABLE = f"{PREFIX}SIGNING_KEYS_DIR"


@dataclass(frozen=True)
class _View:
    entries: tuple[KeyEntry, ...]
    private_keys: Mapping[str, rsa.RSAPrivateKey]
    public_keys: Mapping[str, rsa.RSAPublicKey]
    stamp: tuple[int, int, int]


class IssuerKeys:
    def __init__(self, keyring: Keyring, retention: float, view: _View) -> None:
        self._keyring = keyring
        #: How long a key stays published after it stopped signing: access lifetime + leeway.
        self._retention = retention
        self._view = view
        self._checked_at = time.monotonic()
        self._reloading = asyncio.Lock()

    @classmethod
    def load(cls, keys_dir: Path, retention: float) -> IssuerKeys:
        """Read the directory at start; any problem is a ConfigError naming the variable."""
        keyring = Keyring(keys_dir)
        if not keys_dir.is_dir():
            raise ConfigError(f"{VARIABLE}={keys_dir} is not a directory.")
        try:
            view = _read(keyring, retention, {})
        except (KeyringError, OSError) as exc:
            raise ConfigError(f"{VARIABLE}={keys_dir}: the keys cannot be read ({exc}).") from exc
        if signing_entry(view.entries, time.time()) is None:
            raise ConfigError(
                f"{VARIABLE}={keys_dir} holds no key that signs now; "
                "create one with `authscale keys generate`."
            )
        return cls(keyring, retention, view)

    async def signing_key(self) -> SigningKey:
        await self._reload_if_changed()
        view = self._view
        entry = signing_entry(view.entries, time.time())
        if entry is None or entry.kid not in view.private_keys:
            raise DependencyUnavailable("No signing key is available")
        return SigningKey(entry.kid, view.private_keys[entry.kid])

    async def jwks(self) -> dict[str, Any]:
        await self._reload_if_changed()
        return self.document()

    def document(self) -> dict[str, Any]:
        """The JWKS document of the keys published now, as last loaded."""
        return {"keys": [public_jwk(key, kid) for kid, key in self._published().items()]}

    def get(self, kid: str) -> rsa.RSAPublicKey | None:
        """A published public key: the issuer verifies the access tokens sent to logout-all."""
        return self._published().get(kid)

    async def refetch(self, kid: str) -> rsa.RSAPublicKey | None:
        await self._reload_if_changed()
        return self.get(kid)

    async def check_ready(self) -> None:
        await self.signing_key()

    def _published(self) -> dict[str, rsa.RSAPublicKey]:
        now = time.time()
        view = self._view
        return {
            entry.kid: view.public_keys[entry.kid]
            for entry in view.entries
            if entry.published_at(now, self._retention) and entry.kid in view.public_keys
        }

    async def _reload_if_changed(self) -> None:
        if time.monotonic() - self._checked_at < KEYRING_RELOAD_INTERVAL:
            return
        async with self._reloading:
            if time.monotonic() - self._checked_at < KEYRING_RELOAD_INTERVAL:
                return
            self._checked_at = time.monotonic()
            try:
                if _stamp(self._keyring) == self._view.stamp:
                    return
                self._view = await asyncio.to_thread(
                    _read, self._keyring, self._retention, self._view.private_keys
                )
            except (KeyringError, OSError) as exc:
                # Keep signing with what we had: a half-edited directory must not stop logins.
                logger.error("keeping the previous signing keys: %s", exc)
                return
            logger.info("signing keys reloaded: %s", [e.kid for e in self._view.entries])


def _stamp(keyring: Keyring) -> tuple[int, int, int]:
    try:
        status = os.stat(keyring.state_file)
    except FileNotFoundError:
        return (0, 0, 0)
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def _read(keyring: Keyring, retention: float, known: Mapping[str, rsa.RSAPrivateKey]) -> _View:
    stamp = _stamp(keyring)
    entries = keyring.entries()
    now = time.time()
    private_keys: dict[str, rsa.RSAPrivateKey] = {}
    for entry in entries:
        if entry.published_at(now, retention):
            private_keys[entry.kid] = known.get(entry.kid) or keyring.private_key(entry.kid)
    public_keys = {kid: key.public_key() for kid, key in private_keys.items()}
    return _View(entries, private_keys, public_keys, stamp)
