"""``authscale users``: create users, seed load-test users, change passwords.

Redis is ``AUTHSCALE_REDIS_URL``'s. Whoever registers the commands may name a fallback for when
it is unset (the ``authscale`` command names the running local stack's); this module knows no
stack.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

from authscale.core.settings import (
    PREFIX,
    Environ,
    PasswordSettings,
    RedisSettings,
    SessionSettings,
)
from authscale.core.storage import RedisStore
from authscale.login.credentials import USERNAME_PATTERN, check_password, check_username
from authscale.login.epoch import user_key
from authscale.login.passwords import Passwords
from authscale.login.users import UnknownUser, UserExists, Users
from authscale.session.store import Sessions
from authscale.tokens.refresh import revoke_user_families

#: Stands in for "the password of every seeded load-test user" unless --password says otherwise.
DEFAULT_SEED_PASSWORD = "loadtest-password"  # noqa: S105 - load-test accounts only, documented
SEED_PREFIX = "loaduser"


class RedisFallback(NamedTuple):
    """Where to find Redis when ``AUTHSCALE_REDIS_URL`` is unset."""

    #: Completes "Redis: $AUTHSCALE_REDIS_URL, else ..." in the help.
    describe: str
    #: The URL, or None when there is none to fall back to either.
    url: Callable[[], str | None]


def register_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    redis_fallback: RedisFallback | None = None,
) -> None:
    where = f"${PREFIX}REDIS_URL"
    if redis_fallback is not None:
        where += f", else {redis_fallback.describe}"
    users = commands.add_parser(
        "users",
        help="create and manage users (in Redis)",
        description=f"Redis: {where}.",
    )
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("username")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(run=_run(_add, redis_fallback))

    seed = actions.add_parser(
        "seed", help="create (or reset) N load-test users loaduser0..loaduserN-1"
    )
    seed.add_argument("--count", type=_positive, required=True)
    seed.add_argument("--password", default=DEFAULT_SEED_PASSWORD)
    seed.add_argument(
        "--prefix",
        type=_account_prefix,
        default=SEED_PREFIX,
        help=f"the usernames' common start (default {SEED_PREFIX}), as Locust's --account-prefix",
    )
    seed.set_defaults(run=_run(_seed, redis_fallback))

    passwd = actions.add_parser(
        "passwd", help="change a user's password and end all their sessions and tokens"
    )
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(run=_run(_passwd, redis_fallback))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _account_prefix(text: str) -> str:
    # Validated here, so a bad one is a usage error (exit 2) that a retrying caller stops on.
    if not USERNAME_PATTERN.fullmatch(f"{text}0"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a prefix is letters, digits and . _ @ -, with room for the number"
        )
    return text


def _run(
    action: Callable[[argparse.Namespace, RedisStore, Passwords], Awaitable[int]],
    redis_fallback: RedisFallback | None,
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        environ = _redis_environ(os.environ, redis_fallback)
        return asyncio.run(_with_redis(action, args, environ))

    return run


async def _with_redis(
    action: Callable[[argparse.Namespace, RedisStore, Passwords], Awaitable[int]],
    args: argparse.Namespace,
    environ: Mapping[str, str],
) -> int:
    env = Environ(environ)
    redis = RedisStore(RedisSettings.from_environ(env))
    passwords = Passwords(PasswordSettings.from_environ(env))
    redis.open()
    try:
        return await action(args, redis, passwords)
    finally:
        passwords.close()
        await redis.close()


def _redis_environ(environ: Mapping[str, str], fallback: RedisFallback | None) -> Mapping[str, str]:
    """``environ``, with the fallback's Redis URL when it names none."""
    if environ.get(f"{PREFIX}REDIS_URL") or fallback is None:
        return environ
    url = fallback.url()
    return environ if url is None else {**environ, f"{PREFIX}REDIS_URL": url}


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("authscale: the passwords differ; nothing changed")
    check_password(password)
    return password


async def _add(args: argparse.Namespace, redis: RedisStore, passwords: Passwords) -> int:
    try:
        await Users(redis, passwords).add(check_username(args.username), _read_password(args))
    except UserExists:
        print(f"authscale: user {args.username!r} exists already", file=sys.stderr)
        return 1
    print(f"created user {args.username}")
    return 0


async def _seed(args: argparse.Namespace, redis: RedisStore, passwords: Passwords) -> int:
    await seed_users(redis, passwords, args.count, args.password, args.prefix)
    print(f"seeded {args.count} users {args.prefix}0..{args.prefix}{args.count - 1}")
    return 0


async def seed_users(
    redis: RedisStore,
    passwords: Passwords,
    count: int,
    password: str = DEFAULT_SEED_PASSWORD,
    prefix: str = SEED_PREFIX,
) -> None:
    """Create (or reset) {prefix}0..{prefix}{count-1}, all with ``password``.

    Idempotent: seeding again overwrites the same accounts, so a deployment may seed on every
    start.
    """
    # The longest name is the one that may not fit.
    check_username(f"{prefix}{count - 1}")
    # One hash serves every seeded user: these accounts share a password by design, and hashing
    # thousands of them one by one would take minutes for nothing.
    password_hash = await passwords.hash(check_password(password))
    batch = 1000
    for start in range(0, count, batch):
        async with redis.reaching("user_seed") as client, client.pipeline() as pipe:
            for number in range(start, min(start + batch, count)):
                pipe.hset(
                    user_key(f"{prefix}{number}"),
                    mapping={"password_hash": password_hash, "changed_at": "0"},
                )
            await pipe.execute()


async def _passwd(args: argparse.Namespace, redis: RedisStore, passwords: Passwords) -> int:
    try:
        await Users(redis, passwords).change_password(args.username, _read_password(args))
    except UnknownUser:
        print(f"authscale: no user {args.username!r}", file=sys.stderr)
        return 1
    ended = await Sessions(redis, SessionSettings()).end_all(args.username)
    revoked = await revoke_user_families(redis, args.username)
    print(
        f"changed the password of {args.username}; ended {ended} session(s) and revoked "
        f"{revoked} refresh token famil{'y' if revoked == 1 else 'ies'}"
    )
    return 0
