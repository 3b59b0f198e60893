"""How often a finding reproduced is a small type (issue 18, item 6), written as "k/N"."""

from __future__ import annotations

import pytest

from fuzzer.findings import Reproduced
from fuzzer.modes.matrix import Cell, CellResult, render


def test_reproductions_read_as_k_of_n_and_know_never() -> None:
    assert str(Reproduced(2, 3)) == "2/3" and not Reproduced(2, 3).never
    assert Reproduced(0, 3).never
    assert Reproduced.unless_always(3, 3) is None
    assert Reproduced.unless_always(1, 3) == Reproduced(1, 3)
    for hits, tries in ((4, 3), (-1, 3), (0, 0)):
        with pytest.raises(ValueError):
            Reproduced(hits, tries)


def test_a_matrix_replay_cell_shows_its_count() -> None:
    result = CellResult(
        Cell("sqlite"), "found", kinds=("lost-update",), reproduced=Reproduced(2, 5)
    )
    assert "lost-update (2/5)" in render([result], title="t")
