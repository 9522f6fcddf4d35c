"""``authscale users passwd`` ends every session and revokes every refresh family of the user."""

from __future__ import annotations

import asyncio
import io

from authscale.cli import main
from token_fixtures import FAST_PASSWORDS, client_of, issuer_app, login


async def test_passwd_revokes_every_refresh_family(
    issuer_environ, user, redis_url, monkeypatch, capsys
):
    async with client_of(issuer_app(issuer_environ)) as issuer:
        logins = [await login(issuer) for _ in range(2)]
        monkeypatch.setenv("AUTHSCALE_REDIS_URL", redis_url)
        for name, value in FAST_PASSWORDS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr("sys.stdin", io.StringIO("a brand new passphrase\n"))
        # The command runs its own event loop, as it does from a shell.
        code = await asyncio.to_thread(main, ["users", "passwd", "alice", "--password-stdin"])
        assert code == 0
        assert "revoked 2 refresh token families" in capsys.readouterr().out
        for body in logins:
            response = await issuer.post(
                "/token/refresh", json={"refresh_token": body["refresh_token"]}
            )
            assert response.status_code == 401
        relogin = await issuer.post(
            "/token/login", json={"username": "alice", "password": "a brand new passphrase"}
        )
        assert relogin.status_code == 200
