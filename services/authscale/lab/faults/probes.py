"""Credentials held outside the load: made before a fault, checked after it, replica by replica.

Locust's users tell what the load saw; the probes tell what was *kept*: a session or a token
minted before the fault must still be accepted after it (or, after a logout, refused).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from authscale.login.command import DEFAULT_SEED_PASSWORD

TIMEOUT = 10.0


@dataclass
class Probe:
    username: str
    client: httpx.Client
    csrf_token: str = ""
    access_token: str = ""
    refresh_token: str = ""


@dataclass
class Probes:
    """One session and one token pair per account, all through the gateway."""

    gateway_url: str
    accounts: Sequence[str]
    probes: list[Probe] = field(default_factory=list)

    def __enter__(self) -> Probes:
        return self

    def __exit__(self, *_: object) -> None:
        for probe in self.probes:
            probe.client.close()

    def log_in(self, variants: Sequence[str] = ("session", "token")) -> None:
        for username in self.accounts:
            client = httpx.Client(base_url=self.gateway_url, timeout=TIMEOUT)
            probe = Probe(username, client)
            self.probes.append(probe)
            credentials = {"username": username, "password": DEFAULT_SEED_PASSWORD}
            if "session" in variants:
                session = client.post("/session/login", json=credentials)
                session.raise_for_status()
                probe.csrf_token = session.json()["csrf_token"]
            if "token" not in variants:
                continue
            token = client.post("/token/login", json=credentials)
            token.raise_for_status()
            probe.access_token = token.json()["access_token"]
            probe.refresh_token = token.json()["refresh_token"]

    def session_statuses(self, base_url: str | None = None) -> list[int]:
        return self._each(
            lambda p: self._get(p, "/session/dashboard", base_url, cookies=True).status_code
        )

    def token_statuses(self, base_url: str | None = None) -> list[int]:
        return self._each(
            lambda p: self._get(p, "/token/dashboard", base_url, bearer=True).status_code
        )

    def refresh_statuses(self) -> list[int]:
        def refresh(probe: Probe) -> int:
            answer = probe.client.post(
                "/token/refresh", json={"refresh_token": probe.refresh_token}
            )
            if answer.status_code == 200:
                probe.access_token = answer.json()["access_token"]
                probe.refresh_token = answer.json()["refresh_token"]
            return answer.status_code

        return self._each(refresh)

    def _each(self, ask: Callable[[Probe], int]) -> list[int]:
        """``ask`` every probe at once, answers in the probes' order.

        At once, because during an outage each answer may take the replicas' whole Redis
        timeout: one after another, 20 probes of three kinds kept Redis down for 40 s instead of
        the scenario's 10 (on compose, where a stopped container's name takes that long to fail).
        Each probe has a client of its own, used by one thread.
        """
        if not self.probes:
            return []
        with ThreadPoolExecutor(max_workers=len(self.probes)) as pool:
            return list(pool.map(ask, self.probes))

    @staticmethod
    def _get(
        probe: Probe,
        path: str,
        base_url: str | None,
        *,
        cookies: bool = False,
        bearer: bool = False,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {probe.access_token}"} if bearer else {}
        if base_url is None:
            return probe.client.get(path, headers=headers)
        # Straight to one replica, with the cookie the gateway's client holds.
        jar = probe.client.cookies if cookies else None
        return httpx.get(base_url + path, headers=headers, cookies=jar, timeout=TIMEOUT)


def kid_of(token: str) -> str:
    """The ``kid`` of a JWT's header (read only to report which key signed it)."""
    header = token.split(".")[0]
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return str(decoded.get("kid", ""))


def until(check: Callable[[], bool], *, timeout: float, every: float = 0.02) -> float | None:
    """Seconds until ``check()`` is true, polled every ``every`` s; ``None`` after ``timeout``."""
    began = time.monotonic()
    deadline = began + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic() - began
        time.sleep(every)
    return None


def tally(statuses: Sequence[int]) -> str:
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n} x {s}" for s, n in sorted(counts.items())) or "none"
