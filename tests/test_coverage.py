"""A run says what it did not cover, first, and ``--require-coverage`` fails on it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from fuzzer.cli.commands import main
from fuzzer.report import reporting
from fuzzer.search.engine import SearchResult
from fuzzer.search.plan.pairs import Coverage


def result(judged: Counter[str], coverage: Coverage | None, examples: int = 100) -> SearchResult:
    return SearchResult(
        findings=[],
        examples=examples,
        calls=examples,
        seconds=1.0,
        stop_reason="time budget of 30 s",
        detections={},
        unknown=Counter(),
        coverage=coverage,
        judged=judged,
    )


def test_a_run_that_judged_less_than_half_or_left_the_plan_says_so() -> None:
    plan = Coverage(pairs=3, explored=3, schedules=30, ran=30)
    assert result(Counter(fully=60, partly=10, not_=30), plan).uncovered == []
    few = result(Counter({"fully": 5, "partly": 3, "not": 92}), plan).uncovered
    assert few == ["only 8 of 100 examples judged (8 %): see why below"]
    cut = result(Counter(fully=100), Coverage(pairs=3, explored=0, schedules=30, ran=0))
    assert cut.uncovered == [
        "the pairs' plan did not run to the end: 0 of 3 endpoint pairs explored, 0 of 30 "
        "schedules, before the search stopped (time budget of 30 s); raise -n or --time-budget"
    ]


def test_the_summary_says_what_was_not_covered_before_anything_else(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cut = result(Counter(fully=100), Coverage(pairs=3, explored=0, schedules=30, ran=0))
    reporting.summary(
        [],
        examples=100,
        seconds=1.0,
        stop_reason=cut.stop_reason,
        directory=None,
        coverage=cut.coverage,
        judged=dict(cut.judged),
        uncovered=cut.uncovered,
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines[0].startswith("Not covered: the pairs' plan did not run to the end"), lines
    assert any("no race" in line for line in lines[1:])


def test_require_coverage_fails_a_run_that_left_the_plan(tmp_path: object) -> None:
    # four examples cannot run the plan of the gallery's pairs: exit 2, said first
    run = CliRunner().invoke(
        main,
        [
            "run",
            "targets.gallery:fixed",
            "-n",
            "4",
            "--seed",
            "1",
            "--no-progress",
            "--require-coverage",
            "--report-dir",
            str(tmp_path),
            "--summary-file",
            f"{tmp_path}/summary.json",
        ],
        catch_exceptions=False,
    )
    assert run.exit_code == 2, run.output + run.stderr
    assert "Not covered: the pairs' plan did not run to the end" in run.output + run.stderr
    summary = json.loads(Path(f"{tmp_path}/summary.json").read_text())
    assert summary["exit_code"] == 2
    assert summary["uncovered"][0].startswith("the pairs' plan did not run to the end")
