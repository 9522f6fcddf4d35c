"""Logging configured once per process: JSON lines that always carry role and replica, and
the gateway's ``X-Request-ID`` for lines written while a request is handled."""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
from contextvars import ContextVar
from typing import Any

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


#: The servers' own loggers (authscale.core.servers): their lines go through the app's handler.
SERVER_LOGGERS = ("hypercorn.error", "uvicorn", "uvicorn.error", "_granian", "granian")
#: Their access logs stay off: the gateway keeps the one access log.
SERVER_ACCESS_LOGGERS = ("hypercorn.access", "uvicorn.access", "granian.access")


def logging_config(role: str, replica: str, level: str) -> dict[str, Any]:
    """Every record, ours and the libraries', to stderr as one JSON line each (a dictConfig)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": f"{__name__}.JsonFormatter", "role": role, "replica": replica}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            **{name: {"handlers": [], "propagate": True} for name in SERVER_LOGGERS},
            **{
                name: {"handlers": [], "propagate": False, "level": "CRITICAL"}
                for name in SERVER_ACCESS_LOGGERS
            },
        },
    }


def configure_logging(role: str, replica: str, level: str) -> None:
    """Applied when the app is created: whatever the server configured before, it is replaced."""
    logging.config.dictConfig(logging_config(role, replica, level))
    # Hypercorn's access logger, were one set up, writes through its own object: turned off.
    logging.getLogger("hypercorn.access").disabled = True
