"""argon2id off the event loop: verifying, the decoy for unknown users, rehashing."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from authscale.core.errors import Overloaded
from authscale.core.metrics import PASSWORD_HASHES_IN_FLIGHT, PASSWORD_HASHING_THREADS
from authscale.core.settings import PasswordSettings
from authscale.login.passwords import HASHING_NICENESS, Passwords

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


def _nice_values() -> list[int]:
    """The nice value of every thread of this process, from /proc (field 19 of each stat)."""
    values = []
    for stat in Path("/proc/self/task").glob("*/stat"):
        # The command name (field 2) may hold spaces; the fields after its ")" do not.
        values.append(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
    return values


async def test_hashing_threads_yield_the_cpu_to_the_event_loop() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    passwords = Passwords(CHEAP, workers=2)
    try:
        await asyncio.gather(passwords.hash("a"), passwords.hash("b"))
        assert min(19, before + HASHING_NICENESS) in _nice_values()
        # The thread running the event loop keeps its priority.
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    finally:
        passwords.close()


def test_the_hashing_load_is_a_gauge_an_autoscaler_can_read() -> None:
    """Logins holding a place among the hashing threads and their queue, and the threads."""
    passwords = Passwords(PasswordSettings(time_cost=1, memory_cost_kib=1024, queue=2), workers=1)
    try:
        assert PASSWORD_HASHING_THREADS._value.get() == 1
        before = PASSWORD_HASHES_IN_FLIGHT._value.get()
        with passwords.admitted(), passwords.admitted():
            assert PASSWORD_HASHES_IN_FLIGHT._value.get() == before + 2
            with pytest.raises(Overloaded), passwords.admitted(), passwords.admitted():
                pass
            assert PASSWORD_HASHES_IN_FLIGHT._value.get() == before + 2
        assert PASSWORD_HASHES_IN_FLIGHT._value.get() == before
    finally:
        passwords.close()
