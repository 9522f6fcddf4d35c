"""The local stack without Docker (work in progress: being written on main right now)."""

from __future__ import annotations

import argparse


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pass


def running_redis_url() -> str | None:
    return None
