"""How the bench shares the machine's cores between the replica, wrk and the rest."""

from __future__ import annotations

from authscale.lab.bench.measurement import Layout


def test_layout_gives_the_replica_a_core_of_its_own() -> None:
    two = Layout.for_cpus([0, 1])
    assert two.replica == {1} and two.generator == {0} and two.rest == {0}
    four = Layout.for_cpus([0, 1, 2, 3])
    assert four.replica == {3} and four.generator == {0} and four.rest == {1, 2}
    one = Layout.for_cpus([0])
    assert "only indicative" in one.note
