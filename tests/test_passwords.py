from __future__ import annotations

from authscale.passwords import Passwords
from authscale.settings import PasswordSettings

CHEAP = PasswordSettings(time_cost=1, memory_cost_kib=1024)


async def test_hash_is_argon2id_and_verifies() -> None:
    passwords = Passwords(CHEAP, workers=1)
    stored = await passwords.hash("s3cret")
    assert stored.startswith("$argon2id$")
    assert await passwords.verify(stored, "s3cret")
    assert not await passwords.verify(stored, "wrong")
    passwords.close()


async def test_unknown_user_is_verified_against_a_decoy_and_fails() -> None:
    passwords = Passwords(CHEAP, workers=1)
    assert not await passwords.verify(None, "anything")
    assert not await passwords.verify("not-a-hash", "anything")
    passwords.close()


async def test_raised_cost_asks_for_a_rehash() -> None:
    old = Passwords(CHEAP, workers=1)
    stored = await old.hash("pw")
    stronger = Passwords(PasswordSettings(time_cost=2, memory_cost_kib=2048), workers=1)
    assert stronger.needs_rehash(stored)
    assert not old.needs_rehash(stored)
    old.close()
    stronger.close()
