"""What is and is not a finding, on small real targets (issue 11): noise that never
reproduces, and what fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzer import api
from fuzzer.findings import parse_fail_on

from .conftest import Cli, Ran


def test_a_finding_that_never_reproduces_is_unconfirmed_not_a_finding() -> None:
    report = api.run(
        "tests.fixtures.once:target",
        max_examples=20,
        seed=1,
        report_dir=None,
        example_db=None,
    )
    assert report.findings == []
    assert report.exit_code == 0
    (noise,) = report.result.unconfirmed
    assert noise.kind == "concurrency-error"
    assert str(noise.flaky) == "0/3"
    tries = noise.extra["tries"]
    assert len(tries) == 3
    assert all("matched the serial order" in t for t in tries), tries


def test_fail_on_takes_groups_or_kinds_and_names_a_bad_word() -> None:
    assert parse_fail_on("all") == {"all"}
    assert parse_fail_on("rows,hang") == {"rows", "hang"}
    try:
        parse_fail_on("rows,lost")
    except ValueError as exc:
        assert "'rows,lost'" in str(exc) and "lost-update" in str(exc)
    else:
        raise AssertionError("a bad --fail-on was accepted")


@pytest.mark.slow
def test_a_background_threads_write_makes_examples_unjudgeable_never_a_finding() -> None:
    # issue 14, item 3: a correct atomic counter whose handler starts a thread that writes
    # after the response was a limit-overrun on 3 of 3 seeds
    for seed in (1, 2, 3):
        report = api.run(
            "tests.fixtures.background:target",
            max_examples=15,
            seed=seed,
            report_dir=None,
            example_db=None,
        )
        assert report.findings == [], seed
        assert report.result.unconfirmed == [], seed
        reasons = list(report.result.unknown)
        assert reasons, seed
        assert all("UPDATE counter SET n = n + 1 WHERE id = 2" in r for r in reasons), reasons


def test_a_request_turned_away_under_contention_is_an_abort_whatever_its_status() -> None:
    # issue 11: a 403 "another submission is being processed" that wrote nothing, with the
    # rows of the other request alone, was reported as a race on correct code
    report = api.run(
        "tests.fixtures.busy:target",
        max_examples=15,
        seed=1,
        report_dir=None,
        example_db=None,
    )
    assert report.findings == [] and report.result.unconfirmed == []
    (reason,) = report.result.treated
    assert "rejection under contention (POST /submit answered 403" in reason


def test_a_run_that_exercised_nothing_exits_2_and_says_why(cli: Cli, tmp_path: Path) -> None:
    def _fuzzer(*args: str) -> Ran:
        run = ("run", *args, "-n", "5", "--seed", "1", "--no-progress")
        return cli(*run, cwd=tmp_path)

    # issue 11: every request got a 302 to the app's setup page; it said "No findings", exit 0
    wizard = _fuzzer("tests.fixtures.unexercised:wizard", "--report-dir", str(tmp_path))
    assert wizard.returncode == 2, wizard.stdout + wizard.stderr
    assert "nothing was exercised: every endpoint answered 302 → /setup/" in wizard.stderr
    assert "a setup wizard" in wizard.stderr and "--allow-unexercised" in wizard.stderr
    locked = _fuzzer("tests.fixtures.unexercised:locked", "--report-dir", str(tmp_path))
    assert locked.returncode == 2, locked.stdout + locked.stderr
    assert "every endpoint answered 401" in locked.stderr
    assert "setup created no users (table users is empty" in locked.stderr


def test_the_user_may_opt_in_to_fuzz_what_exercised_nothing() -> None:
    report = api.run(
        "tests.fixtures.unexercised:wizard",
        max_examples=5,
        seed=1,
        report_dir=None,
        example_db=None,
        allow_unexercised=True,
    )
    assert report.findings == []
