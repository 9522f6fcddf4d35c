"""Free ports for a stack's servers: below the kernel's ephemeral range, never handed out twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from authscale.lab.stack import processes


def test_free_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    low, _ = processes._ephemeral_range()
    ports = [processes.free_port("127.0.0.1", span=10_000) for _ in range(200)]
    assert len(set(ports)) == 200
    assert all(processes.PORT_FLOOR <= port < low - 10_000 for port in ports)


def test_no_room_below_the_ephemeral_range_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = tmp_path / "ip_local_port_range"
    narrow.write_text(f"{processes.PORT_FLOOR + 50}\t60999\n")
    monkeypatch.setattr(processes, "EPHEMERAL_RANGE", narrow)
    with pytest.raises(processes.StackError, match="no ports below the ephemeral range"):
        processes.free_port()
