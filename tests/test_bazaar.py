"""A target of 67 endpoints with four races, two behind the least likely pairs (issue 20,
item 8): every race within 500 examples, and the fixed twin clean.

Before the plan was lazy, ranked across all endpoints and taken breadth first, a run of
500 examples (seed 1) found three of the four: the coupon's pair sat behind a hundred
pairs of listing writers that look as likely, each of which took its 22884 schedules'
share depth first.
"""

from __future__ import annotations

import pytest

from fuzzer import api
from fuzzer.execute.instrument import load_target
from targets.bazaar import RACES


def test_the_bazaar_is_big_and_its_races_are_among_its_endpoints() -> None:
    buggy, fixed = load_target("targets.bazaar:buggy"), load_target("targets.bazaar:fixed")
    names = [e.name for e in buggy.endpoints]
    assert len(names) >= 60 and names == [e.name for e in fixed.endpoints]
    assert {endpoint for _, endpoint in RACES} <= set(names)
    assert buggy.expected_findings == {kind for kind, _ in RACES}


@pytest.mark.slow  # about 3 minutes a seed on a loaded machine: a nightly check
@pytest.mark.parametrize("seed", [1, 2])
def test_every_race_of_the_bazaar_is_found_within_500_examples(seed: int) -> None:
    report = api.run(
        "targets.bazaar:buggy",
        max_examples=500,
        seed=seed,
        shrink_budget=30,
        report_dir=None,
        example_db=None,
    )
    found = {(f.kind, endpoint) for f in report.findings for endpoint in f.endpoints}
    assert found >= RACES, sorted(found)
    assert {f.kind for f in report.findings} == {kind for kind, _ in RACES}


@pytest.mark.slow
def test_the_fixed_bazaar_is_clean() -> None:
    report = api.run(
        "targets.bazaar:fixed", max_examples=200, seed=1, report_dir=None, example_db=None
    )
    assert report.findings == [], [f.explanation.text() for f in report.findings]
    assert not report.result.unknown, report.result.unknown
