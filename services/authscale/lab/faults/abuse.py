"""Abuse under load: credential stuffing, a flood from one address, malformed input, slow clients.

Every attacker is on loopback: the client socket is bound to its own 127.0.0.x source address (all
of 127.0.0.0/8 is loopback on Linux), so nginx sees distinct client addresses without containers
or namespaces. On compose, Docker's port proxy would show nginx one address for everyone; this
scenario runs on the local stack for that reason, even under ``--backend compose`` (its report
says so).

What it shows: nginx's per-address login limit stops a flood from one address, and what gets past
it is tried or shed at once by the replicas' bounded hashing queue (503 with ``Retry-After``),
never queued; the per-account
budget in Redis (shared by the session replicas and the issuer) stops stuffing spread over many
addresses, answering unknown usernames exactly like known ones; a real user who logged in from
this device before still gets in; malformed and oversized requests get a 4xx, never a 5xx; slow
clients are cut off by the gateway while the readers carry on.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from authscale.lab.faults.checks import Check, ScenarioResult
from authscale.lab.faults.probes import Probes, tally
from authscale.lab.faults.runner import FaultRun
from authscale.lab.faults.timeline import Timeline, describe
from authscale.lab.stack.backend import LocalRunning
from authscale.lab.stack.processes import StackError
from authscale.login.command import DEFAULT_SEED_PASSWORD

LOCAL_ONLY = (
    "its attackers need distinct client addresses, and Docker's port proxy shows nginx one "
    "address for every client of a published port"
)
#: Attempts per targeted account: more than the default budget of 10 failures per window.
ATTEMPTS_PER_ACCOUNT = 12
BUDGET = 10
STUFFERS = [f"127.0.0.{n}" for n in range(10, 30)]
FLOODER = "127.0.0.9"
#: A login the replica's full hashing queue turned away at once, as designed.
SHED = "503 shed by a replica (Retry-After)"
#: The flood's requests in flight at once (an httpx client is safe to share between threads).
#: Far more than the replicas hash per second: with fewer, requests arrive only as fast as
#: earlier ones are answered, about nginx's own 10 r/s on this machine, and nothing is refused.
FLOOD_CONCURRENCY = 160
SLOW_CLIENT = "127.0.0.50"
SLOW_CONNECTIONS = 60
#: nginx's client_header_timeout is 10 s; the slow clients are watched a little longer.
SLOW_WATCH = 14.0
LOGIN_ROUTES = ("/session/login", "/token/login")
WRONG = "not-the-password"


@dataclass
class Findings:
    #: (username, answered by a replica?, status) of every stuffing attempt.
    stuffing: list[tuple[str, bool, int]] = field(default_factory=list)
    flood: Counter[str] = field(default_factory=Counter)
    malformed: list[tuple[str, int]] = field(default_factory=list)
    slow_closed: int = 0
    victim: list[int] = field(default_factory=list)
    new_device: list[int] = field(default_factory=list)


def abuse(run: FaultRun) -> ScenarioResult:
    result = ScenarioResult("abuse", "Abuse: stuffing, flooding, malformed input, slow clients")
    found = Findings()
    victim = run.probe_accounts[0]
    real = run.probe_accounts[:5]
    targets = [*real, *[f"ghost{n}" for n in range(len(real))]]
    if not isinstance(run.stack, LocalRunning):
        raise StackError(f"the abuse scenario runs on the local stack only: {LOCAL_ONLY}")
    local = run.stack.local
    gateway = local.gateway_url
    with Probes(gateway, [victim]) as probes:

        def fault() -> None:
            probes.log_in()
            run.mark("stuffing")
            found.stuffing = _stuff(gateway, targets)
            run.mark("flood")
            found.flood = _flood(gateway, local.config.login_burst + 100)
            run.mark("malformed")
            found.malformed = _malformed(gateway)
            run.mark("slow clients")
            found.slow_closed = _slow_clients(local.config.host, local.config.gateway_port)
            run.mark("victim logs in")
            credentials = {"username": victim, "password": DEFAULT_SEED_PASSWORD}
            device = probes.probes[0].client
            found.victim = [
                device.post(path, json=credentials).status_code for path in LOGIN_ROUTES
            ]
            with httpx.Client(base_url=gateway, timeout=10) as stranger:
                found.new_device = [
                    stranger.post(path, json=credentials).status_code for path in LOGIN_ROUTES
                ]

        result.timeline = run.under_load(fault)
    result.checks = _judge(result.timeline, found, real)
    result.notes.append(
        f"Stuffing: {len(targets)} accounts ({len(real)} real, "
        f"{len(targets) - len(real)} unknown), "
        f"{ATTEMPTS_PER_ACCOUNT} wrong passwords each, alternating /session/login and "
        f"/token/login, from {len(STUFFERS)} addresses ({STUFFERS[0]}..{STUFFERS[-1]}). Flood: "
        f"one address ({FLOODER}), nginx's burst + 100 attempts, {FLOOD_CONCURRENCY} at a "
        f"time. Slow clients: {SLOW_CONNECTIONS} "
        f"connections from {SLOW_CLIENT} sending half a request header and nothing more."
    )
    result.notes.append(
        "Malformed requests: "
        + "; ".join(f"{case} -> {status}" for case, status in found.malformed)
    )
    return result


def _judge(timeline: Timeline, found: Findings, real: Sequence[str]) -> list[Check]:
    statuses = Counter(status for _, _, status in found.stuffing)
    hashed = Counter(user for user, _, status in found.stuffing if status == 401)
    known = {s for user, _, s in found.stuffing if user in real}
    unknown = {s for user, _, s in found.stuffing if user not in real}
    readers = timeline.select(names=("session dashboard", "token dashboard"))
    return [
        Check(
            "stuffing: refused, never 200 or 500",
            describe(dict(sorted(statuses.items()))),
            bool(statuses) and not {200, 500} & set(statuses),
        ),
        Check(
            f"stuffing: at most {BUDGET} passwords tried per account, whatever the address",
            f"most tried on one account: {max(hashed.values(), default=0)}",
            max(hashed.values(), default=0) <= BUDGET and 429 in statuses,
        ),
        Check(
            "unknown usernames answered like known ones",
            f"known: {sorted(known)}, unknown: {sorted(unknown)}",
            known == unknown,
        ),
        Check(
            "a flood from one address: 429 at the gateway; past it, tried or shed at once",
            ", ".join(f"{n} x {what}" for what, n in sorted(found.flood.items())),
            found.flood["429 from the gateway"] > 0
            and not any(outcome.startswith("5") and outcome != SHED for outcome in found.flood),
        ),
        Check(
            "malformed and oversized requests: 4xx, never 5xx",
            tally([status for _, status in found.malformed]),
            bool(found.malformed) and all(400 <= s < 500 for _, s in found.malformed),
        ),
        Check(
            "slow clients cut off by the gateway",
            f"{found.slow_closed}/{SLOW_CONNECTIONS} closed by nginx within {SLOW_WATCH:g} s",
            found.slow_closed == SLOW_CONNECTIONS,
        ),
        Check(
            "the real user, on a device used before, logs in during the attack",
            f"session, token: {found.victim}",
            found.victim == [200, 200],
        ),
        Check(
            "the same user on a new device waits out the window (by design)",
            f"session, token: {found.new_device}",
            set(found.new_device) <= {200, 429},
        ),
        Check(
            "readers: no failure",
            f"{Timeline.failed(readers)} of {Timeline.total(readers):,} failed "
            f"({describe(Timeline.by_status(readers, failed_only=True))})",
            Timeline.failed(readers) == 0,
        ),
    ]


def _client(gateway: str, address: str, connections: int = 10) -> httpx.Client:
    # The source address is what nginx's limit_req keys on: one per simulated attacker.
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    transport = httpx.HTTPTransport(local_address=address, limits=limits)
    return httpx.Client(base_url=gateway, transport=transport, timeout=30)


def _stuff(gateway: str, targets: Sequence[str]) -> list[tuple[str, bool, int]]:
    clients = [_client(gateway, address) for address in STUFFERS]
    answers = []
    try:
        attempt = 0
        for _ in range(ATTEMPTS_PER_ACCOUNT):
            for username in targets:
                client = clients[attempt % len(clients)]
                path = LOGIN_ROUTES[attempt % len(LOGIN_ROUTES)]
                attempt += 1
                answer = client.post(path, json={"username": username, "password": WRONG})
                answers.append((username, "X-Replica" in answer.headers, answer.status_code))
    finally:
        for client in clients:
            client.close()
    return answers


def _flood(gateway: str, attempts: int) -> Counter[str]:
    """Many logins at once from one address, as a flood arrives: faster than nginx's rate."""
    seen: Counter[str] = Counter()
    with (
        _client(gateway, FLOODER, FLOOD_CONCURRENCY) as client,
        ThreadPoolExecutor(FLOOD_CONCURRENCY) as pool,
    ):

        def attempt(number: int) -> str:
            answer = client.post(
                "/session/login", json={"username": f"flood{number}", "password": WRONG}
            )
            where = "a replica" if "X-Replica" in answer.headers else "the gateway"
            shed = answer.status_code == 503 and "Retry-After" in answer.headers
            if shed and where == "a replica":
                return SHED
            return f"{answer.status_code} from {where}"

        for outcome in pool.map(attempt, range(attempts)):
            seen[outcome] += 1
    return seen


