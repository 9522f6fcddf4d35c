"""Parsing and validating login bodies: everything an attacker sends is checked before use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from authscale.core.errors import BadRequest

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
#: argon2 would hash a megabyte happily; refusing long passwords first keeps logins cheap to refuse.
MAX_PASSWORD_LENGTH = 256


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never let a password reach a log line through repr()
        return f"Credentials(username={self.username!r}, password='***')"


def check_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME_PATTERN.fullmatch(username):
        raise BadRequest("username must be 1-64 characters of letters, digits and . _ @ -")
    return username


def check_password(password: object) -> str:
    if not isinstance(password, str) or not password:
        raise BadRequest("password must be a non-empty string")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadRequest(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    try:
        # argon2 hashes the UTF-8 bytes: a lone surrogate would fail there, after the throttle.
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("password must be valid Unicode (no lone surrogates)") from None
    return password


def parse_credentials(body: Any) -> Credentials:
    """Validate a decoded JSON body ``{"username": str, "password": str}``."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object with username and password")
    return Credentials(
        username=check_username(body.get("username")),
        password=check_password(body.get("password")),
    )
