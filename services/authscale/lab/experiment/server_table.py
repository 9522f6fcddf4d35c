"""The report's server comparison: what each server changes in rate, CPU and replicas needed.

Replicas needed for a rate scale with the replicas' CPU per request, so a server's figure
relative to Hypercorn's (or to the first server measured, without Hypercorn) is the share of
Hypercorn's replicas it needs for the same rate.
"""

from __future__ import annotations

from collections.abc import Sequence

from authscale.core.servers import DEFAULT_SERVER
from authscale.lab.experiment.cells import CellResult


def section(results: Sequence[CellResult]) -> list[str]:
    """Markdown lines comparing the servers; none when the run measured a single server."""
    servers = list(dict.fromkeys(result.server for result in results))
    if len(servers) < 2:
        return []
    baseline = DEFAULT_SERVER if DEFAULT_SERVER in servers else servers[0]
    by_cell = {(r.variant, r.replicas, r.server): r for r in results}
    rows = []
    for result in results:
        base = by_cell.get((result.variant, result.replicas, baseline))
        base_cpu = base.cpu_per_request(base.role) if base else 0.0
        cpu = result.cpu_per_request(result.role)
        rows.append(
            [
                result.variant,
                result.replicas,
                result.server,
                f"{result.rate:,.0f}",
                f"{result.rate / base.rate:.2f}x" if base and base.rate else "?",
                f"{cpu * 1e6:,.0f}",
                f"{cpu / base_cpu:.2f}" if base_cpu else "?",
            ]
        )
    header = [
        "variant",
        "replicas",
        "server",
        "req/s",
        f"req/s vs {baseline}",
        "replicas' CPU µs/req",
        f"replicas needed vs {baseline}",
    ]
    lines = ["", "## Servers side by side", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    lines += [
        "",
        f"Replicas needed for the same rate, as a share of {baseline}'s, from the replicas' CPU",
        "per request (the replicas being the part the server changes). The servers' cells of a",
        "variant and replica count ran back to back, under the same machine load.",
    ]
    return lines
