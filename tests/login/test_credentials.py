"""Login bodies: well-formed ones parsed, malformed ones a 400, no password in a repr."""

from __future__ import annotations

import pytest

from authscale.core.errors import BadRequest
from authscale.login.credentials import MAX_PASSWORD_LENGTH, Credentials, parse_credentials


def test_valid_body_is_parsed() -> None:
    assert parse_credentials({"username": "admin", "password": "pw"}) == Credentials("admin", "pw")


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "admin",
        {},
        {"username": "admin"},
        {"password": "pw"},
        {"username": 7, "password": "pw"},
        {"username": "admin", "password": 7},
        {"username": "admin", "password": ""},
        {"username": "", "password": "pw"},
        {"username": "a" * 65, "password": "pw"},
        {"username": "admin\n", "password": "pw"},
        {"username": "user:*", "password": "pw"},
        {"username": "admin", "password": "x" * (MAX_PASSWORD_LENGTH + 1)},
    ],
)
def test_malformed_bodies_are_bad_requests(body: object) -> None:
    with pytest.raises(BadRequest):
        parse_credentials(body)


def test_repr_never_shows_the_password() -> None:
    assert "hunter2" not in repr(Credentials("admin", "hunter2"))
