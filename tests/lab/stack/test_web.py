"""The tutorial's page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) opens it on its own origin, served by a local stack's
page server (:mod:`authscale.lab.stack.web`), and runs every flow against the real gateway:
session, token with the Bearer header, token in cookie mode. Each step is checked on the page's
own text. Without a browser these tests skip, except under CI, where they fail.

``AUTHSCALE_SCREENSHOT=PATH`` saves the page after the last flow (docs/browser-client.png).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from authscale.lab.stack import web
from authscale.lab.stack.local import LocalStack
from authscale.lab.stack.processes import free_port
from tests.conftest import PASSWORD, add_user, stack_config

#: Generous: a login hashes a password on a shared machine. Only "does not hang" is checked.
ANSWER_TIMEOUT = 30


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


@pytest.fixture(scope="module")
def page_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(
        stack_config(tmp_path_factory.mktemp("web"), replicas=2, web_port=free_port())
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        problem = "chromium and chromium-driver are not installed (apt-get install them)"
        if in_ci():
            pytest.fail(f"CI must run the browser test, but {problem}")
        pytest.skip(problem)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    if os.geteuid() == 0:
        # Chromium refuses to run as root inside its sandbox.
        options.add_argument("--no-sandbox")
    # The driver is named outright, so Selenium never tries to download one.
    session = webdriver.Chrome(service=webdriver.ChromeService(driver), options=options)
    yield session
    session.quit()


class Page:
    """The page as a user sees it: buttons per flow, and the log of answers, newest first."""

    def __init__(self, browser: WebDriver, url: str, username: str) -> None:
        self.browser = browser
        self.url = url
        self.username = username

    def open(self) -> None:
        """Load (or reload) the page, wait for its start, and type the user's credentials."""
        self.browser.get(self.url)
        body = self.browser.find_element(By.TAG_NAME, "body")
        self._wait(lambda _: body.get_attribute("data-ready") == "true")
        for name, value in (("username", self.username), ("password", PASSWORD)):
            self.browser.find_element(By.NAME, name).send_keys(value)

    def press(self, flow: str, action: str) -> str:
        """Click one button and return the log line of the answer it got."""
        before = len(self._entries())
        self.browser.find_element(
            By.CSS_SELECTOR, f'[data-flow="{flow}"] button[data-action="{action}"]'
        ).click()
        self._wait(lambda _: len(self._entries()) > before)
        return str(self._entries()[0].text)

    def state(self, flow: str) -> str:
        return str(self.browser.find_element(By.CSS_SELECTOR, f'[data-state="{flow}"]').text)

    def _entries(self) -> list[object]:
        return list(self.browser.find_elements(By.CSS_SELECTOR, "#log li"))

    def _wait(self, condition: object) -> None:
        WebDriverWait(self.browser, ANSWER_TIMEOUT).until(condition)  # type: ignore[arg-type]


@pytest.fixture
def page(browser: WebDriver, page_stack: LocalStack) -> Page:
    assert page_stack.web_url is not None
    # Every cookie of every path: delete_all_cookies() reaches only those the current page sees,
    # and the token cookies live under /token.
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})  # type: ignore[attr-defined]
    opened = Page(browser, page_stack.web_url, add_user(page_stack.redis_url))
    opened.open()
    return opened


@pytest.mark.lab
def test_the_page_names_its_own_origin_and_the_gateway(page: Page, page_stack: LocalStack) -> None:
    text = page.browser.find_element(By.TAG_NAME, "header").text
    assert page_stack.web_url in text
    assert web.origin(page_stack.config.gateway_port) in text
    # A fresh page holds no session: the cookie flows asked the gateway, and were refused.
    assert page.state("session") == "logged out"
    assert page.state("cookie") == "logged out"


@pytest.mark.lab
def test_session_login_dashboard_reload_and_logouts(page: Page) -> None:
    user = page.username
    assert "POST /session/login → 200 from session-" in page.press("session", "login")
    assert page.state("session").startswith("logged in")
    assert "→ 200 from session-" in (line := page.press("session", "dashboard"))
    assert f"Welcome, {user}" in line
    # A reload keeps the cookie and loses the page's memory: /session/me gives the CSRF back,
    # so the logout that needs it still works.
    page.open()
    assert page.state("session").startswith("logged in")
    assert "POST /session/logout → 200" in page.press("session", "logout")
    assert "GET /session/dashboard → 401" in page.press("session", "dashboard")
    assert "POST /session/login → 200" in page.press("session", "login")
    line = page.press("session", "logoutEverywhere")
    assert "POST /session/logout-all → 200" in line
    assert '"sessions_ended":1' in line
    assert page.state("session") == "logged out"


