"""Observer requests: a race invisible in the racing requests' answers and in the compared
rows is caught by a read-only request sent after them (tests/fixtures/observed.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fuzzer import api
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled
from fuzzer.modes.session import Session
from fuzzer.search.engine import evaluate


@pytest.mark.slow
def test_an_observer_catches_a_stale_cache_that_nothing_else_shows() -> None:
    report = api.run(
        "tests.fixtures.observed:observed",
        max_examples=30,
        seed=1,
        report_dir=None,
        example_db=None,
    )
    (finding,) = report.findings
    assert finding.kind == "stale-read"
    assert sorted(r.endpoint for r in finding.scenario.requests) == ["POST /like/1", "POST /warm/1"]
    assert [r.status for r in finding.execution.responses if r is not None] == [204, 204]
    assert [r.body for r in finding.execution.observers] == [{"likes": 0}]
    said = 'the observer GET /likes/1 answered {"body": {"likes": 0}'
    assert said in finding.explanation.text()

    # the same requests and interleaving, judged without the observer: nothing to see
    blind = replace(finding.scenario, observers=())

    def judge(s: Session) -> tuple[str, list[int], int, int]:
        assert s.oracle is not None
        execution, verdict, findings = evaluate(blind, s.execute, s.oracle, Controlled())
        assert findings == []
        ((_, likes),) = execution.tables["posts"]
        ((_, payload),) = execution.tables["cache"]
        statuses = [r.status for r in execution.responses if r is not None]
        return verdict.status, statuses, likes, json.loads(payload)["likes"]

    judged = Session(load_target("tests.fixtures.observed:unobserved")).run(judge)
    # the race happened (one like, a cache that says none) and no serial order tells
    assert judged == ("serializable", [204, 204], 1, 0)
