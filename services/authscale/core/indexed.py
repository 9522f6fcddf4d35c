"""Scripts that walk a user's index on a Redis Cluster: every key declared, checked unchanged.

Ending a user's sessions or revoking their refresh families touches keys listed in an index (a
sorted set). A cluster wants every key a script touches declared in ``KEYS``, so the index is read
first and its members' keys are declared; the script then checks, atomically, that the index still
holds exactly those members, and answers ``stale`` (touching nothing) when a concurrent login or
logout changed it in between. The caller reads again and retries. An index is capped (sessions or
families per user), so a script never declares more than the cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from authscale.core.errors import DependencyUnavailable

#: What a guarded script answers when the index moved under it.
STALE = "stale"
#: Reads of an index that keeps changing before giving up with a 503: only a user logging in and
#: out in a tight loop, in parallel, could cause one retry, let alone four.
ATTEMPTS = 4


def index_guard(index: str, count_at: int) -> str:
    """Lua that returns ``stale`` unless the sorted set ``index`` (a KEYS entry) holds exactly the
    members listed in ARGV after position ``count_at``, which holds their number; it leaves them in
    ``declared`` (member -> position 1..n) for the rest of the script."""
    return f"""
local declared, count = {{}}, tonumber(ARGV[{count_at}])
for i = 1, count do declared[ARGV[{count_at} + i]] = i end
local present = redis.call('ZRANGE', {index}, 0, -1)
if #present ~= count then return '{STALE}' end
for _, member in ipairs(present) do
  if not declared[member] then return '{STALE}' end
end
"""


async def guarded(
    client: Any, index: str, run: Callable[[list[str]], Awaitable[Any]], *, what: str
) -> Any:
    """Read ``index``'s members and ``run`` the script with them until it is not stale."""
    for _ in range(ATTEMPTS):
        members = [str(member) for member in await client.zrange(index, 0, -1)]
        result = await run(members)
        if result != STALE:
            return result
    raise DependencyUnavailable(f"{what}: the account changed during the request, retry shortly")
