"""The realistic demo app: every planted race is found through real logins and forms, and
shrunk to a double click or two overlapping requests; the fixed twin stays clean."""

from __future__ import annotations

from dataclasses import replace

import pytest

import targets.demo as demo
from fuzzer import api
from fuzzer.execute.runner import Serial
from fuzzer.model import Execution, Scenario
from fuzzer.modes.session import Session
from fuzzer.search.engine import Search, Tuning
from fuzzer.search.survey import survey
from fuzzer.settings import Settings
from fuzzer.strategies import scenarios

#: endpoint -> (kind, exception type) of the race planted in it
PLANTED = {
    "GET /post/<int:id>": ("lost-update", ""),
    "POST /post/<int:id>/like": ("concurrency-error", "sqlalchemy.exc.IntegrityError"),
    "POST /post/<int:id>/tags": ("concurrency-error", "sqlalchemy.exc.IntegrityError"),
    "POST /user/<name>/follow": ("concurrency-error", "sqlalchemy.exc.IntegrityError"),
    "POST /user/<name>/unfollow": ("concurrency-error", "sqlalchemy.orm.exc.StaleDataError"),
    "POST /auth/register": ("concurrency-error", "sqlalchemy.exc.IntegrityError"),
}


def test_the_spec_is_at_most_30_lines() -> None:
    import inspect

    source = inspect.getsource(demo).split("\ndef app(", 1)[1]
    assert len([line for line in source.splitlines() if line.strip()]) <= 30


@pytest.mark.slow
def test_every_planted_race_is_found_and_shrunk_to_two_requests() -> None:
    """One session (one setup, one login per member), one focused search per endpoint."""
    assert sorted(e.name for e in demo.buggy.endpoints) == sorted(PLANTED)

    def work(s: Session) -> dict[str, list[tuple[str, str, int]]]:
        assert s.oracle is not None

        def alone(scenario: Scenario) -> Execution:
            return s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))

        traces = {e.endpoint: e.trace for e in survey(demo.buggy, alone).endpoints}
        found = {}
        for endpoint in demo.buggy.endpoints:
            focused = replace(demo.buggy, endpoints=[endpoint])
            settings = Settings(max_examples=60, seed=7, example_db=None)
            tuning = Tuning(stop_at_first=True, confirm=1)
            result = Search(
                scenarios(focused), s.execute, s.oracle, settings, tuning, traces=traces
            ).run()
            found[endpoint.name] = [
                (f.kind, f.exception, len(f.scenario.requests)) for f in result.findings
            ]
        return found

    found = Session(demo.buggy).run(work)
    for endpoint, (kind, exception) in PLANTED.items():
        assert (kind, exception, 2) in found[endpoint], (endpoint, found[endpoint])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11])
def test_the_fixed_twin_is_clean(seed: int) -> None:
    report = api.run(demo.fixed, max_examples=150, seed=seed, report_dir=None, example_db=None)
    assert report.findings == []
    assert not report.result.unknown
