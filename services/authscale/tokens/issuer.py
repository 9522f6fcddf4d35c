"""The issuer: checks credentials, signs access tokens, rotates and revokes refresh tokens.

Run with ``hypercorn "authscale.tokens.issuer:create_app()"``. Only issuer processes hold private
keys;
the gateway routes ``/token/login``, ``/token/refresh``, ``/token/logout``, ``/token/logout-all``
and ``/.well-known/jwks.json`` here.
"""

from __future__ import annotations

import secrets
from typing import Any

from quart import Blueprint, Quart, Response, jsonify, request

from authscale.core.errors import BadRequest, Forbidden, Unauthorized
from authscale.core.metrics import AUTH_FAILURES
from authscale.core.payloads import json_body
from authscale.core.service import Service, create_service
from authscale.core.settings import Settings
from authscale.login.credentials import parse_credentials
from authscale.login.procedure import Logins
from authscale.tokens.access import AccessTokenSigner, AccessTokenVerifier
from authscale.tokens.bearer import CSRF_HEADER, Authenticator
from authscale.tokens.cookies import TokenCookies
from authscale.tokens.keys.signing import IssuerKeys
from authscale.tokens.refresh import IssuedRefreshToken, RefreshRefused, RefreshTokens
from authscale.tokens.settings import IssuerSettings

ROLE = "issuer"
MODES = ("body", "cookie")


class InvalidRefreshToken(Unauthorized):
    message = "Invalid refresh token"


def create_app(
    settings: Settings | None = None, issuer_settings: IssuerSettings | None = None
) -> Quart:
    issuer_settings = issuer_settings or IssuerSettings.from_environ()
    settings = settings or Settings.from_environ()
    # Read before serving: a missing or unreadable key stops the start, naming the variable.
    keys = IssuerKeys.load(issuer_settings.keys_dir, issuer_settings.access.retention)
    service = create_service(ROLE, settings)
    service.readiness_checks["signing_key"] = keys.check_ready
    service.app.register_blueprint(
        issuer_routes(service, issuer_settings, keys), url_prefix="/token"
    )

    @service.app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        return jsonify(await keys.jwks())

    return service.app


def issuer_routes(service: Service, settings: IssuerSettings, keys: IssuerKeys) -> Blueprint:
    blueprint = Blueprint(ROLE, __name__)
    logins = Logins(ROLE, service.redis, service.settings)
    refresh_tokens = RefreshTokens(service.redis, settings.refresh, settings.access.retention)
    signer = AccessTokenSigner(settings.access)
    cookies = TokenCookies(
        settings.access, settings.refresh, secure=service.settings.cookies.secure
    )
    authenticator = Authenticator(
        ROLE, AccessTokenVerifier(settings.access, keys), settings.access.cookie_name
    )
    expires_in = int(settings.access.lifetime)

    @blueprint.after_app_serving
    async def close_logins() -> None:
        logins.close()

    async def respond(
        status_message: str, refresh: IssuedRefreshToken, csrf: str | None
    ) -> Response:
        """Body mode returns both tokens; cookie mode (``csrf`` set) puts them in cookies."""
        key = await keys.signing_key()
        access, _ = signer.sign(key, refresh.username, refresh.family, csrf=csrf)
        if csrf is None:
            return jsonify(
                {
                    # `token` keeps the tutorial's client (`data.token`) working unchanged.
                    "token": access,
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": expires_in,
                    "refresh_token": refresh.token,
                }
            )
        body = {"message": status_message, "expires_in": expires_in, "csrf_token": csrf}
        return cookies.set(jsonify(body), access, refresh)

    @blueprint.post("/login")
    async def login() -> Response:
        mode = request.args.get("mode", "body")
        if mode not in MODES:
            raise BadRequest("mode must be body or cookie")
        credentials = parse_credentials(await json_body())
        # Fail before the password check costs anything if no key could sign the answer.
        await keys.signing_key()
        user, device_id = await logins.authenticate(credentials)
        csrf = secrets.token_urlsafe(32) if mode == "cookie" else None
        refresh = await refresh_tokens.start(user.username, epoch=user.epoch, csrf=csrf)
        response = await respond("Login successful", refresh, csrf)
        logins.set_device_cookie(response, device_id)
        return response

    @blueprint.post("/refresh")
    async def refresh() -> Response:
        await keys.signing_key()
        presented = await body_refresh_token()
        csrf: str | None = None
        if presented is None:
            presented = request.cookies.get(cookies.refresh_name)
            if not presented:
                AUTH_FAILURES.labels(ROLE, "refresh_missing").inc()
                raise InvalidRefreshToken()
            csrf = request.headers.get(CSRF_HEADER, "")
            if not csrf:
                AUTH_FAILURES.labels(ROLE, "csrf").inc()
                raise Forbidden("Missing or invalid CSRF token")
        try:
            issued = await refresh_tokens.rotate(presented, csrf=csrf)
        except RefreshRefused as refused:
            if refused.outcome == "csrf":
                AUTH_FAILURES.labels(ROLE, "csrf").inc()
                raise Forbidden("Missing or invalid CSRF token") from None
            AUTH_FAILURES.labels(ROLE, f"refresh_{refused.outcome}").inc()
            raise InvalidRefreshToken() from None
        return await respond("Token refreshed", issued, csrf)

    @blueprint.post("/logout")
    async def logout() -> Response:
        """Revoke one login's family: by its refresh token, or by an access token of it."""
        presented = await body_refresh_token()
        if presented is not None:
            # RFC 7009: an unknown or already revoked token is answered the same way.
            await refresh_tokens.revoke_token(presented)
        else:
            claims = await authenticator.authenticate()
            await refresh_tokens.revoke_family(claims.family, claims.subject)
        response = jsonify({"message": "Logged out successfully"})
        return cookies.clear(response) if cookies.sent() else response

    @blueprint.post("/logout-all")
    async def logout_all() -> Response:
        claims = await authenticator.authenticate()
        revoked = await refresh_tokens.revoke_user(claims.subject)
        response = jsonify({"message": "Logged out of every session", "families_revoked": revoked})
        return cookies.clear(response) if cookies.sent() else response

    return blueprint


async def body_refresh_token() -> str | None:
    """The JSON body's ``refresh_token``; ``None`` without a body (cookie mode) or that member."""
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    if not raw:
        return None
    return refresh_token_in(await json_body())


def refresh_token_in(body: Any) -> str | None:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    token = body.get("refresh_token")
    if token is not None and not isinstance(token, str):
        raise BadRequest("refresh_token must be a string")
    return token
