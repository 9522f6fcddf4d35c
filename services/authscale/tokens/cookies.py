"""Cookie mode: both tokens in HttpOnly cookies, the tutorial's "combine both" advice.

The access token goes to every ``/token`` path (``SameSite=Lax``, like the session cookie). The
refresh token only ever goes to ``/token/refresh`` (``SameSite=Strict``): no other handler, and
no cross-site request, ever sees it. Page scripts can read neither; they get the CSRF value in
the login body (and from ``GET /token/me``) and echo it in ``X-CSRF-Token``.
"""

from __future__ import annotations

from quart import Response, request

from authscale.tokens.refresh import IssuedRefreshToken
from authscale.tokens.settings import AccessTokenSettings, RefreshSettings

ACCESS_PATH = "/token"
REFRESH_PATH = "/token/refresh"


class TokenCookies:
    def __init__(
        self, access: AccessTokenSettings, refresh: RefreshSettings, *, secure: bool
    ) -> None:
        self.access_name = access.cookie_name
        self.refresh_name = refresh.cookie_name
        self._access_lifetime = int(access.lifetime)
        self._secure = secure

    def sent(self) -> bool:
        return self.access_name in request.cookies or self.refresh_name in request.cookies

    def set(self, response: Response, access_token: str, refresh: IssuedRefreshToken) -> Response:
        response.set_cookie(
            self.access_name,
            access_token,
            max_age=self._access_lifetime,
            path=ACCESS_PATH,
            secure=self._secure,
            httponly=True,
            samesite="Lax",
        )
        response.set_cookie(
            self.refresh_name,
            refresh.token,
            max_age=refresh.expires_in,
            path=REFRESH_PATH,
            secure=self._secure,
            httponly=True,
            samesite="Strict",
        )
        return response

    def clear(self, response: Response) -> Response:
        for name, path, samesite in (
            (self.access_name, ACCESS_PATH, "Lax"),
            (self.refresh_name, REFRESH_PATH, "Strict"),
        ):
            response.delete_cookie(
                name, path=path, secure=self._secure, httponly=True, samesite=samesite
            )
        return response
