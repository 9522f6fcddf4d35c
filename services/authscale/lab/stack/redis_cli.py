"""One long-lived ``redis-cli`` for reading Redis's command counters where no client reaches Redis.

In compose, Redis sits on an internal network and the host has no route to it; ``docker exec``
into the Redis container does, and the container's REDISCLI_AUTH keeps the password off every
command line. One process answers every sample: starting ``docker compose exec`` twice a second
would cost more CPU than what it measures (docker-compose 1.29 is a Python program).
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from collections.abc import Mapping, Sequence

from authscale.lab.measure import commandstats
from authscale.lab.stack.processes import StackError

ANSWER_TIMEOUT = 5.0
#: redis-cli prints each reply and reads the next line: PING's reply marks the end of INFO's.
QUESTION = b"INFO commandstats\nPING\n"
END = b"\nPONG\n"


class RedisCli:
    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.process = subprocess.Popen(
            self.argv,
            env=None if env is None else dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.buffer = b""

    def commandstats(self) -> dict[str, int]:
        """Calls so far per command, as :func:`authscale.lab.measure.commandstats.read` gives
        them."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(QUESTION)
            self.process.stdin.flush()
        except BrokenPipeError as error:
            raise StackError(f"{' '.join(self.argv)} exited: {self._stderr()}") from error
        descriptor = self.process.stdout.fileno()
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while END not in b"\n" + self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([descriptor], [], [], max(left, 0))
            if not ready:
                # An error (NOAUTH, LOADING) answers PING instead of PONG.
                last = self.buffer.decode(errors="replace").strip().splitlines()[-1:]
                raise StackError(
                    f"{' '.join(self.argv)} gave no answer in {ANSWER_TIMEOUT:g} s: {last}"
                )
            chunk = os.read(descriptor, 65536)
            if not chunk:
                raise StackError(f"{' '.join(self.argv)} exited: {self._stderr()}")
            self.buffer += chunk
        answer, _, self.buffer = (b"\n" + self.buffer).partition(END)
        return commandstats.parse(answer.decode(errors="replace"))

    def _stderr(self) -> str:
        self.close()
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace").strip()[-500:]

    def close(self) -> None:
        """Ends redis-cli by closing its input; safe to call more than once."""
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
