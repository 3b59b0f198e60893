"""Fault injection (``--faults``): an injected retryable error is part of the schedule,
raised as the database driver raises it, judged against serial runs where the faulted
request either succeeded once or had no effect, and shrunk to one request and one error.

The catalog story is ``targets.retries``: three wrong ways to retry and a right one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from fuzzer import api
from fuzzer.execute import faults as injected
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled
from fuzzer.findings import classify, fails_run, parse_fail_on
from fuzzer.judge.faults import FaultVerdict
from fuzzer.model import Fault, Gene, Request, Scenario, Step
from fuzzer.modes.session import Session
from fuzzer.search.plan.schedules import conflict_points, fault_points, resolve
from fuzzer.strategies import genes
from targets import retries
from tests.conftest import Cli, need

DEPOSIT = Request("POST /accounts/1/deposit", "POST", "/accounts/1/deposit", json={"amount": 10})
KIND_OF = {"sqlite": "timeout", "mariadb": "deadlock", "postgres": "serialization"}


def faulted(step: int, kind: str = "timeout") -> Scenario:
    """One deposit whose statement at its own step ``step`` fails with ``kind``."""
    return Scenario((DEPOSIT,), (Gene(faults=(Fault(step, kind),)),))


def replay(reference: str, scenario: Scenario, db: str = "sqlite") -> tuple[object, list[str]]:
    def work(session: Session) -> tuple[object, list[str]]:
        assert session.oracle is not None
        execution = session.execute(scenario, Controlled())
        verdict = session.oracle.judge(scenario, execution)
        return execution, [f.kind for f in classify(scenario, execution, verdict)]

    return Session(load_target(reference), db=db).run(work)


# -- the schedule carries faults -------------------------------------------------------


def test_a_gene_with_faults_round_trips_through_json_and_one_without_is_unchanged() -> None:
    gene = Gene(1, (2,), (Fault(3, "deadlock"),))
    assert Gene.from_json(json.loads(json.dumps(gene.to_json()))) == gene
    assert Gene(1, (2,)).to_json() == {"priority": 1, "yields": [2]}  # old reports read alike
    step = Step(0, 3, "sql", "UPDATE t SET a = 1", injected="1213")
    assert Step.from_json(step.to_json()).injected == "1213"


@settings(max_examples=30, database=None)
@given(genes("conflict"))
def test_without_faults_no_gene_draws_one(gene: Gene) -> None:
    assert gene.faults == ()


@settings(max_examples=30, database=None)
@given(genes("conflict", fault_kinds=("timeout",)))
def test_with_faults_a_gene_draws_at_most_two_of_the_chosen_kinds(gene: Gene) -> None:
    assert len(gene.faults) <= 2
    assert all(f.kind == "timeout" for f in gene.faults)


def test_a_drawn_fault_lands_on_a_statement_that_takes_locks_conflicting_ones_first() -> None:
    update = "UPDATE accounts SET balance = balance + 1 WHERE id = 1"
    trace = [
        Step(0, 1, "start"),
        Step(0, 2, "sql", "SELECT balance FROM accounts WHERE id = 1"),
        Step(0, 3, "sql", "INSERT INTO notices (text) VALUES ('x')"),
        Step(0, 4, "sql", update),
        Step(1, 1, "start"),
        Step(1, 2, "sql", update),
    ]
    # the UPDATE conflicts with the other request's: first; then the INSERT just before
    # it; the plain read last (only a lost connection strikes there)
    assert fault_points(trace, 2, conflict_points(trace, 2))[0] == (4, 3, 2)
    scenario = Scenario((DEPOSIT, DEPOSIT), (Gene(faults=(Fault(0, "deadlock"),)), Gene()))
    assert resolve(scenario, "conflict", trace).schedule[0].faults == (Fault(4, "deadlock"),)
    assert injected.strikes("deadlock", update)
    assert not injected.strikes("deadlock", "SELECT balance FROM accounts")
    assert injected.strikes("deadlock", "SELECT balance FROM accounts FOR UPDATE")
    assert injected.strikes("disconnect", "SELECT 1")


def test_each_database_raises_only_its_own_retryable_errors() -> None:
    assert injected.available("sqlite") == ("timeout",)
    assert injected.available("mysql") == ("deadlock", "timeout", "disconnect")
    assert injected.available("postgresql") == ("deadlock", "serialization", "disconnect")
    assert injected.chosen("sqlite", ("deadlock", "timeout")) == ("timeout",)
    with pytest.raises(Exception, match="cannot raise these errors; it can raise: timeout"):
        injected.chosen("sqlite", ("deadlock",))


# -- the gate raises the real error, inside SQLAlchemy ---------------------------------


def test_the_injected_error_is_the_drivers_and_sqlalchemy_sees_it() -> None:
    execution, kinds = replay("targets.retries:stale", faulted(3))
    step = next(s for s in execution.trace if s.injected)  # type: ignore[attr-defined]
    assert step.injected == "SQLITE_BUSY"
    assert step.text.startswith("INSERT INTO notices")
    # recorded by SQLAlchemy's handle_error: raised inside its execution, and wrapped
    assert step.error == "OperationalError: database is locked"
    response = execution.responses[0]  # type: ignore[attr-defined]
    assert response.status == 500
    assert response.error.startswith(
        "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"
    )
    assert kinds == ["unhandled-retryable"]


def test_serial_references_never_inject() -> None:
    """The same scenario without its fault, run alone, is clean: faults are only for the
    controlled run."""
    _, kinds = replay("targets.retries:stale", Scenario((DEPOSIT,), (Gene(),)))
    assert kinds == []


@pytest.mark.parametrize(
    ("reference", "step", "kind"),
    [
        ("targets.retries:buggy", 4, "duplicate-effect"),  # after the notice's COMMIT
        ("targets.retries:stale", 5, "stale-retry"),  # in the retried COMMIT's flush
        ("targets.retries:partial", 5, "partial-commit"),  # in step 2, after step 1
    ],
)
def test_each_wrong_retry_shows_its_kind_with_one_request_and_one_fault(
    reference: str, step: int, kind: str
) -> None:
    _, kinds = replay(reference, faulted(step))
    assert kinds == [kind]


def test_a_request_that_gave_up_without_committing_is_not_blamed_for_the_others() -> None:
    """R1 gives up (a 500 before anything committed), R2's retry commits nothing: a
    stale retry of R2 (and R1's 500), not a partial commit of R1."""
    scenario = Scenario(
        (DEPOSIT, DEPOSIT),
        (Gene(faults=(Fault(3, "timeout"),)), Gene(faults=(Fault(4, "timeout"),))),
    )
    _, kinds = replay("targets.retries:stale", scenario)
    assert sorted(kinds) == ["stale-retry", "unhandled-retryable"]


def test_a_fault_the_app_retries_correctly_or_gives_up_on_cleanly_is_no_finding() -> None:
    for step in (2, 3, 4, 5):
        execution, kinds = replay("targets.retries:fixed", faulted(step))
        assert kinds == [], (step, execution)
    # the first statement of the two-step handler: nothing committed, a clean 503
    execution, kinds = replay("targets.retries:partial", faulted(2))
    assert execution.responses[0].status == 503  # type: ignore[attr-defined]
    assert kinds == []


def test_a_lost_connection_is_invalidated_and_a_retry_on_a_fresh_session_succeeds(
    server: str,
) -> None:
    """--faults disconnect: SQLAlchemy takes the injected error for a disconnect and
    invalidates the connection; the gate records the rollback of an invalidated
    connection, and the fixed twin's next attempt runs on a new one."""
    execution, kinds = replay("targets.retries:fixed", faulted(2, "disconnect"), db=server)
    response = execution.responses[0]  # type: ignore[attr-defined]
    assert (response.status, kinds) == (200, [])
    trace = execution.trace  # type: ignore[attr-defined]
    assert [s.kind for s in trace[1:4]] == ["sql", "rollback", "sql"]
    assert trace[1].injected in ("2013", "08006")
    assert trace[3].connection != trace[1].connection  # a new connection


def test_a_verdict_with_faults_says_who_was_hit_and_who_gave_up() -> None:
    def work(session: Session) -> FaultVerdict:
        assert session.oracle is not None
        scenario = faulted(5)
        verdict = session.oracle.judge(scenario, session.execute(scenario, Controlled()))
        assert isinstance(verdict, FaultVerdict)
        return verdict

    verdict = Session(load_target("targets.retries:partial")).run(work)
    assert verdict.status == "violation"
    assert (verdict.faulted, verdict.gave_up, verdict.aborted) == ((0,), (0,), (0,))
    assert verdict.injected == ((0, "SQLITE_BUSY"),)


# -- the search finds and shrinks them -------------------------------------------------


def run(reference: str, db: str, examples: int) -> api.RunReport:
    return api.run(
        reference,
        db=db,
        max_examples=examples,
        seed=1,
        faults=(KIND_OF[db],),
        report_dir=None,
        example_db=None,
        shrink_budget=30,
    )


def check_found(report: api.RunReport, expected: frozenset[str]) -> None:
    assert {f.kind for f in report.findings} == expected
    for finding in report.findings:
        assert len(finding.scenario.requests) == 1, finding.kind
        assert sum(len(g.faults) for g in finding.scenario.schedule) == 1, finding.kind
        assert finding.flaky is None, finding.kind


def test_the_search_finds_a_repeated_side_effect_and_its_report_carries_the_fault(
    tmp_path: Path,
) -> None:
    report = api.run(
        "targets.retries:buggy",
        max_examples=10,
        seed=1,
        faults=("timeout",),
        report_dir=str(tmp_path),
        example_db=None,
        shrink_budget=30,
    )
    check_found(report, retries.buggy.expected_with_faults)
    assert report.result.first is not None and report.result.first.examples <= 5
    (written,) = report.written
    document = json.loads(Path(written.json).read_text(encoding="utf-8"))
    assert document["scenario"]["schedule"][0]["faults"] == [{"step": 4, "kind": "timeout"}]
    assert any(s.get("injected") == "SQLITE_BUSY" for s in document["trace"])
    page = (Path(written.json).parent / "report.html").read_text(encoding="utf-8")
    assert '<span class="tag injected">injected SQLITE_BUSY</span>' in page
    test = Path(written.test)  # the regression test pins it too
    assert "'faults': [{'step': 4, 'kind': 'timeout'}]" in test.read_text(encoding="utf-8")
    replayed = api.replay(written.json)
    assert (replayed.status, replayed.kind) == ("reproduced", "duplicate-effect")


def test_without_faults_the_search_injects_nothing() -> None:
    report = api.run(
        "targets.retries:buggy", max_examples=10, seed=1, report_dir=None, example_db=None
    )
    assert report.findings == []


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", "mariadb", "postgres"])
@pytest.mark.parametrize("variant", ["buggy", "stale", "partial"])
def test_every_wrong_retry_is_found_on_every_database(db: str, variant: str) -> None:
    if db != "sqlite":
        need(db)
    expected = getattr(retries, variant).expected(faults=True)
    check_found(run(f"targets.retries:{variant}", db, 30), expected)


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", "mariadb", "postgres"])
def test_the_fixed_twin_is_clean_with_faults(db: str) -> None:
    if db != "sqlite":
        need(db)
    report = api.run(
        "targets.retries:fixed",
        db=db,
        max_examples=100,
        seed=3,
        faults=injected.DEFAULT_KINDS,
        report_dir=None,
        example_db=None,
    )
    assert report.findings == []


# -- the command line ------------------------------------------------------------------


def test_fail_on_can_leave_unhandled_retryable_errors_out() -> None:
    failing = parse_fail_on("partial-commit,duplicate-effect,stale-retry")
    _, kinds = replay("targets.retries:stale", faulted(3))
    assert kinds == ["unhandled-retryable"]

    def work(session: Session) -> list[bool]:
        assert session.oracle is not None
        scenario = faulted(3)
        execution = session.execute(scenario, Controlled())
        verdict = session.oracle.judge(scenario, execution)
        return [fails_run(f, failing) for f in classify(scenario, execution, verdict)]

    assert Session(load_target("targets.retries:stale")).run(work) == [False]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bogus", "expected 'all' or a comma-separated list of deadlock, serialization"),
        ("deadlock", "--faults deadlock: SQLite cannot raise these errors; it can raise: timeout"),
    ],
)
def test_bad_faults_are_one_line_and_exit_2(
    cli: Cli, tmp_path: Path, value: str, expected: str
) -> None:
    result = cli("run", "targets.retries:fixed", "--faults", value, "-n", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "--faults" in result.stderr.strip().splitlines()[-1]
    assert expected in " ".join(result.stderr.split()), result.stderr
