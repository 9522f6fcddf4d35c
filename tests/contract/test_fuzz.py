"""Schemathesis against the live local stack: no 5xx, and every answer conforms to the contract.

Deterministic generation (the same cases on every run: stronger than a fixed seed, which
Schemathesis ignores in this mode) and a bounded number of examples per operation, in the
coverage and fuzzing phases, so a run is repeatable.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from authscale.core.service import OPENAPI
from authscale.lab.stack.local import LocalStack

EXAMPLES = 20
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)


def schemathesis() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(found).exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return found


def test_the_fuzzer_finds_no_5xx_and_no_nonconforming_answer(
    stack: LocalStack, tmp_path: Path
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [
            schemathesis(),
            "run",
            str(OPENAPI),
            *("--url", stack.gateway_url),
            *("--checks", ",".join(CHECKS)),
            *("--max-examples", str(EXAMPLES)),
            "--generation-deterministic",
            *("--workers", "1"),
            *("--request-timeout", "20"),
            *("--report", "junit"),
            *("--report-dir", str(tmp_path)),
            "--no-color",
        ],
        # Its cache directory goes with the test's, not into the checkout.
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    elapsed = time.monotonic() - started
    summary = [line for line in result.stdout.splitlines() if line.strip()][-20:]
    print(f"schemathesis in {elapsed:.0f} s:\n" + "\n".join(summary))
    assert result.returncode == 0, result.stdout[-6000:]
