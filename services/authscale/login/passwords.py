"""argon2id hashing, run off the event loop so a login never stalls other requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from authscale.core.errors import Overloaded
from authscale.core.metrics import PASSWORD_HASHES_IN_FLIGHT, PASSWORD_HASHING_THREADS
from authscale.core.settings import PasswordSettings
from authscale.login.hashing_slots import hashing_workers

log = logging.getLogger(__name__)

#: How much nicer than the rest of the process the hashing threads run. Under a login storm the
#: replica's cores are contended: the event loop answering readers (and Redis replies) then gets
#: its share first, and logins, which argon2id makes slow anyway, wait a little longer instead.
HASHING_NICENESS = 10


class Passwords:
    """Hash and verify on a bounded thread pool (argon2-cffi releases the GIL while hashing).

    The pool is sized to the container's CPU quota and memory limit (see
    :mod:`authscale.login.hashing_slots`), and at most ``settings.queue`` logins wait for it: a
    login storm is shed at once with 503 and ``Retry-After`` (:meth:`admitted`) instead of queueing
    for the gateway's 30 s.
    """

    def __init__(self, settings: PasswordSettings, workers: int | None = None) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost_kib,
            parallelism=settings.parallelism,
            type=Type.ID,
        )
        self.workers = (
            workers
            or settings.workers
            or hashing_workers(settings.memory_cost_kib * 1024 * settings.parallelism)
        )
        self._capacity = self.workers + settings.queue
        PASSWORD_HASHING_THREADS.set(self.workers)
        self._in_flight = 0
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers,
            thread_name_prefix="argon2",
            initializer=_lower_this_threads_priority,
        )
        # Verified against when the user does not exist, so that an unknown user costs the
        # same hash as a wrong password and the two answers cannot be told apart by timing.
        self._decoy_hash = self._hasher.hash(os.urandom(16).hex())

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a place among the hashing threads and their queue, or :class:`Overloaded`.

        Taken before the login's budget is charged, so a shed login costs nothing."""
        if self._in_flight >= self._capacity:
            raise Overloaded()
        self._in_flight += 1
        PASSWORD_HASHES_IN_FLIGHT.inc()
        try:
            yield
        finally:
            self._in_flight -= 1
            PASSWORD_HASHES_IN_FLIGHT.dec()

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verify_sync, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _verify_sync(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or self._decoy_hash, password) and (
                stored_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _lower_this_threads_priority() -> None:
    """Renice the calling thread only: on Linux the nice value is per thread (setpriority(2))."""
    if sys.platform != "linux":  # elsewhere a thread id passed as a pid could name a process
        return
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + HASHING_NICENESS))
    except OSError as error:
        log.warning("hashing threads keep the process's priority: %s", error)