@pytest.mark.lab
def test_token_bearer_login_dashboard_refresh_and_logouts(page: Page) -> None:
    user = page.username
    line = page.press("bearer", "login")
    assert "POST /token/login → 200 from issuer-1" in line
    # The log shows that tokens came, never the tokens themselves.
    assert '"token_type":"Bearer"' in line
    assert '"access_token":"eyJhbGci…"' in line
    assert f"Welcome, {user}" in page.press("bearer", "dashboard")
    assert "POST /token/refresh → 200 from issuer-1" in page.press("bearer", "refresh")
    assert f"Welcome, {user}" in page.press("bearer", "dashboard")
    assert "POST /token/logout → 200" in page.press("bearer", "logout")
    assert page.state("bearer") == "logged out"
    # The page forgot its tokens: nothing to send (the access token itself lives until `exp`).
    assert "GET /token/dashboard → 401" in page.press("bearer", "dashboard")
    page.press("bearer", "login")
    assert '"families_revoked":1' in page.press("bearer", "logoutEverywhere")


@pytest.mark.lab
def test_token_cookie_mode_login_dashboard_refresh_reload_and_logouts(page: Page) -> None:
    user = page.username
    line = page.press("cookie", "login")
    assert "POST /token/login?mode=cookie → 200 from issuer-1" in line
    assert "access_token" not in line
    assert f"Welcome, {user}" in page.press("cookie", "dashboard")
    assert "POST /token/refresh → 200 from issuer-1" in page.press("cookie", "refresh")
    page.open()
    assert page.state("cookie").startswith("logged in")
    assert f"Welcome, {user}" in page.press("cookie", "dashboard")
    assert "POST /token/logout → 200" in page.press("cookie", "logout")
    # Logout cleared both cookies: the dashboard has nothing to verify.
    assert "GET /token/dashboard → 401" in page.press("cookie", "dashboard")
    page.press("cookie", "login")
    assert '"families_revoked":1' in page.press("cookie", "logoutEverywhere")


@pytest.mark.lab
def test_every_flow_side_by_side_for_the_screenshot(page: Page) -> None:
    """One login, dashboard and refresh per flow, the page saved where asked."""
    for flow in ("session", "bearer", "cookie"):
        page.press(flow, "login")
        assert "→ 200" in page.press(flow, "dashboard")
    page.press("bearer", "refresh")
    page.press("cookie", "refresh")
    assert all(page.state(flow).startswith("logged in") for flow in ("session", "bearer", "cookie"))
    target = os.environ.get("AUTHSCALE_SCREENSHOT")
    if target:
        assert page.browser.save_screenshot(str(Path(target).resolve()))


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    """``authscale web``'s server alone, in a thread, calling a gateway on port 8080."""
    served = web.server("127.0.0.1", free_port(), web.origin(8080))
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{served.server_address[1]}"
    served.shutdown()
    served.server_close()


def test_the_page_may_talk_to_itself_and_the_gateway_only(page_server: str) -> None:
    page = httpx.get(f"{page_server}/")
    assert page.status_code == 200 and "<title>authscale" in page.text
    assert page.headers["Content-Security-Policy"].startswith(
        "default-src 'self'; connect-src 'self' http://localhost:8080;"
    )
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = httpx.get(f"{page_server}/api.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    # The page learns the gateway from its own server, never from its address.
    config = httpx.get(f"{page_server}/config.json?api=http://evil.example")
    assert config.json() == {"api": "http://localhost:8080"}


def test_the_page_server_serves_the_page_and_nothing_else(page_server: str) -> None:
    for path in ("/nope.js", "/../pyproject.toml", "/%2e%2e/__init__.py"):
        assert httpx.get(f"{page_server}{path}").status_code == 404, path
    assert httpx.post(f"{page_server}/config.json").status_code == 501
