"""How a simulated user spends its time: task weights and think time, from the Locust options.

The ``@task(weight)`` on each action is its default. ``--dashboard-weight``, ``--ping-weight``,
``--refresh-weight`` and ``--relogin-weight`` (or ``LOCUST_DASHBOARD_WEIGHT`` and so on) replace
it; they are applied when a test starts, so a value typed into the web UI counts for that run,
and workers of a distributed run use the master's values.
"""

from __future__ import annotations

import random
from typing import Any

#: Option -> the action it weighs, in every user class that has that action.
WEIGHT_OPTIONS = {
    "dashboard_weight": "read_dashboard",
    "ping_weight": "ping",
    "refresh_weight": "refresh",
    "relogin_weight": "log_out_and_in_again",
}


def apply_weights(user_classes: list[Any], options: Any) -> None:
    for user_class in user_classes:
        weights = {
            action: getattr(options, option)
            for option, action in WEIGHT_OPTIONS.items()
            if getattr(options, option, None) is not None and hasattr(user_class, action)
        }
        if not weights:
            continue
        current = _weights_of(user_class)
        current.update(weights)
        if not any(current.values()):
            raise ValueError(f"every task weight of {user_class.__name__} is 0")
        # Locust picks a task with random.choice over this list, so a weight is a repetition.
        user_class.tasks = [
            getattr(user_class, action) for action, weight in current.items() for _ in range(weight)
        ]


def _weights_of(user_class: Any) -> dict[str, int]:
    """Each action's weight as declared with ``@task(weight)``, 0 included."""
    weights: dict[str, int] = {}
    for name in dir(user_class):
        weight = getattr(getattr(user_class, name, None), "locust_task_weight", None)
        if weight is not None:
            weights[name] = int(weight)
    return weights


def think_time(user: Any) -> float:
    """Seconds between two actions: 0 for as fast as possible, else uniform in [t/2, 3t/2]."""
    mean = float(user.environment.parsed_options.think_time)
    return random.uniform(mean / 2, mean * 1.5) if mean > 0 else 0.0
