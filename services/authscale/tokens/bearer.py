"""How a request presents an access token: ``Authorization: Bearer`` (RFC 6750) or a cookie.

The header wins when both are sent. A token sent by cookie travels with every request the
browser makes, including forged cross-site ones, so a cookie-authenticated state-changing request
must also echo the token's CSRF value in ``X-CSRF-Token``: the value is bound into the signed
token, so no replica needs shared state to check it. A Bearer header is never sent by a browser
on its own, so it needs no CSRF token.
"""

from __future__ import annotations

import hmac
import re

from quart import request

from authscale.core.errors import Forbidden
from authscale.core.metrics import AUTH_FAILURES
from authscale.tokens.access import (
    AccessClaims,
    AccessTokenVerifier,
    InvalidToken,
    MalformedAuthorization,
)
from authscale.tokens.denylist import Denylist

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: RFC 6750 section 2.1: the scheme (any case), one or more spaces, a token68. Only the scheme
#: ignores case: a pattern-wide IGNORECASE folds every character of the token too, which cost a
#: token replica more than all the rest of a cache hit (about 30 µs for a 700-character token).
BEARER = re.compile(r"(?i:Bearer) +([A-Za-z0-9._~+/-]+=*)")


class Authenticator:
    def __init__(
        self,
        role: str,
        verifier: AccessTokenVerifier,
        cookie_name: str,
        denylist: Denylist | None = None,
    ) -> None:
        self._role = role
        self._verifier = verifier
        self._cookie_name = cookie_name
        self._denylist = denylist

    def presented(self) -> tuple[str, bool] | None:
        """The token and whether it came by cookie; ``None`` when the request carries none."""
        header = request.headers.get("Authorization")
        if header is not None:
            match = BEARER.fullmatch(header.strip())
            if match is not None:
                return match.group(1), False
            # Not ours to guess at, whatever cookie the request also carries.
            if header.strip().lower().startswith("bearer"):
                # The Bearer scheme with no token or a malformed one: RFC 6750 section 3.1's
                # invalid_request, a 400.
                raise self._refuse(MalformedAuthorization("bad_authorization_header"))
            # Another scheme (Basic, ...) carries no bearer token: 401 with a bare challenge,
            # as for a request with no credentials (RFC 6750 section 3.1).
            raise self._refuse(InvalidToken("other_scheme", error=None))
        cookie = request.cookies.get(self._cookie_name)
        if cookie:
            return cookie, True
        return None

    async def authenticate(self) -> AccessClaims:
        """The verified claims of the request's token, or a 401/403/503 error."""
        presented = self.presented()
        if presented is None:
            raise self._refuse(InvalidToken("no_token", error=None))
        token, by_cookie = presented
        try:
            claims = await self._verifier.verify(token)
        except InvalidToken as error:
            raise self._refuse(error) from None
        if by_cookie and request.method not in SAFE_METHODS:
            self._require_csrf(claims)
        if self._denylist is not None and await self._denylist.is_denied(
            claims.family, claims.subject
        ):
            raise self._refuse(InvalidToken("revoked"))
        return claims

    def _require_csrf(self, claims: AccessClaims) -> None:
        sent = request.headers.get(CSRF_HEADER, "")
        expected = claims.csrf or ""
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            AUTH_FAILURES.labels(self._role, "csrf").inc()
            raise Forbidden("Missing or invalid CSRF token")

    def _refuse(self, error: InvalidToken) -> InvalidToken:
        AUTH_FAILURES.labels(self._role, error.reason).inc()
        return error
