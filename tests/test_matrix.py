"""`fuzzer matrix`: cells, expectations, the table, and its command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzer.execute.instrument import load_target
from fuzzer.modes.matrix import Cell, CellResult, cells, expectation_key, render

from .conftest import Cli


def test_sqlite_gets_one_cell_servers_one_per_level() -> None:
    grid = cells(["sqlite", "postgres"], ["read-committed", "serializable"])
    assert grid == [
        Cell("sqlite"),
        Cell("postgres", "read-committed"),
        Cell("postgres", "serializable"),
    ]


def test_expectations_are_looked_up_by_database_and_the_level_the_server_reports() -> None:
    coupon = load_target("targets.coupon:buggy")
    mariadb = {"dialect": "mysql", "server_version": "MariaDB 10.11.19"}
    assert expectation_key({**mariadb, "isolation_level": "REPEATABLE READ"}) == (
        "mariadb",
        "repeatable-read",
    )
    assert coupon.expected("mariadb", "repeatable-read") == {"limit-overrun"}
    assert coupon.expected("mariadb", "read-committed") == frozenset()
    assert coupon.expected("postgres", "serializable") == {"concurrency-error"}
    assert coupon.expected(*expectation_key({"dialect": "sqlite"})) == frozenset()


def test_the_table_says_which_cells_differ_from_the_declaration() -> None:
    results = [
        CellResult(Cell("sqlite"), "clean", "SQLite 3.40.1", "SERIALIZABLE", expected=frozenset()),
        CellResult(
            Cell("mariadb", "serializable"),
            "clean",
            "MariaDB 10.11.19",
            "SERIALIZABLE",
            expected=frozenset({"hang"}),
            examples=10,
            seconds=2.0,
        ),
        CellResult(Cell("postgres", "serializable"), "unavailable", reason="Cannot connect"),
    ]
    text = render(results, title="coupon")
    rows = text.splitlines()
    assert rows[0] == "coupon"
    assert any(r.startswith("SQLite 3.40.1") and " yes " in f"{r} " for r in rows)
    (mariadb,) = [r for r in rows if r.startswith("MariaDB")]
    assert "NO (expected hang)" in mariadb and "5.0" in mariadb
    assert "postgres serializable: unavailable: Cannot connect" in text


def test_the_command_line(cli: Cli, tmp_path: Path) -> None:
    usage = cli("matrix", cwd=tmp_path)
    assert usage.returncode == 2
    assert "give either TARGET or --replay REPORT.json" in usage.stderr
    bad = cli("matrix", "targets.profile:buggy", "--db", "oracle://scott@127.0.0.1/x")
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Unsupported database 'oracle'" in errors[0], bad.stderr


@pytest.mark.slow
def test_a_search_in_two_cells(cli: Cli, mariadb: str, tmp_path: Path) -> None:
    result = cli(
        "matrix",
        "targets.profile:fixed",
        "--db",
        "sqlite,mariadb",
        "--isolation",
        "read-committed",
        "-n",
        "15",
        "--seed",
        "1",
        "--no-progress",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout[result.stdout.index("targets.profile:fixed: 15 examples per cell") :]
    assert "SQLite" in table and "MariaDB" in table and "READ COMMITTED" in table
    assert table.count(" clean ") == 2
