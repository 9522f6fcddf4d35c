"""Revocation latency: after a logout, how long until every replica refuses the old credential.

Measured under the steady load, per replica, straight to each replica (not through the gateway,
which would hide which replica answered): the session variant, the token variant, and the token
variant in denylist mode on a stack of its own. Every replica is asked in turn until it refuses,
so a replica's latency is the time from the logout's answer to its first refusal.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence

import httpx

from authscale.lab.faults.checks import Check, ScenarioResult
from authscale.lab.faults.probes import Probe, Probes
from authscale.lab.faults.runner import FaultRun

#: How long a replica is asked before its credential counts as "still accepted".
WATCH = 3.0
DENYLIST_ENV = {"AUTHSCALE_TOKEN_DENYLIST": "true"}
SESSION_COOKIE = "authscale_session"
#: When a replica first refused (seconds after the logout's answer; None: never), and after how
#: many requests: the time includes each request's own round trip under load.
Seen = tuple[float | None, int]


def revocation(run: FaultRun) -> ScenarioResult:
    result = ScenarioResult("revocation", "Revocation latency after logout, per replica")
    latencies: dict[str, dict[str, list[Seen]]] = {}
    names = _names(run)
    with Probes(run.stack.gateway_url, run.probe_accounts) as probes:

        def fault() -> None:
            probes.log_in()
            run.mark("logouts")
            latencies["session"] = _session(probes.probes, _urls(run, "session"))
            latencies["token"] = _token(probes.probes, _urls(run, "token"))

        result.timeline = run.under_load(fault)
    with (
        FaultRun(
            run.config,
            f"{run.name}-denylist",
            run.out,
            run.backend,
            replicas={"token": 2, "issuer": 1},
            env=DENYLIST_ENV,
        ) as denylist_run,
        Probes(denylist_run.stack.gateway_url, run.probe_accounts) as probes,
    ):

        def denylist_fault() -> None:
            probes.log_in(variants=("token",))
            latencies["token-denylist"] = _token(probes.probes, _urls(denylist_run, "token"))
            # Read now: on compose the project is gone once the block ends.
            names.update(_names(denylist_run))

        denylist_run.under_load(denylist_fault, variant="token", tag="denylist")
    result.checks = [
        _check("session: refused at once by every replica", latencies["session"], True),
        _check(
            "token: accepted until it expires (no replica can know of the logout)",
            latencies["token"],
            False,
        ),
        _check(
            "token + denylist: refused at once by every replica", latencies["token-denylist"], True
        ),
    ]
    result.notes.append(
        f"Per replica (a credential still accepted {WATCH:g} s after its logout counts as "
        "accepted; a token then lasts until its `exp`, 15 minutes after login by default; the "
        "times include the requests' own round trips under load, replicas asked in turn):"
    )
    result.notes += [
        f"- {variant}, {names.get(replica, replica)}: {_distribution([s for s, _ in values])}; "
        f"refused at the first request: "
        f"{sum(1 for s, n in values if s is not None and n == 1)}/{len(values)}"
        for variant, replicas in latencies.items()
        for replica, values in replicas.items()
    ]
    return result


def _urls(run: FaultRun, role: str) -> list[str]:
    return list(run.stack.replicas(role).values())


def _names(run: FaultRun) -> dict[str, str]:
    """Replica URL -> its name, for the notes."""
    return {url: name for name, url in run.stack.replicas().items()}


def _session(probes: Sequence[Probe], replicas: Sequence[str]) -> dict[str, list[Seen]]:
    found: dict[str, list[Seen]] = {url: [] for url in replicas}
    for probe in probes:
        cookie = probe.client.cookies.get(SESSION_COOKIE) or ""
        answer = probe.client.post("/session/logout", headers={"X-CSRF-Token": probe.csrf_token})
        answer.raise_for_status()
        watched = _watch(replicas, "/session/dashboard", cookies={SESSION_COOKIE: cookie})
        for url, seconds in watched.items():
            found[url].append(seconds)
    return found


def _token(probes: Sequence[Probe], replicas: Sequence[str]) -> dict[str, list[Seen]]:
    found: dict[str, list[Seen]] = {url: [] for url in replicas}
    for probe in probes:
        bearer = {"Authorization": f"Bearer {probe.access_token}"}
        answer = probe.client.post("/token/logout", json={"refresh_token": probe.refresh_token})
        answer.raise_for_status()
        for url, seconds in _watch(replicas, "/token/dashboard", headers=bearer).items():
            found[url].append(seconds)
    return found


def _watch(
    replicas: Sequence[str],
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | None = None,
) -> dict[str, Seen]:
    """Seconds from now until each replica first answers 401; ``None`` if not within WATCH."""
    began = time.monotonic()
    refused: dict[str, float] = {}
    asked = dict.fromkeys(replicas, 0)
    pending = list(replicas)
    for _ in range(10_000):  # bounded in count as well as in time
        if not pending or time.monotonic() - began > WATCH:
            break
        for url in list(pending):
            answer = httpx.get(
                url + path, headers=dict(headers or {}), cookies=dict(cookies or {}), timeout=5
            )
            asked[url] += 1
            if answer.status_code == 401:
                refused[url] = time.monotonic() - began
                pending.remove(url)
    return {url: (refused.get(url), asked[url]) for url in replicas}


def _check(target: str, replicas: dict[str, list[Seen]], refused: bool) -> Check:
    values = [seconds for per in replicas.values() for seconds, _ in per]
    if refused:
        met = bool(values) and all(value is not None for value in values)
    else:
        met = bool(values) and all(value is None for value in values)
    return Check(target, _distribution(values), met)


def _distribution(values: Sequence[float | None]) -> str:
    done = sorted(value * 1000 for value in values if value is not None)
    accepted = len(values) - len(done)
    parts = []
    if done:
        parts.append(
            f"refused by {len(done)}/{len(values)} checks: min {done[0]:.1f} ms, median "
            f"{statistics.median(done):.1f} ms, max {done[-1]:.1f} ms"
        )
    if accepted:
        parts.append(f"still accepted after {WATCH:g} s by {accepted}/{len(values)}")
    return "; ".join(parts) or "no measurement"
