"""Signing and verifying access tokens (the attacker's cases are in test_app.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from authscale.tokens.access import (
    MAX_TOKEN_LENGTH,
    AccessClaims,
    AccessTokenSigner,
    AccessTokenVerifier,
    InvalidToken,
    KeyLookup,
)
from authscale.tokens.keys.jwk import SigningKey, generate_private_key
from authscale.tokens.settings import AccessTokenSettings
from tests.inputs import json_values

PRIVATE = generate_private_key()
KEY = SigningKey("kid-1", PRIVATE)
SETTINGS = AccessTokenSettings(lifetime=600, leeway=10)


class Keys:
    def __init__(self, **keys: rsa.RSAPublicKey) -> None:
        self.keys = keys
        self.refetched: list[str] = []

    def get(self, kid: str) -> rsa.RSAPublicKey | None:
        return self.keys.get(kid.replace("-", "_"))

    async def refetch(self, kid: str) -> rsa.RSAPublicKey | None:
        self.refetched.append(kid)
        return self.get(kid)


def verifier(**keys: rsa.RSAPublicKey) -> AccessTokenVerifier:
    return AccessTokenVerifier(SETTINGS, Keys(**keys))


async def test_a_signed_token_verifies_with_the_public_key_alone():
    token, issued = AccessTokenSigner(SETTINGS).sign(KEY, "alice", "fam-1")
    claims = await verifier(kid_1=PRIVATE.public_key()).verify(token)
    assert claims == issued
    assert claims.subject == "alice" and claims.family == "fam-1" and claims.csrf is None
    assert claims.expires_at - claims.issued_at == 600


async def test_the_token_says_what_it_is():
    token, _ = AccessTokenSigner(SETTINGS).sign(KEY, "alice", "fam-1", csrf="c" * 43)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "kid": "kid-1", "typ": "at+jwt"}
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"iss", "aud", "sub", "iat", "exp", "jti", "sid", "csrf"}
    assert payload["iss"] == "urn:authscale:issuer" and payload["aud"] == "urn:authscale:token"
    assert len(payload["jti"]) >= 22


async def test_tokens_differ_even_for_the_same_user_and_second():
    signer = AccessTokenSigner(SETTINGS)
    assert signer.sign(KEY, "alice", "f")[0] != signer.sign(KEY, "alice", "f")[0]


async def test_a_token_just_past_exp_passes_within_the_leeway_only():
    now = int(time.time())
    payload = {
        "iss": SETTINGS.issuer,
        "aud": SETTINGS.audience,
        "sub": "alice",
        "iat": now - 700,
        "exp": now - 5,
        "jti": "j",
        "sid": "f",
    }
    headers = {"kid": "kid-1", "typ": "at+jwt"}
    recent = jwt.encode(payload, PRIVATE, algorithm="RS256", headers=headers)
    assert (await verifier(kid_1=PRIVATE.public_key()).verify(recent)).subject == "alice"
    old = jwt.encode({**payload, "exp": now - 11}, PRIVATE, algorithm="RS256", headers=headers)
    with pytest.raises(InvalidToken) as refused:
        await verifier(kid_1=PRIVATE.public_key()).verify(old)
    assert refused.value.reason == "expired"


async def test_an_unknown_kid_asks_the_key_set_to_look_again():
    token, _ = AccessTokenSigner(SETTINGS).sign(KEY, "alice", "f")
    keys = Keys()
    with pytest.raises(InvalidToken) as refused:
        await AccessTokenVerifier(SETTINGS, keys).verify(token)
    assert refused.value.reason == "unknown_kid"
    assert keys.refetched == ["kid-1"]


async def test_an_overlong_token_is_refused_before_any_parsing():
    keys = Keys()
    with pytest.raises(InvalidToken) as refused:
        await AccessTokenVerifier(SETTINGS, keys).verify("a" * (MAX_TOKEN_LENGTH + 1))
    assert refused.value.reason == "too_long"
    assert keys.refetched == []


class CountingCache:
    """A verified-token cache that remembers every lookup it was asked for."""

    def __init__(self) -> None:
        self.entries: dict[str, AccessClaims] = {}
        self.looked_up: list[str] = []

    def get(self, token: str, keys: KeyLookup) -> AccessClaims | None:
        self.looked_up.append(token)
        return self.entries.get(token)

    def put(self, token: str, claims: AccessClaims, key: rsa.RSAPublicKey) -> None:
        self.entries[token] = claims


async def test_the_cache_holds_only_tokens_that_passed_every_check():
    """A hit skips the format check, which is sound only if nothing else ever gets in."""
    cache = CountingCache()
    checked = AccessTokenVerifier(SETTINGS, Keys(kid_1=PRIVATE.public_key()), cache)
    token, issued = AccessTokenSigner(SETTINGS).sign(KEY, "alice", "f")
    for refused in ("a" * (MAX_TOKEN_LENGTH + 1), "not a token", "a.b", token + "x"):
        with pytest.raises(InvalidToken):
            await checked.verify(refused)
    assert cache.entries == {}
    # An overlong token is refused before the lookup would hash it.
    assert "a" * (MAX_TOKEN_LENGTH + 1) not in cache.looked_up
    assert await checked.verify(token) == issued
    assert await checked.verify(token) == issued
    assert list(cache.entries) == [token]


def test_the_challenge_follows_rfc_6750():
    assert InvalidToken("x").headers() == {
        "WWW-Authenticate": 'Bearer realm="authscale", error="invalid_token"'
    }
    assert InvalidToken("x", error=None).headers() == {
        "WWW-Authenticate": 'Bearer realm="authscale"'
    }
    assert InvalidToken("x").status == 401


# Every header and claim value an attacker can write, of any JSON type: the verifier answers
# InvalidToken and nothing else (a TypeError here was a 500 on /token/dashboard and logout-all).

_ABSENT = object()


def _header_values(valid: object) -> st.SearchStrategy[object]:
    """The valid value often (so later checks are reached), no value, or any JSON value."""
    return st.one_of(st.just(valid), st.just(_ABSENT), json_values)


def _signed(header: dict[str, Any], payload: Any) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = PRIVATE.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def _verify_or_refuse(token: str) -> None:
    with contextlib.suppress(InvalidToken):
        asyncio.run(verifier(kid_1=PRIVATE.public_key()).verify(token))


@given(
    alg=_header_values("RS256"),
    typ=_header_values("at+jwt"),
    kid=_header_values("kid-1"),
    crit=_header_values(_ABSENT),
)
def test_any_header_values_are_verified_or_refused(
    alg: object, typ: object, kid: object, crit: object
) -> None:
    values = {"alg": alg, "typ": typ, "kid": kid, "crit": crit}
    _verify_or_refuse(_signed({k: v for k, v in values.items() if v is not _ABSENT}, {}))


@given(
    st.sampled_from(["sub", "sid", "jti", "iat", "exp", "aud", "iss", "csrf"]),
    json_values,
)
def test_any_claim_values_are_verified_or_refused(name: str, value: object) -> None:
    now = int(time.time())
    payload = {
        "iss": SETTINGS.issuer,
        "aud": SETTINGS.audience,
        "sub": "alice",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "sid": "f",
        name: value,
    }
    _verify_or_refuse(_signed({"alg": "RS256", "typ": "at+jwt", "kid": "kid-1"}, payload))


@given(json_values)
def test_any_json_as_the_whole_header_is_refused(header: object) -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    _verify_or_refuse(f"{b64(json.dumps(header).encode())}.e30.{b64(b'x')}")
