"""One bug, one finding (issue 19 item 7): an error raised by the same statement is one
finding, whichever routes reach it."""

from __future__ import annotations

from fuzzer import api


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
