"""Access tokens: RS256 JWTs signed by the issuer and verified anywhere with a public key.

The rules (RFC 8725, RFC 9068, OWASP ASVS 3.5):

- The algorithm list is fixed here, never read from the token: ``alg: none``, HS256 signed with
  the public key as a secret, or any other algorithm fails before a key is touched.
- The header must say ``typ: at+jwt`` and name a ``kid``, which is only ever a dictionary key.
  ``jku``, ``x5u``, ``jwk`` and ``x5c`` are ignored: keys come from our own key set, never from a
  token.
- ``iss``, ``aud``, ``sub``, ``iat``, ``exp`` and ``jti`` are required and checked, with a small
  leeway (at most 30 s) for clocks.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from authscale.core.errors import Unauthorized
from authscale.tokens.keys.jwk import ALGORITHM, KID_PATTERN, SigningKey
from authscale.tokens.settings import AccessTokenSettings

ALGORITHMS = [ALGORITHM]
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
#: RFC 8725 3.11 lets ``typ`` carry the full media type too.
ACCEPTED_TYPES = frozenset({TOKEN_TYPE, "application/" + TOKEN_TYPE})
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti"]
#: Ours are under 1 KiB; refusing long ones first keeps a 64 KiB header from costing a parse.
MAX_TOKEN_LENGTH = 8 * 1024
REALM = "authscale"
#: JWS compact serialization: three base64url segments, nothing else.
COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class InvalidToken(Unauthorized):
    """The access token is missing, malformed, expired or not ours (RFC 6750 section 3)."""

    message = "Invalid or expired access token"

    def __init__(self, reason: str, *, error: str | None = "invalid_token") -> None:
        super().__init__()
        #: For logs and metrics only; the client gets the RFC 6750 error code.
        self.reason = reason
        self.error = error

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer realm="{REALM}"'
        if self.error is not None:
            challenge += f', error="{self.error}"'
        return {"WWW-Authenticate": challenge}


class MalformedAuthorization(InvalidToken):
    """An ``Authorization: Bearer`` header without a well-formed token: RFC 6750's
    ``invalid_request``, answered 400 with the challenge."""

    status = 400
    message = "Malformed Authorization header"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, error="invalid_request")


@dataclass(frozen=True)
class AccessClaims:
    subject: str
    #: The refresh family the token descends from (``sid``): what logout revokes.
    family: str
    token_id: str
    issued_at: int
    expires_at: int
    kid: str
    #: Set for cookie-mode tokens: the CSRF value a state-changing request must echo.
    csrf: str | None = None


class KeyLookup(Protocol):
    """Public keys by ``kid``: a token replica's key set, or the issuer's own keyring."""

    def get(self, kid: str) -> rsa.RSAPublicKey | None: ...

    async def refetch(self, kid: str) -> rsa.RSAPublicKey | None:
        """Look again for an unknown ``kid``, as often as the implementation allows."""
        ...


class VerifiedCache(Protocol):
    def get(self, token: str, keys: KeyLookup) -> AccessClaims | None: ...

    def put(self, token: str, claims: AccessClaims, key: rsa.RSAPublicKey) -> None: ...


class AccessTokenSigner:
    def __init__(self, settings: AccessTokenSettings) -> None:
        self._settings = settings

    def sign(
        self, key: SigningKey, subject: str, family: str, *, csrf: str | None = None
    ) -> tuple[str, AccessClaims]:
        now = int(time.time())
        claims = AccessClaims(
            subject=subject,
            family=family,
            token_id=secrets.token_urlsafe(16),
            issued_at=now,
            expires_at=now + int(self._settings.lifetime),
            kid=key.kid,
            csrf=csrf,
        )
        payload: dict[str, Any] = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": subject,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "jti": claims.token_id,
            "sid": family,
        }
        if csrf is not None:
            payload["csrf"] = csrf
        token = jwt.encode(
            payload,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": TOKEN_TYPE},
        )
        return token, claims


class AccessTokenVerifier:
    def __init__(
        self,
        settings: AccessTokenSettings,
        keys: KeyLookup,
        cache: VerifiedCache | None = None,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._cache = cache

    async def verify(self, token: str) -> AccessClaims:
        """The token's claims, or :class:`InvalidToken`; nothing else escapes for any input."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("too_long")
        # The cache holds only exact strings that passed every check below, so a hit needs no
        # second format check: scanning the token costs more than the lookup itself.
        if self._cache is not None and (claims := self._cache.get(token, self._keys)):
            return claims
        if not COMPACT.fullmatch(token):
            raise InvalidToken("malformed")
        kid = self._kid(token)
        key = self._keys.get(kid) or await self._keys.refetch(kid)
        if key is None:
            raise InvalidToken("unknown_kid")
        claims = self._decode(token, key, kid)
        if self._cache is not None:
            self._cache.put(token, claims, key)
        return claims

    @staticmethod
    def _kid(token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed") from exc
        # Every member is attacker-chosen JSON of any type: test it is a string before any
        # comparison (a list or object in a set lookup raises TypeError, a 500).
        alg, typ = header.get("alg"), header.get("typ")
        # Checked again by PyJWT against the fixed list; refusing here spares the key lookup.
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise InvalidToken("algorithm")
        if not isinstance(typ, str) or typ not in ACCEPTED_TYPES:
            raise InvalidToken("type")
        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
            raise InvalidToken("kid")
        return kid

    def _decode(self, token: str, key: rsa.RSAPublicKey, kid: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        subject, family, csrf = payload["sub"], payload.get("sid"), payload.get("csrf")
        issued_at, expires_at = payload["iat"], payload["exp"]
        # PyJWT accepts numeric strings for the dates; RFC 7519 says NumericDate is a number.
        if not all(_is_number(value) for value in (issued_at, expires_at)):
            raise InvalidToken("claims")
        token_id = payload["jti"]
        if not (_is_text(subject) and _is_text(family) and _is_text(token_id)):
            raise InvalidToken("claims")
        if csrf is not None and not isinstance(csrf, str):
            raise InvalidToken("claims")
        return AccessClaims(
            subject=subject,
            family=family,
            token_id=token_id,
            issued_at=int(issued_at),
            expires_at=int(expires_at),
            kid=kid,
            csrf=csrf,
        )


def _is_text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
