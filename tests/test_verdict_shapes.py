"""Issue 19's shapes with their twins, quickly (the catalog runs them at length):
every request refused with 409 serially too (``targets.rota``), a key freed by a DELETE
and taken again by an INSERT (``targets.labels``), and one check behind two races on
different rows, two findings (``targets.hints``)."""

from __future__ import annotations

import pytest

from fuzzer import api
from fuzzer.model import Gene, Request, Scenario

OFF = "POST /doctors/<id>/off-call"


def sign_offs(first: int, second: int) -> Scenario:
    """Two sign-offs, the first yielding after its count (its third statement)."""
    requests = tuple(Request(OFF, "POST", f"/doctors/{i}/off-call") for i in (first, second))
    return Scenario(requests=requests, schedule=(Gene(yields=(3,)), Gene()))


def run(target: str, db: str = "sqlite", n: int = 40) -> api.RunReport:
    return api.run(target, db=db, max_examples=n, seed=2, report_dir=None, example_db=None)


def test_the_last_doctor_refused_twice_is_no_race() -> None:
    # Dana is the night shift's only doctor on call: both sign-offs answer 409 "someone
    # must stay on call", in every order; no stale-read on correct code (issue 19 item 1)
    for twin in ("buggy", "fixed"):
        api.assert_serializable(f"targets.rota:{twin}", sign_offs(1, 1))
    # the buggy twin's race is still found where there is one: Alice and Bob at once
    with pytest.raises(AssertionError, match=r"write-skew|Write skew"):
        api.assert_serializable("targets.rota:buggy", sign_offs(3, 4))
    api.assert_serializable("targets.rota:fixed", sign_offs(3, 4))


def test_the_rota_twins() -> None:
    assert [f.kind for f in run("targets.rota:buggy", n=10).findings] == ["write-skew"]
    fixed = run("targets.rota:fixed")
    assert fixed.findings == [] and fixed.result.unconfirmed == []
    assert fixed.result.examples >= 40


@pytest.mark.parametrize("database", ["sqlite", "mariadb"])
def test_labels_made_again_after_a_delete_compare_equal(
    database: str, request: pytest.FixtureRequest
) -> None:
    db = database if database == "sqlite" else request.getfixturevalue(database)
    fixed = run("targets.labels:fixed", db)
    assert fixed.findings == [], [f.explanation.text() for f in fixed.findings]
    assert fixed.result.unconfirmed == [] and not fixed.result.unknown
    buggy = run("targets.labels:buggy", db, n=10)
    assert [f.kind for f in buggy.findings] == ["lost-update"]


def test_one_hint_twice_and_two_hints_past_the_score_are_two_findings() -> None:
    # one check, two races on different rows, two fixes: the double unlock is not the
    # overdraft, and neither hides the other (issue 19 item 8)
    buggy = run("targets.hints:buggy", n=10)
    kinds = sorted(f.kind for f in buggy.findings)
    assert kinds == ["duplicate-insert", "limit-overrun"], kinds
    assert len({f.fingerprint for f in buggy.findings}) == 2
    paths = {f.kind: sorted(r.path for r in f.scenario.requests) for f in buggy.findings}
    assert paths["duplicate-insert"] == ["/hints/1/unlock", "/hints/1/unlock"]
    assert paths["limit-overrun"] == ["/hints/1/unlock", "/hints/2/unlock"]
    assert run("targets.hints:fixed").findings == []
