"""Login bodies: well-formed ones parsed, malformed ones a 400, no password in a repr."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authscale.core.errors import BadRequest
from authscale.login.credentials import MAX_PASSWORD_LENGTH, Credentials, parse_credentials
from tests.inputs import json_values


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


def parsed_or_refused(body: object) -> None:
    try:
        credentials = parse_credentials(body)
    except BadRequest:
        return
    credentials.password.encode("utf-8")  # what argon2 will hash
    assert 0 < len(credentials.password) <= MAX_PASSWORD_LENGTH


@given(json_values)
def test_any_json_value_is_parsed_or_refused(body: object) -> None:
    parsed_or_refused(body)


@given(st.fixed_dictionaries({"username": json_values, "password": json_values}))
def test_any_member_values_are_parsed_or_refused(body: object) -> None:
    parsed_or_refused(body)


def test_a_lone_surrogate_in_the_password_is_refused() -> None:
    with pytest.raises(BadRequest):
        parse_credentials({"username": "admin", "password": "\ud800"})
