"""Logins made up to the moment of a kill, checked once the cluster is whole again.

Redis replicates asynchronously: a master answers a write before its replica has it, so a master
killed just after a login may take that login's session or refresh family with it. To count
rather than assume, threads log accounts of the doomed shard in, one fresh account per login
(a user keeps at most ``SESSIONS_PER_USER`` sessions: reusing one would evict sessions for a
reason of its own), and record when each answer arrived. A 200 that arrives after the kill but
before the replica took over was written to the killed master before it died (nothing else could
take the write): such logins count with those answered just before the kill. After the
failover, each is asked once more: the dashboard for a session, a refresh for a token pair; 200
kept, 401 lost.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import httpx

from authscale.lab.faults.probes import TIMEOUT
from authscale.login.command import DEFAULT_SEED_PASSWORD

#: Login threads: a login hashes its password (Argon2id), and under the full load of 2 cores
#: 4 threads made about 1.5 logins a second; more threads win logins a larger share of the CPU.
THREADS = 8


@dataclass
class Login:
    variant: str
    username: str
    #: When the login's answer arrived.
    at: float
    client: httpx.Client
    refresh_token: str = ""


@dataclass
class LateLogins:
    gateway_url: str
    #: Accounts on the shard to be killed, each logged in once at most.
    accounts: Sequence[str]
    logins: list[Login] = field(default_factory=list)
    _next: Iterator[str] = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = iter(self.accounts)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._log_in, daemon=True) for _ in range(THREADS)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """No new login; one in flight finishes in its thread (see :meth:`join`)."""
        self._stop.set()

    def join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def close(self) -> None:
        self.join()
        for login in self.logins:
            login.client.close()

    def _account(self) -> str | None:
        with self._lock:
            return next(self._next, None)

    def _log_in(self) -> None:
        variants = ("session", "token")
        turn = 0
        while not self._stop.is_set() and (username := self._account()) is not None:
            variant = variants[turn % 2]
            turn += 1
            client = httpx.Client(base_url=self.gateway_url, timeout=TIMEOUT)
            credentials = {"username": username, "password": DEFAULT_SEED_PASSWORD}
            try:
                answer = client.post(f"/{variant}/login", json=credentials)
            except httpx.HTTPError:
                client.close()
                continue
            if answer.status_code != 200:
                client.close()
                continue
            login = Login(variant, username, time.time(), client)
            if variant == "token":
                login.refresh_token = answer.json()["refresh_token"]
            with self._lock:
                self.logins.append(login)

    def answered(self, start: float, end: float) -> list[Login]:
        """Logins answered (200) from ``start`` up to ``end``."""
        return [login for login in self.logins if start <= login.at < end]

    def earlier(self, moment: float, seconds: float) -> list[Login]:
        """Logins answered more than ``seconds`` before ``moment``."""
        return [login for login in self.logins if login.at < moment - seconds]


def kept(login: Login) -> int:
    """The session's dashboard, or the family's refresh: 200 kept, 401 lost."""
    if login.variant == "session":
        return login.client.get("/session/dashboard").status_code
    answer = login.client.post("/token/refresh", json={"refresh_token": login.refresh_token})
    return answer.status_code


def check(logins: Sequence[Login]) -> dict[str, Counter[int]]:
    """Variant -> statuses of :func:`kept` for ``logins``."""
    found: dict[str, Counter[int]] = {"session": Counter(), "token": Counter()}
    for login in logins:
        found[login.variant][kept(login)] += 1
    return found
