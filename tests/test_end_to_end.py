"""The whole pipeline over real HTTP on SQLite: found, classified, minimized; and clean twins."""

from __future__ import annotations

import json
import os

import pytest

from fuzzer import api
from fuzzer.report.text import context_switches


@pytest.mark.slow
def test_the_stale_merge_is_a_lost_update_shrunk_to_two_requests(tmp_path: object) -> None:
    report = api.run(
        "targets.profile:buggy", max_examples=60, seed=3, report_dir=str(tmp_path), example_db=None
    )
    kinds = [f.kind for f in report.findings]
    assert kinds == ["lost-update"]
    finding = report.findings[0]
    assert len(finding.scenario.requests) == 2
    assert sorted(r.endpoint for r in finding.scenario.requests) == [
        "PUT /user/age",
        "PUT /user/name",
    ]
    assert context_switches(finding.execution.trace) <= 2
    assert finding.flaky is None
    assert "a contradiction!" in finding.explanation.text()
    # the JSON report holds what a replay needs
    (path,) = [p for _, p in report.files]
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    assert document["target"] == "targets.profile:buggy"
    assert document["kind"] == "lost-update"
    assert len(document["scenario"]["requests"]) == 2
    assert document["database"]["dialect"] == "sqlite"
    assert os.path.exists(os.path.join(os.path.dirname(path), "manifest.json"))


@pytest.mark.slow
def test_the_fixed_twin_is_clean_in_300_examples() -> None:
    report = api.run(
        "targets.profile:fixed", max_examples=300, seed=4, report_dir=None, example_db=None
    )
    assert report.findings == []
    assert report.result.examples >= 300
    assert not report.result.unknown


@pytest.mark.slow
def test_replay_reproduces_the_recorded_interleaving(tmp_path: object) -> None:
    report = api.run(
        "targets.profile:buggy", max_examples=40, seed=5, report_dir=str(tmp_path), example_db=None
    )
    (path,) = [p for _, p in report.files]
    result = api.replay(path, times=5)
    assert result.status == "reproduced"
    assert result.reproduced == 5
    assert result.traces_identical


@pytest.mark.slow
def test_every_yield_in_a_reported_schedule_is_needed(tmp_path: object) -> None:
    from dataclasses import replace

    from fuzzer.execute.instrument import load_target
    from fuzzer.model import Gene
    from fuzzer.modes.session import Session
    from fuzzer.search.engine import evaluate

    report = api.run(
        "targets.profile:buggy", max_examples=40, seed=6, report_dir=None, example_db=None
    )
    (finding,) = report.findings
    scenario = finding.scenario
    assert scenario.yields >= 1

    def work(s: Session) -> list[bool]:
        assert s.oracle is not None
        still = []
        for i, gene in enumerate(scenario.schedule):
            for step in gene.yields:
                fewer = Gene(gene.priority, tuple(y for y in gene.yields if y != step))
                schedule = (*scenario.schedule[:i], fewer, *scenario.schedule[i + 1 :])
                _, _, findings = evaluate(replace(scenario, schedule=schedule), s.execute, s.oracle)
                still.append(any(f.fingerprint == finding.fingerprint for f in findings))
        return still

    assert not any(Session(load_target("targets.profile:buggy")).run(work))


@pytest.mark.parametrize(
    ("target", "kind", "within", "requests"),
    [
        # two edits of one user, each merging a stale copy: a pair of writers
        ("profile", "lost-update", 3, 2),
        # two doctors sign off at once: one endpoint, two different requests, each
        # yielding when it has counted the doctors on call and not yet signed off
        ("oncall", "write-skew", 3, 2),
        # a total read across two queries while a transfer commits: reader and writer
        ("audit", "stale-read", 3, 2),
        # completed, committed, then re-read while a delete commits: after the COMMIT
        ("tasks", "concurrency-error", 8, 2),
        # three bookings that all count before any inserts overrun a capacity of two
        ("booking", "limit-overrun", 4, 3),
    ],
)
def test_the_systematic_opening_meets_the_common_races(
    target: str, kind: str, within: int, requests: int
) -> None:
    # with a budget no larger than the opening, no random example could have found them
    report = api.run(
        f"targets.{target}:buggy", max_examples=within, seed=7, report_dir=None, example_db=None
    )
    (finding,) = [f for f in report.findings if f.kind == kind]
    assert finding.found_after <= within
    assert len(finding.scenario.requests) == requests
