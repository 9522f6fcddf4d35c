"""The ``authscale`` command: one parser; each command group lives beside the code it drives.

The product's commands (``users``, ``keys``, ``serve``) are always there. The lab's (the local
stack, the browser page, the gateway's rendering, benchmarks, experiments) are there when the
lab is installed: the container image leaves it out (deploy/Dockerfile), and there the command
says so instead of "invalid choice".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeAlias

from authscale.core import servers
from authscale.core.errors import AuthscaleError, ConfigError
from authscale.login import command as accounts
from authscale.tokens.keys import command as keys

#: A string: argparse's _SubParsersAction takes no type arguments at run time.
CommandGroup: TypeAlias = "Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]"

#: The lab's commands by name, so an install without the lab can tell them apart from typos.
LAB_COMMANDS = ("up", "down", "web", "gateway", "bench", "experiment")


class Lab(NamedTuple):
    command_groups: tuple[CommandGroup, ...]
    #: Errors whose message says what to do; printed without a traceback.
    errors: tuple[type[Exception], ...]
    #: Where ``authscale users`` finds Redis without AUTHSCALE_REDIS_URL: the local stack's.
    redis_fallback: accounts.RedisFallback


def load_lab() -> Lab | None:
    """The lab's command groups, or None where only the product is installed."""
    try:
        from authscale.lab.bench import runner as bench
        from authscale.lab.budgets import BudgetError
        from authscale.lab.experiment import command as experiment
        from authscale.lab.stack import presets, rundir, supervisor, web
        from authscale.lab.stack.processes import StackError
    except ModuleNotFoundError as missing:
        if missing.name != "authscale.lab":
            raise
        return None
    return Lab(
        command_groups=(
            supervisor.register_commands,
            web.register_commands,
            presets.register_commands,
            bench.register_commands,
            experiment.register_commands,
        ),
        errors=(StackError, BudgetError),
        redis_fallback=accounts.RedisFallback(
            "the Redis of the local stack `authscale up` runs (from AUTHSCALE_RUN_DIR, "
            "default .authscale)",
            rundir.running_redis_url,
        ),
    )


def build_parser(lab: Lab | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authscale",
        description="Session vs token authentication on a horizontally scaled stack.",
        epilog=None if lab else f"Note: {_NO_LAB}",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    accounts.register_commands(commands, lab.redis_fallback if lab else None)
    keys.register_commands(commands)
    servers.register_commands(commands)
    for register in lab.command_groups if lab else ():
        register(commands)
    return parser


_NO_LAB = (
    f"the lab's commands ({', '.join(LAB_COMMANDS)}) are not installed here: this install "
    "carries the product only (users, keys, serve), as the container image does. Run them from a "
    "checkout, or from an install of the authscale wheel."
)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    lab = load_lab()
    if lab is None and arguments[:1] and arguments[0] in LAB_COMMANDS:
        print(f"authscale {arguments[0]}: {_NO_LAB}", file=sys.stderr)
        return 2
    args = build_parser(lab).parse_args(arguments)
    lab_errors = lab.errors if lab else ()
    try:
        result: int = args.run(args)
    except ConfigError as error:
        print(f"authscale: configuration error: {error}", file=sys.stderr)
        return 2
    except lab_errors as error:
        print(f"authscale: {error}", file=sys.stderr)
        return 1
    except AuthscaleError as error:
        # The same refusals the HTTP API gives (a bad username, Redis unreachable), as text.
        print(f"authscale: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
