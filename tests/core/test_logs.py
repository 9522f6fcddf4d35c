"""No log line, the gateway's or a replica's, may hold a password, cookie value or CSRF token."""

from __future__ import annotations

import httpx

from authscale.lab.stack.local import LocalStack
from tests.conftest import add_user

SECRET_PASSWORD = "pw-that-must-never-be-logged-7f3a"


def test_no_credential_reaches_any_log_file(stack: LocalStack) -> None:
    username = add_user(stack.redis_url, password=SECRET_PASSWORD)
    secrets: list[str] = [SECRET_PASSWORD]
    with httpx.Client(base_url=stack.gateway_url) as client:
        client.post(
            "/session/login", json={"username": username, "password": "wrong-" + SECRET_PASSWORD}
        )
        login = client.post(
            "/session/login", json={"username": username, "password": SECRET_PASSWORD}
        )
        assert login.status_code == 200
        csrf = login.json()["csrf_token"]
        secrets += [client.cookies["authscale_session"], csrf]
        client.get("/session/dashboard?debug=" + csrf)
        client.post(
            "/session/login",
            content=b"{broken " + SECRET_PASSWORD.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert client.post("/session/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    logs = sorted((stack.run_dir / "logs").glob("*.log"))
    assert any(path.name == "gateway-access.log" for path in logs)
    for path in logs:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"{path.name} holds a credential"
