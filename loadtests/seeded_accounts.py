"""Which seeded account (``authscale users seed``) each simulated user logs in with.

Every simulated user gets its own account while there are enough: user k of worker w takes
``loaduser{k * workers + w}``, so workers of a distributed run never pick the same one. With more
simulated users than seeded accounts the numbers wrap around; two users sharing an account still
hold separate sessions and token families, so nothing breaks, the accounts are only shared.
"""

from __future__ import annotations

import itertools
from typing import Any

from locust.runners import WorkerRunner

_taken = itertools.count()


def next_account(environment: Any) -> tuple[str, str]:
    options = environment.parsed_options
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # --expect-workers reaches the workers with the master's other options.
        index, workers = runner.worker_index, max(1, int(options.expect_workers or 1))
    else:
        index, workers = 0, 1
    number = (next(_taken) * workers + index) % options.accounts
    return f"{options.account_prefix}{number}", options.password
