"""``authscale keys``: create, rotate, revoke and list the issuer's signing keys.

Every command works on ``AUTHSCALE_SIGNING_KEYS_DIR`` (or ``--keys-dir``), the directory every
issuer replica reads; the replicas pick the change up within a second. See
:mod:`authscale.tokens.keys.keyring` for the phases a rotation goes through. ``published`` reads
no key: it asks every issuer replica's public key set whether a rotated key reached it
(:mod:`authscale.tokens.keys.publication`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from authscale.core.settings import PREFIX, Environ
from authscale.tokens.keys.jwk import DEFAULT_KEY_BITS, MAX_KEY_BITS, MIN_KEY_BITS
from authscale.tokens.keys.keyring import Keyring, KeyringError
from authscale.tokens.keys.publication import addresses, ask, laggards
from authscale.tokens.settings import AccessTokenSettings, KeyringSettings, keys_dir

T = TypeVar("T")


def ensure_signing_key(keys_dir: Path) -> bool:
    """Create a first key, signing at once, unless one signs already; whether one was created."""
    return Keyring(keys_dir).generate() is not None


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="manage the issuer's signing keys")
    keys.add_argument(
        "--keys-dir", type=Path, help=f"the keys directory (default: ${PREFIX}SIGNING_KEYS_DIR)"
    )
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    generate = actions.add_parser("generate", help="create a first key when none signs yet")
    generate.add_argument("--bits", type=_bits, default=DEFAULT_KEY_BITS)
    generate.set_defaults(run=_generate)

    rotate = actions.add_parser(
        "rotate",
        help=f"publish a new key now; it signs after ${PREFIX}KEY_ACTIVATION_DELAY seconds",
    )
    rotate.add_argument("--bits", type=_bits, default=DEFAULT_KEY_BITS)
    rotate.set_defaults(run=_rotate)

    revoke = actions.add_parser("revoke", help="withdraw a compromised key at once")
    # A kid is a base64url thumbprint and may begin with "-": then it goes after "--".
    revoke.add_argument("kid", help='the key id from `keys list` (after -- if it begins with "-")')
    revoke.set_defaults(run=_revoke)

    listing = actions.add_parser("list", help="every key with its phase and times")
    listing.set_defaults(run=_list)

    published = actions.add_parser(
        "published",
        help="whether every issuer replica's JWKS lists a key; exit 1 until all of them do",
    )
    published.add_argument("kid", help='the key id (one that begins with "-" after --)')
    published.add_argument(
        "--jwks-url",
        default=os.environ.get(f"{PREFIX}JWKS_URL"),
        help=f"the issuer's key set; each address its host resolves to is asked "
        f"(default: ${PREFIX}JWKS_URL, which token replicas have)",
    )
    published.add_argument(
        "--address",
        action="append",
        metavar="HOST:PORT",
        help="ask these replicas instead of the addresses the URL's host resolves to",
    )
    published.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="ask again every 5 s until every replica lists the key or this much time passed",
    )
    published.set_defaults(run=_published)


def _bits(text: str) -> int:
    value = int(text)
    if not MIN_KEY_BITS <= value <= MAX_KEY_BITS or value % 1024:
        raise argparse.ArgumentTypeError(
            f"must be a multiple of 1024 from {MIN_KEY_BITS} to {MAX_KEY_BITS}, got {value}"
        )
    return value


def _environ(args: argparse.Namespace) -> Mapping[str, str]:
    if args.keys_dir is None:
        return os.environ
    return {**os.environ, f"{PREFIX}SIGNING_KEYS_DIR": str(args.keys_dir)}


def _keyring(args: argparse.Namespace) -> Keyring:
    return Keyring(keys_dir(Environ(_environ(args))))


def _generate(args: argparse.Namespace) -> int:
    keyring = _keyring(args)
    entry = _guarded(lambda: keyring.generate(bits=args.bits))
    if entry is None:
        print(f"a key signs already in {keyring.path}; use `authscale keys rotate` to replace it")
        return 0
    print(f"created key {entry.kid} in {keyring.path}; it signs from now on")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    settings = KeyringSettings.from_environ(_environ(args))
    keyring = Keyring(settings.keys_dir)
    entry = _guarded(lambda: keyring.rotate(settings.activation_delay, bits=args.bits))
    print(
        f"published key {entry.kid}; it signs from {_when(entry.activates_at)} "
        f"(in {settings.activation_delay:g} s), and the key it replaces stays published until "
        "every token it signed has expired"
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    keyring = _keyring(args)
    revoked, successor = _guarded(lambda: keyring.revoke(args.kid))
    print(
        f"revoked key {revoked.kid}: it left the key set, and token replicas drop it "
        "on their next fetch"
    )
    if successor is not None:
        print(f"key {successor.kid} signs from now on")
    return 0


def _list(args: argparse.Namespace) -> int:
    keyring = _keyring(args)
    retention = AccessTokenSettings.from_environ(Environ(_environ(args))).retention
    entries = _guarded(keyring.entries)
    now = time.time()
    print(f"{'KID':<44} {'STATUS':<9} {'ACTIVATES':<20} {'DEACTIVATES':<20}")
    for entry in sorted(entries, key=lambda e: e.activates_at):
        print(
            f"{entry.kid:<44} {entry.status(now, retention):<9} {_when(entry.activates_at):<20} "
            f"{_when(entry.deactivates_at):<20}"
        )
    return 0


def _published(args: argparse.Namespace) -> int:
    if not args.jwks_url:
        print(f"authscale: give --jwks-url or set {PREFIX}JWKS_URL", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.wait
    while True:
        targets = args.address or addresses(args.jwks_url)
        answers = [ask(args.jwks_url, address) for address in targets]
        missing = laggards(answers, args.kid)
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    for answer in answers:
        if answer.error:
            state = f"could not say ({answer.error})"
        elif args.kid in answer.kids:
            state = "lists it"
        else:
            state = f"does not list it yet (it lists {', '.join(sorted(answer.kids)) or 'none'})"
        print(f"{answer.address}: {state}")
    if missing or not answers:
        print(f"key {args.kid}: {len(missing)} of {len(answers)} issuer replicas do not publish it")
        return 1
    print(f"key {args.kid}: every issuer replica ({len(answers)}) publishes it")
    return 0


def _guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except KeyringError as exc:
        print(f"authscale: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
