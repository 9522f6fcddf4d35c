"""Hash tags: all the Redis keys of one user in one Redis Cluster slot, users spread over slots.

A Redis Cluster runs a script only when every key it declares hashes to one slot, and hashes a key
by the part between its first ``{`` and the next ``}`` when there is one. Every key of a user (the
account, its devices, login budgets, sessions and their index, refresh families, their index and
denylist markers) carries the same tag, ``{xxxx}``: the first 16 bits of SHA-256 of the username,
in hex. 65,536 tags over 16,384 slots spread users evenly, so no slot holds everyone's sessions.

A request that finds its keys from a cookie or a token, not a username, needs the tag too: session
ids and refresh tokens begin with it (``xxxx.<random>``). The tag is not secret (anyone who knows a
username can compute it) and adds nothing to guess: the random part keeps its full 256 or 128
bits, and the key is derived from the whole presented value, so a forged tag finds no key.
On a single Redis the tags cost seven bytes a key and change nothing else.
"""

from __future__ import annotations

import hashlib

#: The tag as it appears in session ids and refresh tokens.
TAG_PATTERN = "[0-9a-f]{4}"


def user_tag(username: str) -> str:
    # surrogatepass: a username is checked before it is stored, but computing a tag never fails.
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:4]


def braced(tag: str) -> str:
    """The tag as a key carries it: the part a Redis Cluster hashes."""
    return "{" + tag + "}"


def user_keyspace(kind: str, username: str) -> str:
    """A per-user key: ``kind:{tag}:username``."""
    return f"{kind}:{braced(user_tag(username))}:{username}"
