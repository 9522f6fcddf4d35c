"""Denylist mode: revoked refresh families whose access tokens every token replica refuses.

Revoking a family (logout, logout-all, a password change, refresh-token reuse) always writes a
marker that lives as long as the family's last access token can (access lifetime + leeway); see
:mod:`authscale.tokens.refresh`. Only replicas started with ``AUTHSCALE_TOKEN_DENYLIST=true`` read
it, with
one ``EXISTS`` per request. That makes the stateless variant stateful again, and so it fails
closed: with Redis unreachable a request is answered 503, never let through unchecked.
"""

from __future__ import annotations

from authscale.core.slots import braced, user_tag
from authscale.core.storage import RedisStore

PREFIX = "denied-family:"

#: The Redis user a token replica in denylist mode connects as: it may check a denylist marker
#: (``EXISTS``) and ping, and nothing else: no user, session or refresh family, no write. On a
#: Redis Cluster the client also has to learn the topology (``CLUSTER SLOTS``) and where each
#: command keeps its keys (``COMMAND``): both describe the server, neither reads or writes data.
ACL_USER = "authscale-token"
ACL_RULES = (
    f"resetkeys ~{PREFIX}* resetchannels -@all +exists +ping +client|setname "
    "+cluster|slots +cluster|shards +command"
)


def acl_line(password: str) -> str:
    """The ``redis.conf`` line that defines :data:`ACL_USER` with ``password``."""
    return f"user {ACL_USER} on >{password} {ACL_RULES}"


def denied_family_key(tag: str, family: str) -> str:
    """In the family's user's Redis Cluster slot, so revoking scripts can write it."""
    return f"{PREFIX}{braced(tag)}:{family}"


class Denylist:
    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    async def is_denied(self, family: str, username: str) -> bool:
        """Raises :class:`~authscale.core.errors.DependencyUnavailable` (503) when Redis cannot
        say."""
        key = denied_family_key(user_tag(username), family)
        # The per-request hot path: concurrent checks share one pipeline (see RedisStore.command).
        return bool(await self._redis.command("denylist", "EXISTS", key))
