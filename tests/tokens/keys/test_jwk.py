"""JSON Web Keys: thumbprints, and refusing anything but an RSA public signing key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authscale.tokens.keys.jwk import (
    InvalidKey,
    generate_private_key,
    load_private_pem,
    parse_public_jwk,
    private_pem,
    public_jwk,
    thumbprint,
)

# RFC 7638 section 3.1: the example key and its thumbprint.
RFC_7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC_7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return generate_private_key()


def test_the_thumbprint_matches_rfc_7638():
    _, public_key = parse_public_jwk({"kty": "RSA", "kid": "x", "n": RFC_7638_N, "e": "AQAB"})
    assert thumbprint(public_key) == RFC_7638_THUMBPRINT


def test_a_public_jwk_parses_back_to_the_same_key(key):
    jwk = public_jwk(key.public_key(), "kid-1")
    assert jwk["alg"] == "RS256" and jwk["use"] == "sig" and "d" not in jwk
    kid, parsed = parse_public_jwk(jwk)
    assert kid == "kid-1"
    assert parsed.public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"d": "AQAB"}, "private key material"),
        ({"p": "AQAB", "q": "AQAB"}, "private key material"),
        ({"k": "c2VjcmV0"}, "private key material"),
        ({"kty": "EC"}, "kty must be RSA"),
        ({"kty": "oct"}, "kty must be RSA"),
        ({"alg": "HS256"}, "alg must be RS256"),
        ({"alg": "none"}, "alg must be RS256"),
        ({"use": "enc"}, "use must be sig"),
        ({"kid": None}, "needs a kid"),
        ({"kid": "../../etc/passwd"}, "needs a kid"),
        ({"kid": "k" * 65}, "needs a kid"),
        ({"n": "!!"}, "not base64url"),
        ({"n": 12}, "not base64url"),
        ({"e": None}, "not base64url"),
        ({"n": "AQAB"}, "not a valid RSA public key"),
    ],
)
def test_unusable_jwks_are_refused(key, change, message):
    jwk = {**public_jwk(key.public_key(), "kid-1"), **change}
    jwk = {name: value for name, value in jwk.items() if value is not None}
    with pytest.raises(InvalidKey, match=message):
        parse_public_jwk(jwk)


def test_a_jwk_must_be_an_object():
    with pytest.raises(InvalidKey):
        parse_public_jwk(["kty", "RSA"])


def test_short_keys_are_refused():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused below
    with pytest.raises(InvalidKey, match="1024 bits"):
        parse_public_jwk(public_jwk(weak.public_key(), "weak"))
    with pytest.raises(InvalidKey):
        load_private_pem(private_pem(weak))
    with pytest.raises(InvalidKey):
        generate_private_key(1024)


def test_private_pems_round_trip_and_refuse_other_things(key):
    assert load_private_pem(private_pem(key)).private_numbers() == key.private_numbers()
    with pytest.raises(InvalidKey, match="not an unencrypted PEM"):
        load_private_pem(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidKey, match="not an RSA key"):
        load_private_pem(other)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    )
    with pytest.raises(InvalidKey):
        load_private_pem(encrypted)
