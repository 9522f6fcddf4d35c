"""People using the token variant: a Bearer access token, verified by any token replica."""

from __future__ import annotations

import time
from typing import Any

from locust import FastHttpUser, task

from checks import expect
from mix import think_time
from seeded_accounts import next_account

#: Refresh this long before the access token expires, as a well-behaved client does.
REFRESH_MARGIN = 30.0
#: Statuses after which a refresh is tried again later, and how much later (seconds).
RETRY_LATER = (429, 502, 503, 504)
REFRESH_RETRY = 1.0


class TokenReader(FastHttpUser):
    """Logs in once with their own account, then mostly reads the dashboard with the token.

    They refresh the pair before the access token expires, and, as weighted by the options,
    refresh early, ping, or log out and log in again.
    """

    variant = "token"
    scenario = "steady"
    host = "http://localhost:8080"
    wait_time = think_time

    def on_start(self) -> None:
        self.username, self.password = next_account(self.environment)
        self.access_token: str | None = None
        self.refresh_token = ""
        self.refresh_due = 0.0
        self.expires_at = 0.0
        self.log_in()

    def log_in(self) -> None:
        self.access_token = None
        credentials = {"username": self.username, "password": self.password}
        with self.rest("POST", "/token/login", json=credentials, name="token login") as resp:
            self._take(expect_pair(resp))

    @task(100)
    def read_dashboard(self) -> None:
        if self.access_token is None:
            # The last login or refresh failed (and was counted): log in again first.
            self.log_in()
            return
        if time.monotonic() >= self.refresh_due:
            self.refresh()
            return
        with self.rest(
            "GET", "/token/dashboard", headers=self._bearer(), name="token dashboard"
        ) as resp:
            expect(resp, 200, message=f"Welcome, {self.username}")

    @task(0)
    def ping(self) -> None:
        with self.rest("GET", "/token/ping", name="token ping") as resp:
            expect(resp, 200, message="pong")

    @task(1)
    def refresh(self) -> None:
        if self.access_token is None:
            self.log_in()
            return
        body = {"refresh_token": self.refresh_token}
        with self.rest("POST", "/token/refresh", json=body, name="token refresh") as resp:
            pair = expect_pair(resp)
            if pair is None and resp.status_code in RETRY_LATER and self._still_valid():
                # The issuer or its Redis is away for a while: a good client keeps using its
                # access token (still valid) and tries to refresh again a little later.
                self.refresh_due = time.monotonic() + REFRESH_RETRY
                return
            self._take(pair)

    @task(0)
    def log_out_and_in_again(self) -> None:
        if self.access_token is not None:
            body = {"refresh_token": self.refresh_token}
            with self.rest("POST", "/token/logout", json=body, name="token logout") as resp:
                expect(resp, 200)
        self.log_in()

    def _take(self, pair: dict[str, object] | None) -> None:
        if pair is None:
            self.access_token = None
            return
        self.access_token = str(pair["access_token"])
        self.refresh_token = str(pair["refresh_token"])
        lifetime = float(pair["expires_in"])  # type: ignore[arg-type]
        self.refresh_due = time.monotonic() + max(lifetime - REFRESH_MARGIN, lifetime / 2)
        self.expires_at = time.monotonic() + lifetime

    def _still_valid(self) -> bool:
        return self.access_token is not None and time.monotonic() < self.expires_at - 5

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class TokenLoginStorm(FastHttpUser):
    """Arrives with everyone else at nine o'clock: logs in, and logs out to end the family.

    Every iteration costs one argon2id hash and one RS256 signature at the issuer.
    """

    variant = "token"
    scenario = "login-storm"
    host = "http://localhost:8080"
    wait_time = think_time

    def on_start(self) -> None:
        self.username, self.password = next_account(self.environment)

    @task
    def log_in_and_out(self) -> None:
        credentials = {"username": self.username, "password": self.password}
        with self.rest("POST", "/token/login", json=credentials, name="token login") as resp:
            pair = expect_pair(resp)
        if pair is None:
            return
        body = {"refresh_token": pair["refresh_token"]}
        with self.rest("POST", "/token/logout", json=body, name="token logout") as resp:
            expect(resp, 200)


def expect_pair(resp: Any) -> dict[str, object] | None:
    """A login or refresh answer: both tokens, Bearer, and a lifetime."""
    body = expect(
        resp,
        200,
        access_token=str,
        refresh_token=str,
        token=str,
        token_type="Bearer",  # noqa: S106 - a scheme name
    )
    if body is None:
        return None
    if body["token"] != body["access_token"] or not isinstance(body.get("expires_in"), int):
        resp.failure(f"inconsistent token pair: token or expires_in in {sorted(body)}")
        return None
    return body
