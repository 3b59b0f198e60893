"""One bug, one finding (issue 19 item 7): an error raised by the same statement is one
finding, whichever routes reach it."""

from __future__ import annotations

import json
from pathlib import Path

from fuzzer import api
from fuzzer.report import summary


def test_one_registration_check_reached_by_two_routes_is_one_finding() -> None:
    # before: one concurrency-error per pair of routes (register+register, api+api,
    # register+api), three findings for one missing unique-violation handler
    report = api.run(
        "tests.fixtures.two_routes:target",
        max_examples=40,
        seed=1,
        report_dir=None,
        example_db=None,
    )
    errors = [f for f in report.findings if f.kind == "concurrency-error"]
    assert len(errors) == 1, [(f.endpoints, f.place) for f in errors]
    assert errors[0].place == "users (INSERT)"
    assert errors[0].exception.endswith("IntegrityError")
    assert errors[0].extra["routes"] == ["POST /api/users", "POST /register"]


def test_a_finding_with_its_routes_keeps_its_replay_lines(tmp_path: object) -> None:
    # the finding listing every route is a copy of the one written: "Reproduce with:"
    # still names its replay file and its regression test, not only curl lines
    report = api.run(
        "tests.fixtures.two_routes:target",
        max_examples=40,
        seed=1,
        report_dir=str(tmp_path),
        example_db=None,
    )
    (error,) = [f for f in report.findings if f.kind == "concurrency-error"]
    assert "routes" in error.extra
    lines = "\n".join(report.reproduce(error))
    assert "fuzzer replay" in lines and ".json" in lines


def test_every_route_that_reaches_a_finding_is_in_its_json(tmp_path: Path) -> None:
    # the report's JSON and the --format json summary list the routes, not only the text
    report = api.run(
        "tests.fixtures.two_routes:target",
        max_examples=40,
        seed=1,
        report_dir=str(tmp_path),
        example_db=None,
    )
    routes = ["POST /api/users", "POST /register"]
    (error,) = [f for f in report.findings if f.kind == "concurrency-error"]
    assert list(error.routes) == routes
    (written,) = [w for w in report.written if w.finding.kind == "concurrency-error"]
    document = json.loads(Path(written.json).read_text())
    assert document["routes"] == routes
    assert set(document["endpoints"]) <= set(routes)
    brief = summary.of_run(report, command="run", exit_code=1, seconds=1.0)
    (entry,) = [f for f in brief["findings"] if f["kind"] == "concurrency-error"]
    assert entry["routes"] == routes
    # a finding no other route reached lists its own endpoints
    for other in (f for f in brief["findings"] if f["kind"] != "concurrency-error"):
        assert other["routes"] == sorted(set(other["endpoints"]))
