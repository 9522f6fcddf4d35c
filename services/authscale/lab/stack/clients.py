"""The stack seen from a client, with the standard library only: log in, get a credential.

Commands that drive load (``authscale bench``) log in once here and hand the credential to the
load generator as a header.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from typing import Any

from authscale.lab.stack.config import DEMO_USER
from authscale.lab.stack.processes import StackError

SESSION_COOKIE = "authscale_session"


def log_in(gateway_url: str, variant: str, credentials: tuple[str, str] = DEMO_USER) -> str:
    """Log in through the gateway; return the header that carries the credential.

    The credential is checked on the dashboard before it is handed out, so a load run never
    measures the speed of refusals.
    """
    username, password = credentials
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(  # noqa: S310 - the stack's own loopback URL
        f"{gateway_url}/{variant}/login",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with _open(request) as response:
        answer = json.load(response)
        cookies = SimpleCookie()
        for value in response.headers.get_all("Set-Cookie") or []:
            cookies.load(value)
    if variant == "session":
        if SESSION_COOKIE not in cookies:
            raise StackError(f"the session login set no {SESSION_COOKIE} cookie")
        header = f"Cookie: {SESSION_COOKIE}={cookies[SESSION_COOKIE].value}"
    else:
        header = f"Authorization: Bearer {answer['access_token']}"
    check = urllib.request.Request(  # noqa: S310 - the stack's own loopback URL
        f"{gateway_url}/{variant}/dashboard", headers=dict([header.split(": ", 1)])
    )
    with _open(check) as response:
        message = json.load(response).get("message")
    if message != f"Welcome, {username}":
        raise StackError(f"the {variant} dashboard answered {message!r} to a fresh login")
    return header


def _open(request: urllib.request.Request) -> Any:
    try:
        return urllib.request.urlopen(request, timeout=10)  # noqa: S310 - loopback
    except urllib.error.HTTPError as error:
        raise StackError(
            f"{request.get_method()} {request.full_url} answered {error.code}: "
            f"{error.read()[:200].decode(errors='replace')}"
        ) from error
    except OSError as error:
        raise StackError(f"{request.full_url} could not be reached: {error}") from error
