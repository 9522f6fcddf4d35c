"""People using the session variant: an HttpOnly cookie that the gateway routes to any replica."""

from __future__ import annotations

from locust import FastHttpUser, task

from checks import expect
from mix import think_time
from seeded_accounts import next_account


class SessionReader(FastHttpUser):
    """Logs in once with their own account, then mostly reads the dashboard.

    Now and then they check the service is there (ping), or log out and log in again. The
    weights of those actions are Locust options (``--dashboard-weight`` and so on).
    """

    variant = "session"
    scenario = "steady"
    host = "http://localhost:8080"
    wait_time = think_time

    def on_start(self) -> None:
        self.username, self.password = next_account(self.environment)
        self.csrf_token: str | None = None
        self.log_in()

    def log_in(self) -> None:
        self.csrf_token = None
        credentials = {"username": self.username, "password": self.password}
        with self.rest("POST", "/session/login", json=credentials, name="session login") as resp:
            body = expect(resp, 200, message="Login successful", csrf_token=str)
            if body is not None:
                self.csrf_token = body["csrf_token"]

    @task(100)
    def read_dashboard(self) -> None:
        if self.csrf_token is None:
            # The last login failed (and was counted as a failure): try again first.
            self.log_in()
            return
        with self.rest("GET", "/session/dashboard", name="session dashboard") as resp:
            expect(resp, 200, message=f"Welcome, {self.username}")

    @task(0)
    def ping(self) -> None:
        with self.rest("GET", "/session/ping", name="session ping") as resp:
            expect(resp, 200, message="pong")

    @task(0)
    def log_out_and_in_again(self) -> None:
        if self.csrf_token is not None:
            headers = {"X-CSRF-Token": self.csrf_token}
            with self.rest("POST", "/session/logout", headers=headers, name="session logout") as r:
                expect(r, 200, message="Logged out successfully")
            with self.rest("GET", "/session/dashboard", name="session dashboard after logout") as r:
                # The old cookie must be dead everywhere: a 200 here is a wrong answer.
                expect(r, 401, message="Unauthorized")
        self.log_in()


class SessionLoginStorm(FastHttpUser):
    """Arrives with everyone else at nine o'clock: logs in, and logs out to make room.

    Every iteration costs one argon2id hash, which is what a storm of logins is about.
    """

    variant = "session"
    scenario = "login-storm"
    host = "http://localhost:8080"
    wait_time = think_time

    def on_start(self) -> None:
        self.username, self.password = next_account(self.environment)

    @task
    def log_in_and_out(self) -> None:
        credentials = {"username": self.username, "password": self.password}
        with self.rest("POST", "/session/login", json=credentials, name="session login") as resp:
            body = expect(resp, 200, message="Login successful", csrf_token=str)
        if body is None:
            return
        headers = {"X-CSRF-Token": body["csrf_token"]}
        with self.rest("POST", "/session/logout", headers=headers, name="session logout") as resp:
            expect(resp, 200, message="Logged out successfully")
