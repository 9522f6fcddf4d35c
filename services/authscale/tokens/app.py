"""The stateless variant's API replicas: they verify access tokens with public keys alone.

Run with ``hypercorn "authscale.tokens.app:create_app()"``. Outside denylist mode a replica needs no
Redis at all: it is ready once it holds a key set, and keeps answering when Redis is down.
"""

from __future__ import annotations

from quart import Blueprint, Quart, Response, jsonify

from authscale.core.service import create_service
from authscale.core.settings import Settings
from authscale.tokens.access import AccessTokenVerifier
from authscale.tokens.bearer import Authenticator
from authscale.tokens.cache import VerifiedTokens
from authscale.tokens.denylist import Denylist
from authscale.tokens.keys.keyset import KeySet
from authscale.tokens.settings import TokenSettings

ROLE = "token"


def create_app(
    settings: Settings | None = None, token_settings: TokenSettings | None = None
) -> Quart:
    token_settings = token_settings or TokenSettings.from_environ()
    settings = settings or Settings.from_environ(uses_redis=token_settings.denylist)
    service = create_service(ROLE, settings, uses_redis=token_settings.denylist)

    cache = (
        VerifiedTokens(token_settings.verified_cache_size)
        if token_settings.verified_cache_size
        else None
    )
    keys = KeySet(token_settings.jwks, on_removed=cache.forget if cache else None)
    if token_settings.jwks.file is not None:
        keys.load_now()
    service.readiness_checks["jwks"] = keys.check_ready

    @service.app.before_serving
    async def load_keys() -> None:
        await keys.start()

    @service.app.after_serving
    async def stop_keys() -> None:
        await keys.stop()

    authenticator = Authenticator(
        ROLE,
        AccessTokenVerifier(token_settings.access, keys, cache),
        token_settings.access.cookie_name,
        Denylist(service.redis) if token_settings.denylist else None,
    )
    service.app.register_blueprint(token_routes(authenticator), url_prefix="/token")
    return service.app


def token_routes(authenticator: Authenticator) -> Blueprint:
    blueprint = Blueprint(ROLE, __name__)

    @blueprint.get("/dashboard")
    async def dashboard() -> Response:
        claims = await authenticator.authenticate()
        return jsonify({"message": f"Welcome, {claims.subject}"})

    @blueprint.get("/me")
    async def me() -> Response:
        """Who the token names; a cookie-mode page reloaded in the browser gets its CSRF value."""
        claims = await authenticator.authenticate()
        body: dict[str, object] = {"username": claims.subject, "expires_at": claims.expires_at}
        if claims.csrf is not None:
            body["csrf_token"] = claims.csrf
        return jsonify(body)

    @blueprint.get("/ping")
    async def ping() -> Response:
        return jsonify({"message": "pong"})

    return blueprint
