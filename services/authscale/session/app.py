"""The stateful variant: an opaque session id in an HttpOnly cookie, sessions in shared Redis.

Run with ``hypercorn "authscale.session.app:create_app()"``.
"""

from __future__ import annotations

import hmac

from quart import Blueprint, Quart, Response, jsonify, request

from authscale.core.errors import Forbidden, Unauthorized
from authscale.core.metrics import AUTH_FAILURES
from authscale.core.payloads import json_body
from authscale.core.service import Service, create_service
from authscale.core.settings import Settings
from authscale.login.credentials import parse_credentials
from authscale.login.procedure import Logins
from authscale.session.store import Session, Sessions

ROLE = "session"


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_environ()
    service = create_service(ROLE, settings)
    service.app.register_blueprint(session_routes(service), url_prefix="/session")
    return service.app


def session_routes(service: Service) -> Blueprint:
    settings = service.settings
    cookie_name = settings.cookies.session_name
    blueprint = Blueprint(ROLE, __name__)
    logins = Logins(ROLE, service.redis, settings)
    sessions = Sessions(service.redis, settings.sessions)

    @blueprint.after_app_serving
    async def close_logins() -> None:
        logins.close()

    async def current_session() -> Session:
        session_id = request.cookies.get(cookie_name)
        if not session_id:
            AUTH_FAILURES.labels(ROLE, "no_cookie").inc()
            raise Unauthorized()
        session = await sessions.get(session_id)
        if session is None:
            AUTH_FAILURES.labels(ROLE, "unknown_or_expired").inc()
            raise Unauthorized()
        return session

    def require_csrf(session: Session) -> None:
        sent = request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            AUTH_FAILURES.labels(ROLE, "csrf").inc()
            raise Forbidden("Missing or invalid CSRF token")

    def clear_cookie(response: Response) -> Response:
        response.delete_cookie(
            cookie_name, path="/", secure=settings.cookies.secure, httponly=True, samesite="Lax"
        )
        return response

    @blueprint.post("/login")
    async def login() -> Response:
        user, device_id = await logins.authenticate(parse_credentials(await json_body()))
        previous = request.cookies.get(cookie_name)
        if previous and (old := await sessions.get(previous)) is not None:
            await sessions.end(old)
        # Always a fresh id: a cookie planted before login never becomes valid (no fixation).
        session = await sessions.create(user.username, epoch=user.epoch)
        response = jsonify({"message": "Login successful", "csrf_token": session.csrf_token})
        response.set_cookie(
            cookie_name,
            session.id,
            max_age=int(settings.sessions.absolute_timeout),
            path="/",
            secure=settings.cookies.secure,
            httponly=True,
            samesite="Lax",
        )
        logins.set_device_cookie(response, device_id)
        return response

    @blueprint.get("/dashboard")
    async def dashboard() -> Response:
        session = await current_session()
        return jsonify({"message": f"Welcome, {session.username}"})

    @blueprint.get("/me")
    async def me() -> Response:
        session = await current_session()
        return jsonify({"username": session.username, "csrf_token": session.csrf_token})

    @blueprint.post("/logout")
    async def logout() -> Response:
        session = await current_session()
        require_csrf(session)
        await sessions.end(session)
        return clear_cookie(jsonify({"message": "Logged out successfully"}))

    @blueprint.post("/logout-all")
    async def logout_all() -> Response:
        session = await current_session()
        require_csrf(session)
        ended = await sessions.end_all(session.username)
        return clear_cookie(
            jsonify({"message": "Logged out of every session", "sessions_ended": ended})
        )

    @blueprint.get("/ping")
    async def ping() -> Response:
        return jsonify({"message": "pong"})

    return blueprint
