"""A user's test suite: ``fuzz(my_target, max_examples=200)`` fails with the text report
when a race exists, and passes on a correct app."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fuzzer import Target, fuzz
from fuzzer.errors import InvalidTarget
from targets import profile

# defined here, as a user would in their own suite: no reference until it is looked up
race = Target(
    name="profile-in-a-suite",
    app=profile.create_app,
    setup=profile.setup,
    endpoints=profile.ENDPOINTS,
)


@pytest.mark.slow
def test_fuzz_fails_with_the_text_report_when_a_race_exists(tmp_path: Path) -> None:
    # a Target object, not a reference: once, no gates were installed for it and the
    # fuzzer could not find any race at all
    with pytest.raises(AssertionError) as failure:
        fuzz(race, max_examples=60, seed=4, example_db=None, report_dir=str(tmp_path))
    message = str(failure.value)
    assert message.startswith("1 finding(s) in tests.test_user_suite:race after ")
    assert f"reports in {tmp_path}" in message
    assert "= Lost update =   lost-update · PUT /user/age + PUT /user/name" in message
    assert "Interleaving:" in message and "a contradiction!" in message
    assert "Reproduce with:\n  fuzzer replay " in message
    (written,) = tmp_path.glob("profile-in-a-suite-*/01-lost-update.json")
    document = json.loads(written.read_text(encoding="utf-8"))
    assert document["target"] == "tests.test_user_suite:race"  # replayable by reference


def test_fuzz_passes_on_the_fixed_twin(tmp_path: Path) -> None:
    report = fuzz(
        "targets.profile:fixed", max_examples=60, seed=4, example_db=None, report_dir=str(tmp_path)
    )
    assert report.findings == [] and report.result.examples >= 60
    assert os.listdir(tmp_path) == []  # nothing to report, nothing written


def test_fuzz_names_a_wrong_argument() -> None:
    with pytest.raises(InvalidTarget, match=r"Expected a fuzzer\.Target or a reference"):
        fuzz(["not", "a", "target"])  # type: ignore[arg-type]
