"""Routine means a stamp (issue 19 item 5): the signed-in identity's own row, UPDATEd by
(almost) every endpoint, is left out of what the endpoints write; a get-or-create that
every page makes is not, and its race is found."""

from __future__ import annotations

import targets.forum as forum
import targets.sitesettings as sitesettings
import targets.social as social
from fuzzer import api
from fuzzer.execute.runner import Serial
from fuzzer.model import Execution, Scenario
from fuzzer.modes.session import Session
from fuzzer.search.survey import Survey, survey
from fuzzer.target.contract import Target


def surveyed(target: Target) -> Survey:
    def work(s: Session) -> Survey:
        def alone(scenario: Scenario) -> Execution:
            return s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))

        return survey(target, alone)

    return Session(target).run(work)


def test_a_last_seen_stamp_stays_routine() -> None:
    for target in (social.fixed, forum.fixed):
        (stamp,) = surveyed(target).routine
        assert stamp.startswith("UPDATE users SET last_seen"), stamp


def test_a_get_or_create_on_every_page_is_not_routine_and_its_race_is_found() -> None:
    result = surveyed(sitesettings.buggy)
    assert result.routine == frozenset()
    assert all("default.settings" in e.writes for e in result.endpoints)
    report = api.run("targets.sitesettings:buggy", max_examples=20, seed=1, report_dir=None)
    assert report.findings and report.findings[0].kind == "concurrency-error"
