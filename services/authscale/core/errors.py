"""One small error hierarchy; :func:`register_error_handlers` maps it to JSON responses."""

from __future__ import annotations

import logging

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class ConfigError(Exception):
    """A setting is missing or malformed; raised at start, before serving."""


class AuthscaleError(Exception):
    """An error with an HTTP status and a message safe to show to the client."""

    status = 400
    message = "Bad request"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(AuthscaleError):
    status = 400
    message = "Bad request"


class Unauthorized(AuthscaleError):
    status = 401
    message = "Unauthorized"


class InvalidCredentials(Unauthorized):
    message = "Invalid credentials"


class Forbidden(AuthscaleError):
    status = 403
    message = "Forbidden"


class TooManyRequests(AuthscaleError):
    status = 429
    message = "Too many requests"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class DependencyUnavailable(AuthscaleError):
    """A shared dependency (Redis, the issuer's JWKS) did not answer in time."""

    status = 503
    message = "Service temporarily unavailable"
    retry_after = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Overloaded(AuthscaleError):
    """Every password-hashing slot and queue place is taken: shed the login at once."""

    status = 503
    message = "Too many logins in progress; retry shortly"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"message": message})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(AuthscaleError)
    async def _authscale_error(error: AuthscaleError) -> Response:
        if isinstance(error, DependencyUnavailable):
            logger.warning("dependency unavailable: %s", error.__cause__ or error)
        return error_response(error.status, error.message, error.headers())

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response:
        # Keep the headers werkzeug computed (Allow on 405) but answer in JSON like the rest.
        headers = {name: value for name, value in error.get_headers() if name == "Allow"}
        return error_response(error.code or 500, error.name or "Error", headers)

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "Internal server error")
