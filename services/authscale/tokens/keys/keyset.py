"""A token replica's public keys: loaded at start, refreshed on a timer and on unknown ``kid``s.

- The set comes from ``AUTHSCALE_JWKS_URL`` (the issuer's ``/.well-known/jwks.json``) or
  ``AUTHSCALE_JWKS_FILE``, and is re-read every refresh interval. That interval bounds how long a
  revoked key (and every verification cached under it) survives here, and how long a newly
  published key takes to arrive.
- A token naming a ``kid`` we do not know triggers one more fetch, at most once per minimum
  refetch interval, shared by every request waiting on it.
- A failed or suspicious fetch never empties or shrinks the set: the last good set stays.
- A document carrying private key material is refused: at start that stops the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from authscale.core.errors import ConfigError, DependencyUnavailable
from authscale.core.metrics import JWKS_FETCHES
from authscale.tokens.keys.jwk import PRIVATE_MEMBERS, InvalidKey, parse_public_jwk
from authscale.tokens.settings import JwksSettings

logger = logging.getLogger(__name__)

#: A key set is a few KiB; a source sending more than this is broken or hostile.
MAX_JWKS_BYTES = 1024 * 1024
MAX_KEYS = 64


class JwksError(Exception):
    """The fetched document cannot be used; the last good key set stays."""


class PrivateKeyLeak(JwksError):
    """The source serves private key material: a token replica must never hold it."""


def parse_jwks(data: bytes) -> dict[str, tuple[dict[str, Any], rsa.RSAPublicKey]]:
    """Each usable key by ``kid``, with the JWK it came from; keys for other uses are skipped."""
    if b"PRIVATE KEY-----" in data:
        raise PrivateKeyLeak("the source holds a PEM private key, not a public key set")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise JwksError(f"not JSON ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('not a JWK set: expected {"keys": [...]}')
    if len(document["keys"]) > MAX_KEYS:
        raise JwksError(f"{len(document['keys'])} keys, at most {MAX_KEYS} accepted")
    keys: dict[str, tuple[dict[str, Any], rsa.RSAPublicKey]] = {}
    for jwk in document["keys"]:
        if isinstance(jwk, dict) and PRIVATE_MEMBERS & set(jwk):
            raise PrivateKeyLeak("the key set holds private key material")
        try:
            kid, key = parse_public_jwk(jwk)
        except InvalidKey as exc:
            logger.warning("skipping a key of the key set: %s", exc)
            continue
        if kid in keys:
            raise JwksError(f"kid {kid} appears twice")
        keys[kid] = (jwk, key)
    if not keys:
        raise JwksError("no usable RS256 signing key in the set")
    return keys


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The key set must come from exactly the configured URL.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


class KeySet:
    def __init__(
        self,
        settings: JwksSettings,
        *,
        on_removed: Callable[[Iterable[str]], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` measures the interval between fetches on unknown ``kid``s (tests pass one
        they move by hand)."""
        self._settings = settings
        self._on_removed = on_removed
        self._clock = clock
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._jwks: dict[str, dict[str, Any]] = {}
        self._last_attempt = -math.inf
        self._inflight: asyncio.Task[bool] | None = None
        self._timer: asyncio.Task[None] | None = None

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def get(self, kid: str) -> rsa.RSAPublicKey | None:
        return self._keys.get(kid)

    async def refetch(self, kid: str) -> rsa.RSAPublicKey | None:
        if kid not in self._keys and (
            self._inflight is not None
            or self._clock() - self._last_attempt >= self._settings.min_refetch_interval
        ):
            await self.refresh(trigger="unknown_kid")
        if not self._keys:
            raise DependencyUnavailable("The public keys are not loaded yet")
        return self._keys.get(kid)

    async def check_ready(self) -> None:
        if not self._keys:
            raise DependencyUnavailable("The public keys are not loaded yet")

    def load_now(self) -> None:
        """Read a key file before serving; a missing or unusable file stops the start."""
        assert self._settings.file is not None
        try:
            self._apply(parse_jwks(_read_file(self._settings)))
        except (OSError, JwksError) as exc:
            raise ConfigError(f"{self._settings.variable}={self._settings.source}: {exc}.") from exc

    async def start(self) -> None:
        """First load (a URL may not answer yet: readiness waits), then refresh on a timer."""
        if not self._keys:
            try:
                await self.refresh(trigger="start", raise_leak=True)
            except PrivateKeyLeak as exc:
                raise ConfigError(
                    f"{self._settings.variable}={self._settings.source}: {exc}."
                ) from exc
        self._timer = asyncio.create_task(self._refresh_periodically(), name="jwks-refresh")

    async def stop(self) -> None:
        for task in (self._timer, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._timer = self._inflight = None

    async def refresh(self, *, trigger: str = "timer", raise_leak: bool = False) -> bool:
        """Fetch once (joining a fetch already under way); whether the set was replaced."""
        if self._inflight is None:
            self._last_attempt = self._clock()
            self._inflight = asyncio.create_task(self._fetch(trigger))
            self._inflight.add_done_callback(self._fetch_done)
        try:
            return await asyncio.shield(self._inflight)
        except PrivateKeyLeak:
            if raise_leak:
                raise
            return False

    def _fetch_done(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _refresh_periodically(self) -> None:
        while True:
            # Until a first set arrives, retry sooner: readiness waits on it.
            loaded = bool(self._keys)
            await asyncio.sleep(
                self._settings.refresh_interval if loaded else self._settings.min_refetch_interval
            )
            try:
                await self.refresh()
            except Exception:
                # A bug must not end the timer silently: revocations would stop arriving.
                logger.exception("key set refresh failed; retrying on the next tick")

    async def _fetch(self, trigger: str) -> bool:
        settings = self._settings
        try:
            if settings.url is not None:
                data = await asyncio.wait_for(
                    asyncio.to_thread(_read_url, settings), settings.fetch_timeout
                )
            else:
                data = await asyncio.to_thread(_read_file, settings)
            keys = parse_jwks(data)
        except PrivateKeyLeak:
            JWKS_FETCHES.labels(trigger, "refused").inc()
            logger.error("%s serves private key material; refusing it", settings.variable)
            raise
        # ValueError covers what urllib raises for a response it cannot make sense of.
        except (OSError, TimeoutError, ValueError, http.client.HTTPException, JwksError) as exc:
            JWKS_FETCHES.labels(trigger, "failed").inc()
            logger.warning(
                "keeping the last good key set: %s %s: %s", settings.variable, settings.source, exc
            )
            return False
        JWKS_FETCHES.labels(trigger, "ok").inc()
        self._apply(keys)
        return True

    def _apply(self, fetched: dict[str, tuple[dict[str, Any], rsa.RSAPublicKey]]) -> None:
        keys: dict[str, rsa.RSAPublicKey] = {}
        for kid, (jwk, key) in fetched.items():
            # Keys are parsed once: an unchanged key keeps its object, and with it the cached
            # verifications made under it.
            unchanged = self._jwks.get(kid) == jwk and kid in self._keys
            keys[kid] = self._keys[kid] if unchanged else key
        removed = [kid for kid in self._keys if keys.get(kid) is not self._keys[kid]]
        added = sorted(set(keys) - set(self._keys))
        self._keys = keys
        self._jwks = {kid: jwk for kid, (jwk, _) in fetched.items()}
        if added or removed:
            logger.info("key set changed: added %s, removed %s", added, sorted(removed))
        if removed and self._on_removed is not None:
            self._on_removed(removed)


def _read_file(settings: JwksSettings) -> bytes:
    assert settings.file is not None
    with open(settings.file, "rb") as file:
        data = file.read(MAX_JWKS_BYTES + 1)
    if len(data) > MAX_JWKS_BYTES:
        raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
    return data


def _read_url(settings: JwksSettings) -> bytes:
    assert settings.url is not None
    # The scheme was checked to be http(s) when the settings were read.
    request = urllib.request.Request(  # noqa: S310
        settings.url, headers={"Accept": "application/json"}
    )
    try:
        with _opener.open(request, timeout=settings.fetch_timeout) as response:
            data: bytes = response.read(MAX_JWKS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise JwksError(f"HTTP {exc.code}") from exc
    if len(data) > MAX_JWKS_BYTES:
        raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
    return data
