"""Signing-key rotation under load: the issuer publishes a new key, then signs with it, while
tokens of the old key stay good on every token replica."""

from __future__ import annotations

import time

from authscale.lab.faults.checks import Check, ScenarioResult
from authscale.lab.faults.probes import Probes, kid_of, tally
from authscale.lab.faults.runner import FaultRun
from authscale.lab.faults.timeline import Timeline, describe
from authscale.tokens.settings import KeyringSettings

#: Short enough to rotate within a run: token replicas refetch every second, so a new key may
#: sign after 5 s (the keyring refuses a delay shorter than a replica can take to see it).
ROTATION_ENV = {
    "AUTHSCALE_JWKS_REFRESH_INTERVAL": "1",
    "AUTHSCALE_JWKS_MIN_REFETCH_INTERVAL": "1",
    "AUTHSCALE_KEY_ACTIVATION_DELAY": "5",
}


def key_rotation(run: FaultRun) -> ScenarioResult:
    result = ScenarioResult("key-rotation", "Signing-key rotation under load")
    # The keys' directory is the stack's business; a placeholder satisfies the settings.
    settings = KeyringSettings.from_environ({**ROTATION_ENV, "AUTHSCALE_SIGNING_KEYS_DIR": "-"})
    statuses: dict[str, list[int]] = {"old": [], "refresh": [], "new": []}
    kids: dict[str, set[str]] = {"old": set(), "new": set()}
    with Probes(run.stack.gateway_url, run.probe_accounts) as probes:

        def on_every_replica() -> list[int]:
            urls = run.stack.replicas("token").values()
            return [status for url in urls for status in probes.token_statuses(url)]

        def fault() -> None:
            probes.log_in()
            kids["old"] = {kid_of(p.access_token) for p in probes.probes}
            run.mark("new key published")
            run.stack.rotate_keys(settings.activation_delay)
            time.sleep(settings.activation_delay + 1)
            run.mark("new key signs")
            # Tokens of the old key, then of the new one, on every token replica directly.
            statuses["old"] = on_every_replica()
            statuses["refresh"] = probes.refresh_statuses()
            kids["new"] = {kid_of(p.access_token) for p in probes.probes}
            statuses["new"] = on_every_replica()

        timeline = run.under_load(fault, weights={"dashboard": 100, "refresh": 2})
    tokens = timeline.select(prefix="token ")
    result.checks = [
        Check(
            "0 authentication failures under load",
            f"{Timeline.failed(tokens)} of {Timeline.total(tokens):,} token requests failed "
            f"({describe(Timeline.by_status(tokens, failed_only=True))})",
            Timeline.failed(tokens) == 0,
        ),
        Check(
            "tokens of the old key accepted by every replica after the switch",
            tally(statuses["old"]),
            set(statuses["old"]) == {200},
        ),
        Check(
            "tokens of the new key accepted by every replica",
            f"refresh {tally(statuses['refresh'])}; dashboard {tally(statuses['new'])}",
            set(statuses["new"]) == {200} and kids["new"].isdisjoint(kids["old"]),
        ),
    ]
    result.notes.append(
        f"Key ids: before {sorted(kids['old'])}, after {sorted(kids['new'])}; activation delay "
        f"{settings.activation_delay:g} s, JWKS refresh interval "
        f"{ROTATION_ENV['AUTHSCALE_JWKS_REFRESH_INTERVAL']} s."
    )
    result.timeline = timeline
    return result
