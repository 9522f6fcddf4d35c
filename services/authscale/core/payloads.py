"""Reading JSON request bodies: every malformed body is a 400, never a 500.

The body is held to I-JSON (RFC 7493) and a nesting bound, so what a handler receives is always
safe to use: every string encodes as UTF-8 (a lone surrogate such as ``"\\ud800"`` would raise
``UnicodeEncodeError`` wherever it is hashed, logged or stored) and no value is nested deeper
than :data:`MAX_DEPTH` (``[`` a thousand times would raise ``RecursionError`` in the parser).
"""

from __future__ import annotations

import json
from typing import Any

from quart import request

from authscale.core.errors import BadRequest

#: Our bodies are flat objects; a little room keeps the bound from ever meeting a real client.
MAX_DEPTH = 16


async def json_body() -> Any:
    """The decoded JSON body of the current request.

    Quart's ``get_json`` lets a body that is not UTF-8 escape as ``UnicodeDecodeError`` (a 500);
    here bytes, encoding and syntax are all checked and refused the same way.
    """
    if not request.mimetype or request.mimetype != "application/json":
        raise BadRequest("expected Content-Type: application/json")
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    return parse_json(raw)


def parse_json(raw: bytes) -> Any:
    """Decode ``raw`` as I-JSON nested at most :data:`MAX_DEPTH` deep, or raise BadRequest."""
    if _nesting_exceeds(raw, MAX_DEPTH):
        raise BadRequest(f"request body is nested deeper than {MAX_DEPTH}")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("request body is not valid JSON") from None
    if not _encodable(value):
        raise BadRequest("request body holds a string that is not valid Unicode")
    return value


def _nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether brackets outside strings open deeper than ``limit``: checked before parsing, so
    the parser never recurses on an attacker's depth. One pass, no recursion."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the common case, decided in C
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _encodable(value: Any) -> bool:
    """Whether every string in ``value`` (keys too) encodes as UTF-8; walked without recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True
