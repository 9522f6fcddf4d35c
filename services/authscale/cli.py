"""The ``authscale`` command: one parser; each command group lives beside the code it drives."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from authscale.core.errors import AuthscaleError, ConfigError
from authscale.lab.bench import runner as bench
from authscale.lab.experiment import runner as experiment
from authscale.lab.stack import presets, supervisor
from authscale.lab.stack.processes import StackError
from authscale.login import command as accounts
from authscale.tokens.keys import command as keys

#: Each entry adds its sub-commands; every sub-command sets ``run`` to a function of the args.
COMMAND_GROUPS: tuple[
    Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...
] = (
    supervisor.register_commands,
    accounts.register_commands,
    keys.register_commands,
    presets.register_commands,
    bench.register_commands,
    experiment.register_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authscale",
        description="Session vs token authentication on a horizontally scaled stack.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except ConfigError as error:
        print(f"authscale: configuration error: {error}", file=sys.stderr)
        return 2
    except StackError as error:
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
