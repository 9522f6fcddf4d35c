"""What a right answer looks like: anything else is reported to Locust as a failure."""

from __future__ import annotations

from typing import Any


def expect(response: Any, status: int, **fields: object) -> dict[str, Any] | None:
    """Mark ``response`` failed unless it has ``status`` and a JSON body with these fields.

    A field given as ``str`` must be present and a non-empty string (its value is a secret or
    changes every time); any other value must match exactly. Returns the body when it is right.
    """
    body = response.js
    if response.status_code != status:
        response.failure(f"expected {status}, got {response.status_code}: {_short(response)}")
        return None
    if not isinstance(body, dict):
        response.failure(f"expected a JSON object, got {_short(response)}")
        return None
    for name, wanted in fields.items():
        value = body.get(name)
        if wanted is str:
            if not isinstance(value, str) or not value:
                response.failure(f"{name!r} missing or empty in {sorted(body)}")
                return None
        elif value != wanted:
            response.failure(f"{name!r} is {value!r}, expected {wanted!r}")
            return None
    # Right, whatever the status: an expected 401 is a success, not Locust's default failure.
    response.success()
    return body


def _short(response: Any) -> str:
    text = response.text or ""
    return text[:200]
