"""No log line, the gateway's or a replica's, may hold a credential of either variant.

Credentials are a password, a session or device cookie, a CSRF token, and the token variant's
access and refresh tokens, sent as a body, a Bearer header or cookie-mode cookies.
"""

from __future__ import annotations

import json

import httpx
import pytest

from authscale.lab.stack.local import LocalStack
from authscale.session.app import create_app
from tests.conftest import add_user, make_settings

SECRET_PASSWORD = "pw-that-must-never-be-logged-7f3a"


def session_flow(client: httpx.Client, username: str) -> list[str]:
    client.post(
        "/session/login", json={"username": username, "password": "wrong-" + SECRET_PASSWORD}
    )
    login = client.post("/session/login", json={"username": username, "password": SECRET_PASSWORD})
    assert login.status_code == 200
    csrf = login.json()["csrf_token"]
    secrets = [client.cookies["authscale_session"], csrf]
    client.get("/session/dashboard?debug=" + csrf)
    client.post(
        "/session/login",
        content=b"{broken " + SECRET_PASSWORD.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert client.post("/session/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    return secrets


def token_flow(client: httpx.Client, username: str) -> list[str]:
    credentials = {"username": username, "password": SECRET_PASSWORD}
    login = client.post("/token/login", json=credentials)
    assert login.status_code == 200
    access, refresh = login.json()["access_token"], login.json()["refresh_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert client.get("/token/dashboard", headers=bearer).status_code == 200
    client.get("/token/dashboard?debug=" + access)
    client.get("/token/dashboard", headers={"Authorization": f"Bearer {access}x"})
    rotated = client.post("/token/refresh", json={"refresh_token": refresh})
    assert rotated.status_code == 200
    new_access, new_refresh = rotated.json()["access_token"], rotated.json()["refresh_token"]
    assert client.post("/token/logout", json={"refresh_token": new_refresh}).status_code == 200
    cookie_login = client.post("/token/login?mode=cookie", json=credentials)
    assert cookie_login.status_code == 200
    csrf = cookie_login.json()["csrf_token"]
    cookie_access = client.cookies["authscale_access"]
    assert client.get("/token/dashboard").status_code == 200
    assert client.post("/token/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    return [access, refresh, new_access, new_refresh, csrf, cookie_access]


def test_no_credential_reaches_any_log_file(stack: LocalStack) -> None:
    username = add_user(stack.redis_url, password=SECRET_PASSWORD)
    secrets: list[str] = [SECRET_PASSWORD]
    with httpx.Client(base_url=stack.gateway_url) as client:
        secrets += session_flow(client, username)
        secrets.append(client.cookies["authscale_device"])
    with httpx.Client(base_url=stack.gateway_url) as client:
        secrets += token_flow(client, username)
    logs = sorted((stack.run_dir / "logs").glob("*.log"))
    assert {"gateway-access.log", "issuer-1.log", "token-1.log"} <= {path.name for path in logs}
    for path in logs:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"{path.name} holds a credential"


async def test_a_replicas_log_lines_carry_the_gateways_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Redis unreachable: the replica logs a warning while answering, naming the request."""
    settings = make_settings(
        "redis://:a-real-password@127.0.0.1:9/0", AUTHSCALE_REDIS_TIMEOUT="0.2"
    )
    app = create_app(settings)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        request_id = "0123456789abcdef0123456789abcdef"
        response = await client.post(
            "/session/login",
            json={"username": "alice", "password": "pw"},
            headers={"X-Request-ID": request_id},
        )
        assert response.status_code == 503
        forged = await client.post(
            "/session/login",
            json={"username": "alice", "password": "pw"},
            headers={"X-Request-ID": 'x", "level": "forged'},
        )
        assert forged.status_code == 503
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    warnings = [line for line in lines if line["message"].startswith("dependency unavailable")]
    assert [line.get("request_id") for line in warnings] == [request_id, None]