def _malformed(gateway: str) -> list[tuple[str, int]]:
    json_type = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, str, dict[str, str], bytes]] = [
        ("body over 16 KiB", "POST", "/session/login", json_type, b"{" + b" " * 20_000 + b"}"),
        ("broken JSON", "POST", "/session/login", json_type, b'{"username": '),
        ("JSON array", "POST", "/token/login", json_type, b"[1, 2, 3]"),
        (
            "username of 10k chars",
            "POST",
            "/session/login",
            json_type,
            b'{"username": "' + b"a" * 10_000 + b'", "password": "x"}',
        ),
        (
            "password of 300 chars",
            "POST",
            "/token/login",
            json_type,
            b'{"username": "loaduser0", "password": "' + b"p" * 300 + b'"}',
        ),
        (
            "form instead of JSON",
            "POST",
            "/session/login",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"username=a&password=b",
        ),
        (
            "cookie of 40 KiB",
            "GET",
            "/session/dashboard",
            {"Cookie": "authscale_session=" + "c" * 40_000},
            b"",
        ),
        ("URL of 20 KiB", "GET", "/session/" + "u" * 20_000, {}, b""),
        ("garbage bearer", "GET", "/token/dashboard", {"Authorization": "Bearer not.a.jwt"}, b""),
        (
            "alg none token",
            "GET",
            "/token/dashboard",
            {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."},
            b"",
        ),
        ("unknown method", "PATCH", "/session/login", json_type, b"{}"),
    ]
    with httpx.Client(base_url=gateway, timeout=10) as client:
        return [
            (name, client.request(method, path, headers=headers, content=body).status_code)
            for name, method, path, headers, body in cases
        ]


def _slow_clients(host: str, port: int) -> int:
    """Open connections that send half a header and stall; count those nginx closes."""
    sockets = []
    try:
        for _ in range(SLOW_CONNECTIONS):
            conn = socket.create_connection(
                (host, port), timeout=2, source_address=(SLOW_CLIENT, 0)
            )
            conn.sendall(b"GET /session/ping HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            conn.settimeout(0.05)
            sockets.append(conn)
        closed: set[int] = set()
        deadline = time.monotonic() + SLOW_WATCH
        while len(closed) < len(sockets) and time.monotonic() < deadline:
            for index, conn in enumerate(sockets):
                if index in closed:
                    continue
                try:
                    if conn.recv(4096) == b"":
                        closed.add(index)
                except TimeoutError:
                    pass
                except OSError:
                    closed.add(index)
            time.sleep(0.2)
        return len(closed)
    finally:
        for conn in sockets:
            conn.close()
