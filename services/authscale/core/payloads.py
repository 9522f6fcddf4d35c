"""Reading JSON request bodies: every malformed body is a 400, never a 500."""

from __future__ import annotations

import json
from typing import Any

from quart import request

from authscale.core.errors import BadRequest


async def json_body() -> Any:
    """The decoded JSON body of the current request.

    Quart's ``get_json`` lets a body that is not UTF-8 escape as ``UnicodeDecodeError`` (a 500);
    here bytes, encoding and syntax are all checked and refused the same way.
    """
    if not request.mimetype or request.mimetype != "application/json":
        raise BadRequest("expected Content-Type: application/json")
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("request body is not valid JSON") from None
