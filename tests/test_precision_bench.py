"""bench.precision: one cell runs a fixed twin in a ``fuzzer run`` of its own and reads
its summary; a target that cannot run is an error in its row, not a clean one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.precision import Cell, examples_per_db, failed, run_cell


def test_a_cell_reads_the_runs_summary(tmp_path: Path) -> None:
    cell = run_cell(Cell("profile", "sqlite", 5), tmp_path, seed=1, end=None)
    assert (cell.examples, cell.findings, cell.exit_code) == (5, [], 0), cell
    assert cell.stop == "max examples (5)"
    assert not failed(cell)
    assert (tmp_path / "precision" / "profile-sqlite" / "summary.json").exists()


def test_a_target_that_cannot_run_is_an_error(tmp_path: Path) -> None:
    cell = run_cell(Cell("no_such_story", "sqlite", 5), tmp_path, seed=1, end=None)
    assert cell.stop in ("error", "crashed") and cell.error, cell
    assert failed(cell)


def test_examples_per_database() -> None:
    assert examples_per_db("sqlite=20") == {"sqlite": 20, "mariadb": 300, "postgres": 300}
    with pytest.raises(SystemExit, match="db=N"):
        examples_per_db("oracle=3")
