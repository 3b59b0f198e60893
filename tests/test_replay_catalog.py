"""Every catalog finding replays: ``reproduced 10/10`` with identical traces, on SQLite and
on MariaDB. The catalog is every Target in ``targets/`` that declares the findings it must
produce, so a target added there is covered without touching this file."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import socket
from pathlib import Path

import pytest

import targets
from fuzzer import api
from fuzzer.target.contract import Target

DATABASES = ("sqlite", "mariadb")
TIMES = 10


def catalog() -> list[tuple[str, str, str]]:
    """(reference, kind, database) of every finding the catalog's targets declare there
    (at the database's default isolation level)."""
    found = []
    for module in pkgutil.iter_modules(targets.__path__):
        loaded = importlib.import_module(f"targets.{module.name}")
        for name, value in sorted(vars(loaded).items()):
            if isinstance(value, Target):
                reference = f"targets.{module.name}:{name}"
                found += [
                    (reference, kind, db) for db in DATABASES for kind in sorted(value.expected(db))
                ]
    return found


def unavailable(db: str) -> str:
    """Why a database cannot be used here, or ''."""
    if db == "sqlite":
        return ""
    if importlib.util.find_spec("fuzzer.db.mysql") is None:
        return "the MariaDB backend (fuzzer/db/mysql.py) is not in this checkout yet"
    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=1).close()
    except OSError as exc:
        return f"MariaDB is not up on 127.0.0.1:3306 ({exc})"
    return ""


@pytest.mark.parametrize(("reference", "kind", "db"), catalog())
def test_every_catalog_finding_replays_10_of_10(
    reference: str, kind: str, db: str, tmp_path: Path
) -> None:
    reason = unavailable(db)
    if reason:
        print(f"skipped on {db}: {reason}")
        pytest.skip(reason)
    report = api.run(
        reference,
        db=db,
        max_examples=500,
        seed=3,
        example_db=None,
        report_dir=str(tmp_path),
        stop_at_first=True,  # the search is not what this test measures
        stop_kinds={kind},
    )
    paths = [path for finding, path in report.files if finding.kind == kind]
    assert paths, f"{reference} on {db}: no {kind} in {report.result.examples} examples"
    for path in paths:
        result = api.replay(path, times=TIMES)
        assert (result.status, result.reproduced) == ("reproduced", TIMES), (
            f"{reference} {kind} on {db}: reproduced {result.reproduced}/{TIMES}"
        )
        assert result.traces_identical
        assert result.database["dialect"] == report.database["dialect"]
