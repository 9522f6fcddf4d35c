"""The results folder from synthetic cells: summary CSV and JSON, Markdown, and PNG plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from authscale.lab.experiment import report
from tests.lab.experiment.test_capacity import SESSION, cell

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_write_makes_every_file_a_reader_needs(tmp_path: Path) -> None:
    results = [
        *SESSION,
        cell("token", 1, 700, token=900, issuer=30, gateway=200, locust=700),
        cell("token-denylist", 1, 600, token=1000, issuer=30, redis=80, gateway=200, locust=700),
    ]
    path = report.write(tmp_path, results, {"users": "10"}, "authscale experiment --users 10")
    text = path.read_text()
    assert "authscale experiment --users 10" in text
    assert "## Capacity model" in text and "Largest error" in text
    assert "Redis becomes the ceiling for `session`" in text
    assert "Denylist mode costs" in text
    assert "## Environment" in text and "python" in text
    for name in ("rps_vs_replicas.png", "p95_vs_replicas.png", "cpu_per_request.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)
        assert f"]({name})" in text
    with (tmp_path / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [(r["variant"], r["replicas"]) for r in rows] == [
        ("session", "1"),
        ("session", "2"),
        ("token", "1"),
        ("token-denylist", "1"),
    ]
    assert float(rows[0]["cpu_us_per_request_replicas"]) == 1500
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["costs"]["session"]["redis_calls_per_request"] == 1.0
    assert len(summary["model_check"]) == 4
