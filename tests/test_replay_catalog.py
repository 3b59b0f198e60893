"""Every catalog finding replays: ``reproduced 10/10`` with identical traces, on SQLite and
on MariaDB. The catalog is every Target in ``targets/`` that declares the findings it must
produce, so a target added there is covered without touching this file. A story of
tests/catalog.py replays the reports of its one run per database (the run the catalog test
judges); any other target is searched here until it shows the kind."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import targets
from fuzzer import api
from fuzzer.target.contract import Target

from .catalog import STORIES, CatalogRuns, cell
from .conftest import need

DATABASES = ("sqlite", "mariadb")
TIMES = 10


def catalog() -> list[object]:
    """(reference, kind, database) of every finding the catalog's targets declare there
    (at the database's default isolation level); a story's in the group of its run."""
    found = []
    for module in pkgutil.iter_modules(targets.__path__):
        loaded = importlib.import_module(f"targets.{module.name}")
        for name, value in sorted(vars(loaded).items()):
            if isinstance(value, Target):
                reference = f"targets.{module.name}:{name}"
                story = module.name in STORIES and name == "buggy"
                found += [
                    pytest.param(reference, kind, db, marks=cell(module.name, db) if story else ())
                    for db in DATABASES
                    for kind in sorted(value.expected(db))
                ]
    return found


def searched(reference: str, kind: str, db: str, tmp_path: Path) -> api.RunReport:
    return api.run(
        reference,
        db=db,
        max_examples=500,
        seed=3,
        example_db=None,
        report_dir=str(tmp_path),
        stop_at_first=True,  # the search is not what this test measures
        stop_kinds={kind},
    )


@pytest.mark.slow
@pytest.mark.parametrize(("reference", "kind", "db"), catalog())
def test_every_catalog_finding_replays_10_of_10(
    reference: str, kind: str, db: str, tmp_path: Path, catalog_runs: CatalogRuns
) -> None:
    if db != "sqlite":
        need(db)
    module, _, name = reference.removeprefix("targets.").partition(":")
    if module in STORIES and name == "buggy":
        report = catalog_runs.buggy(STORIES[module], db)
    else:
        report = searched(reference, kind, db, tmp_path)
    paths = [path for finding, path in report.files if finding.kind == kind]
    assert paths, f"{reference} on {db}: no {kind} in {report.result.examples} examples"
    for path in paths:
        result = api.replay(path, times=TIMES)
        assert (result.status, result.reproduced) == ("reproduced", TIMES), (
            f"{reference} {kind} on {db}: reproduced {result.reproduced}/{TIMES}"
        )
        assert result.traces_identical
        assert result.database["dialect"] == report.database["dialect"]
