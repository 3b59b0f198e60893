"""Quality: every catalog target shows exactly its declared findings, and its fixed twin none.

For each story in ``targets/`` and each database (SQLite always; MariaDB and PostgreSQL
when their local servers are up): the buggy twin's run reports exactly the kinds the
target declares for that database (``Target.expected``), every race among them shrunk
to the two requests that race and reproducing on every replay; the fixed twin's run
reports nothing. Budgets and seeds are small and fixed (CI time); the acceptance
measurement (1000 examples per fixed twin, detection over many seeds) is
``python -m tests.catalog_survey``, not a test.
"""

from __future__ import annotations

import socket

import pytest

from fuzzer import api
from fuzzer.db import Databases
from fuzzer.errors import FuzzerError
from fuzzer.execute.instrument import load_target
from fuzzer.findings import RACES
from fuzzer.target.contract import Target

from .catalog import CATALOG, DATABASES, CatalogRuns, Story, cell
from .conftest import down

SERVERS = {
    "mariadb": ("MariaDB", 3306),
    "postgres": ("PostgreSQL", 5432),
}


def available(database: str) -> str:
    """Skip, saying why, unless this build supports ``database`` and its server is up."""
    if database == "sqlite":
        return database
    product, port = SERVERS[database]
    try:
        Databases.open(database)  # parses and guards the alias, loads the backend
    except (FuzzerError, ImportError) as exc:
        pytest.skip(f"this build does not support {product} yet ({exc})")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    except OSError as exc:
        down(database, str(exc))
    return database


def expected(target: Target, database: str) -> frozenset[str]:
    return target.expected(database)  # the database's default isolation level


@pytest.mark.slow
@pytest.mark.parametrize(
    ("story", "database"),
    [
        pytest.param(
            story, database, id=f"{story.name}-{database}", marks=cell(story.name, database)
        )
        for story in CATALOG
        for database in DATABASES
    ],
)
def test_the_buggy_twin_shows_its_findings_and_the_fixed_twin_none(
    story: Story, database: str, catalog_runs: CatalogRuns
) -> None:
    db = available(database)
    buggy = load_target(f"targets.{story.name}:buggy")
    report = catalog_runs.buggy(story, db)  # the replay test replays its reports
    kinds = {f.kind for f in report.findings}
    assert kinds == expected(buggy, database), [f.explanation.text() for f in report.findings]
    for finding in report.findings:
        assert not finding.flaky, f"{finding.kind} reproduced only {finding.flaky}"
        if finding.kind in RACES:  # every race of the catalog needs two requests
            assert len(finding.scenario.requests) == 2, finding.scenario.to_json()
        else:  # leaks, wrong engines, serial failures, blocked migrations: one
            assert len(finding.scenario.requests) == 1, finding.scenario.to_json()
        assert finding.explanation.text().endswith(("a contradiction!", "has hung.", ".")), (
            finding.explanation.text()
        )

    fixed = api.run(
        f"targets.{story.name}:fixed",
        db=db,
        max_examples=story.fixed_examples,
        seed=story.seed,
        report_dir=None,
        example_db=None,
    )
    assert fixed.findings == [], [f.explanation.text() for f in fixed.findings]
    assert fixed.result.examples >= story.fixed_examples
    assert not fixed.result.unknown, fixed.result.unknown


def test_every_target_module_is_in_the_catalog_with_its_twin() -> None:
    from pathlib import Path

    bench = {"checkout", "booking", "audit", "coupon"}  # the benchmark's and issue 3's
    bench |= {"attempts", "attempts_redis"}  # issue 12's caches: tests/test_caches.py
    bench |= {"bazaar"}  # 67 endpoints, 500 examples: tests/test_bazaar.py (slow)
    bench |= {"circulation"}  # 13 endpoints, the plan's levels: tests/test_circulation.py
    bench |= {"retries"}  # injected faults: tests/test_faults.py
    bench |= {"slowpage"}  # slow, not stuck (no race, no twin): tests/test_slow.py
    modules = {p.stem for p in Path(__file__).parent.parent.joinpath("targets").glob("*.py")} - {
        "__init__"
    }
    assert {s.name for s in CATALOG} == modules - bench
    for story in CATALOG:
        buggy = load_target(f"targets.{story.name}:buggy")
        fixed = load_target(f"targets.{story.name}:fixed")
        assert buggy.expected_findings, f"{story.name}: the buggy twin declares no finding"
        assert not fixed.expected_findings and not fixed.expected_on
        assert buggy.endpoints == fixed.endpoints  # the same requests, only the app differs
