"""RSA keys as JSON Web Keys (RFC 7517/7518) and their RFC 7638 thumbprints.

Everything read here may come from a file or a URL someone else controls, so a JWK is accepted
only as what it must be: an RSA public key of at least 2048 bits, for RS256 signatures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ALGORITHM = "RS256"
MIN_KEY_BITS = 2048
#: Verifying with a huge modulus costs a lot of CPU; no honest issuer uses more than this.
MAX_KEY_BITS = 8192
DEFAULT_KEY_BITS = 2048
#: What a ``kid`` may look like, on the way in (token headers, JWKS documents) and out.
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Members only a private JWK has; a public key set carrying any of them leaks a private key.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class InvalidKey(ValueError):
    """A key (JWK or PEM) that must not be used; the message says why."""


@dataclass(frozen=True)
class SigningKey:
    """The issuer's current private key and the ``kid`` its tokens name."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)


def generate_private_key(bits: int = DEFAULT_KEY_BITS) -> rsa.RSAPrivateKey:
    if not MIN_KEY_BITS <= bits <= MAX_KEY_BITS:
        raise InvalidKey(f"RSA keys need {MIN_KEY_BITS}-{MAX_KEY_BITS} bits, got {bits}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(value: object, member: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise InvalidKey(f"JWK member {member!r} is not base64url")
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 SHA-256 thumbprint: a ``kid`` derived from the key, the same on every machine."""
    numbers = public_key.public_numbers()
    canonical = json.dumps(
        {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def public_jwk(public_key: rsa.RSAPublicKey, kid: str) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": ALGORITHM,
        "kid": kid,
        "n": _b64(numbers.n),
        "e": _b64(numbers.e),
    }


def parse_public_jwk(jwk: Any) -> tuple[str, rsa.RSAPublicKey]:
    """The ``kid`` and key of one public JWK; :class:`InvalidKey` for anything else."""
    if not isinstance(jwk, dict):
        raise InvalidKey("a JWK must be a JSON object")
    leaked = PRIVATE_MEMBERS & set(jwk)
    if leaked:
        raise InvalidKey(f"the key set holds private key material ({', '.join(sorted(leaked))})")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise InvalidKey("a JWK needs a kid of 1-64 letters, digits, '-' or '_'")
    if jwk.get("kty") != "RSA":
        raise InvalidKey(f"key {kid}: kty must be RSA, got {jwk.get('kty')!r}")
    if jwk.get("alg", ALGORITHM) != ALGORITHM:
        raise InvalidKey(f"key {kid}: alg must be {ALGORITHM}, got {jwk.get('alg')!r}")
    if jwk.get("use", "sig") != "sig":
        raise InvalidKey(f"key {kid}: use must be sig, got {jwk.get('use')!r}")
    try:
        key = rsa.RSAPublicNumbers(_unb64(jwk.get("e"), "e"), _unb64(jwk.get("n"), "n"))
        public_key = key.public_key()
    except ValueError as exc:
        raise InvalidKey(f"key {kid}: not a valid RSA public key ({exc})") from exc
    if not MIN_KEY_BITS <= public_key.key_size <= MAX_KEY_BITS:
        raise InvalidKey(
            f"key {kid}: {public_key.key_size} bits, {MIN_KEY_BITS}-{MAX_KEY_BITS} accepted"
        )
    return kid, public_key


def private_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_pem(data: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKey(f"not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidKey(f"not an RSA key ({type(key).__name__})")
    if key.key_size < MIN_KEY_BITS:
        raise InvalidKey(f"{key.key_size} bits, at least {MIN_KEY_BITS} needed")
    return key
