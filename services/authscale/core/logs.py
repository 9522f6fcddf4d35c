"""Logging configured once per process: JSON lines that always carry role and replica."""

from __future__ import annotations

import json
import logging
import sys
import time


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
