"""The JSON body reader refuses every malformed body with BadRequest, whatever it holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authscale.core.errors import BadRequest
from authscale.core.payloads import MAX_DEPTH, parse_json
from tests.inputs import deep_documents, json_values


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    return 0


def parsed_or_refused(raw: bytes) -> Any:
    """The parsed value, checked to be safe to use, or ``None`` when refused with BadRequest."""
    try:
        value = parse_json(raw)
    except BadRequest:
        return None
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # every string is valid Unicode
    assert depth_of(value) <= MAX_DEPTH
    return value


@given(st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused(raw: bytes) -> None:
    parsed_or_refused(raw)


@given(json_values)
def test_any_json_value_is_parsed_or_refused(value: Any) -> None:
    parsed_or_refused(json.dumps(value).encode())


@given(deep_documents)
def test_any_depth_is_parsed_or_refused(document: str) -> None:
    parsed_or_refused(document.encode())


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 1000,
        b"[" * 100_000,
        b'{"a":' * 1000,
        b'{"password": "\\ud800"}',
        b'{"\\udfff": 1}',
        b'["\\ud800\\u0041"]',
        b"\xff",
        b"",
    ],
)
def test_the_reported_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_json(raw)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    assert parse_json(b'{"password": "' + b"[" * 100 + b'\\""}') == {"password": "[" * 100 + '"'}
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
