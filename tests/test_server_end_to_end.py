"""The whole pipeline on MariaDB and PostgreSQL: found, shrunk, replayed 20/20; errors the
server raises under concurrency are findings; the coupon target tells the levels apart."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from fuzzer import api
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled
from fuzzer.findings import fingerprint
from fuzzer.model import Gene, Request, Scenario
from fuzzer.modes.matrix import Cell, CellResult, expectation_key, replay_matrix
from fuzzer.modes.session import Session
from fuzzer.report.json import FORMAT
from fuzzer.search.engine import evaluate

from .conftest import down, servers_required, unavailable


@pytest.mark.slow
def test_the_stale_merge_is_found_shrunk_and_replays_20_of_20(server: str, tmp_path: Any) -> None:
    report = api.run(
        "targets.profile:buggy",
        db=server,
        max_examples=100,
        seed=5,
        report_dir=str(tmp_path),
        example_db=None,
    )
    assert [f.kind for f in report.findings] == ["lost-update"]
    finding = report.findings[0]
    assert len(finding.scenario.requests) == 2
    assert finding.flaky is None
    assert report.costs.scheduler.timeouts == 0  # every lock wait was told by the server
    (path,) = [p for _, p in report.files]
    with open(path, encoding="utf-8") as handle:
        recorded = json.load(handle)["database"]
    assert recorded["server_version"] == report.database["server_version"]
    result = api.replay(path, times=20)
    assert (result.status, result.reproduced, result.traces_identical) == ("reproduced", 20, True)


@pytest.mark.slow
def test_the_fixed_twin_is_clean_and_its_lock_waits_come_from_the_server(server: str) -> None:
    report = api.run("targets.profile:fixed", db=server, max_examples=100, seed=4, example_db=None)
    assert report.findings == []
    assert not report.result.unknown
    stats = report.costs.scheduler
    assert stats.db_blocks > 0  # two UPDATEs of one row: the second waited, and was seen
    assert stats.timeouts == 0


LEFT = Request("POST /transfer", "POST", "/transfer", json={"from": 1, "to": 2, "amount": 5})
RIGHT = Request("POST /transfer", "POST", "/transfer", json={"from": 2, "to": 1, "amount": 7})


def test_a_deadlock_the_server_detects_is_a_concurrency_error(server: str) -> None:
    # R1 locks account 1 and yields; R2 locks 2 and waits for 1; R1 asks for 2: a cycle
    scenario = Scenario(requests=(LEFT, RIGHT), schedule=(Gene(yields=(2,)), Gene()))
    session = Session(load_target("tests.fixtures.transfer:transfers"), db=server)

    def work(s: Session) -> list[Any]:
        assert s.oracle is not None
        return [evaluate(scenario, s.execute, s.oracle) for _ in range(3)]

    runs = session.run(work)
    for execution, _, findings in runs:
        assert [f.kind for f in findings] == ["concurrency-error"]
        errors = [r.error for r in execution.responses if r is not None and r.error]
        assert len(errors) == 1
        assert ("1213" if server == "mariadb" else "DeadlockDetected") in errors[0]
        assert execution.hang is None
    first = runs[0][0]
    for execution, _, _ in runs[1:]:  # the same victim, the same trace, every time
        assert (execution.trace, execution.responses, execution.tables) == (
            first.trace,
            first.responses,
            first.tables,
        )


REDEEM = "POST /coupons/WELCOME/redeem"
ADA = Request(REDEEM, "POST", "/coupons/WELCOME/redeem", json={"customer": "ada"})
BOB = Request(REDEEM, "POST", "/coupons/WELCOME/redeem", json={"customer": "bob"})
# R1 reads the coupon (its snapshot begins) and yields; R2 redeems; then R1 goes on
RACE = Scenario(requests=(ADA, BOB), schedule=(Gene(yields=(2,)), Gene()))


def recorded(tmp_path: Any, reference: str) -> str:
    """A finding file holding the coupon race's scenario and schedule."""
    path = os.path.join(str(tmp_path), f"{reference.rsplit(':', 1)[-1]}.json")
    document = {
        "format": FORMAT,
        "target": reference,
        "kind": "limit-overrun",
        "fingerprint": fingerprint("limit-overrun", [REDEEM]),
        "scenario": RACE.to_json(),
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    return path


def coupon_cells() -> list[Cell]:
    grid = [Cell("sqlite")]
    for database in ("mariadb", "postgres"):
        if not unavailable(database):
            levels = ("read-committed", "repeatable-read", "serializable")
            grid += [Cell(database, level) for level in levels]
        elif servers_required():
            down(database, unavailable(database))
    if len(grid) == 1:
        pytest.skip("neither MariaDB nor PostgreSQL is available; .ci/run starts them")
    return grid


def by_cell(results: list[CellResult]) -> dict[tuple[str, str], CellResult]:
    return {(r.cell.database, r.cell.level): r for r in results}


@pytest.mark.slow
def test_the_coupon_race_in_every_cell(tmp_path: Any) -> None:
    grid = coupon_cells()
    buggy = replay_matrix(recorded(tmp_path, "targets.coupon:buggy"), grid, hang_timeout=1.0)
    for result in buggy:
        assert result.status != "unavailable", result.reason
        assert result.as_expected, (result.cell, result.kinds, result.shown)
        assert result.timeouts == 0, result.cell  # the Python lock is seen, not timed out
    cells = by_cell(buggy)
    assert cells[("sqlite", "default")].kinds == ()
    if ("mariadb", "repeatable-read") in cells:
        assert cells[("mariadb", "repeatable-read")].kinds == ("limit-overrun",)  # two orders
        assert cells[("mariadb", "read-committed")].kinds == ()
        (hang,) = cells[("mariadb", "serializable")].shown
        assert "blocked in Python at targets/coupon.py" in hang
        assert "row lock on coupons" in hang
    if ("postgres", "repeatable-read") in cells:
        for level in ("repeatable-read", "serializable"):
            (error,) = cells[("postgres", level)].shown
            assert "SerializationFailure" in error
        assert cells[("postgres", "read-committed")].kinds == ()

    fixed = replay_matrix(recorded(tmp_path, "targets.coupon:fixed"), grid, hang_timeout=1.0)
    assert {r.cell: r.kinds for r in fixed} == {cell: () for cell in grid}


def test_with_snapshot_isolation_on_mariadb_reports_error_1020(mariadb: str) -> None:
    url = "mysql+pymysql://root@127.0.0.1:3306?init_command=SET+SESSION+innodb_snapshot_isolation%3DON"
    session = Session(load_target("targets.coupon:buggy"), db=url)

    def work(s: Session) -> Any:
        assert s.oracle is not None
        return s.database_info, evaluate(RACE, s.execute, s.oracle, Controlled())

    info, (execution, _, findings) = session.run(work)
    assert info["settings"]["innodb_snapshot_isolation"] == "ON"
    assert expectation_key(info) == ("mariadb", "repeatable-read")
    assert [f.kind for f in findings] == ["concurrency-error"]
    (error,) = [r.error for r in execution.responses if r is not None and r.error]
    assert "1020" in error
