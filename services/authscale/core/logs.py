"""Logging configured once per process: JSON lines that always carry role and replica, and
the gateway's ``X-Request-ID`` for lines written while a request is handled."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar

#: nginx's ``$request_id`` is 32 hex digits; anything else a client sends is not logged.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")

#: The request being handled in this task; set by the service before each request.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def bind_request_id(value: str | None) -> None:
    REQUEST_ID.set(value if value and REQUEST_ID_PATTERN.fullmatch(value) else None)


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str, replica: str) -> None:
        super().__init__()
        self._role = role
        self._replica = replica

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "role": self._role,
            "replica": self._replica,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(role: str, replica: str, level: str) -> None:
    """Send every record, ours and the libraries', to stderr as one JSON line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(role, replica))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Hypercorn set up its own plain-text handler before loading the app; its records go
    # through ours instead. Its access log stays off: the gateway keeps the one access log.
    logging.getLogger("hypercorn.error").handlers.clear()
    logging.getLogger("hypercorn.access").disabled = True
