"""Slow, not stuck (issue 19 item 4): a request that runs past the HTTP client's timeout
while its thread still moves is given up as slow, its example is not judged, and the
search goes on; only threads that make no progress stop it (tests/test_hang.py)."""

from __future__ import annotations

from hypothesis import strategies as st

import targets.slowpage as slowpage
from fuzzer.execute.runner import Controlled
from fuzzer.model import Execution, Gene, Request, Scenario
from fuzzer.modes.session import Session
from fuzzer.search.engine import Search
from fuzzer.search.records import SearchResult
from fuzzer.settings import Settings

REPORT = Request("GET /report", "GET", "/report")
VISIT = Request("POST /visits", "POST", "/visits")
BOTH = Scenario((REPORT, VISIT), (Gene(), Gene()))


def slow(s: Session) -> None:
    """The view computes for 2 s; the client waits 0.5 s (both settable)."""
    assert s.app is not None and s.harness is not None
    s.app.config["SPIN_SECONDS"] = 2.0
    s.harness.request_timeout = 0.5


def test_a_request_running_past_the_client_timeout_is_slow_not_stuck() -> None:
    def work(s: Session) -> tuple[Execution, list[str], int]:
        slow(s)
        execution = s.execute(BOTH, Controlled(s.limits))
        s.app.config["SPIN_SECONDS"] = 0.0
        after = s.execute(BOTH, Controlled(s.limits))  # the server still answers
        return execution, list(s.harness.stuck), after.responses[0].status

    execution, stuck, status = Session(slowpage.target).run(work)
    assert "slower than the client's timeout, not stuck" in execution.cut
    assert execution.responses[0].status == 0  # given up, its answer never read
    assert stuck == []  # no thread was left behind: it ran to its end
    assert status == 200


def test_the_search_goes_on_past_slow_examples() -> None:
    settings = Settings(max_examples=3, seed=1, report_dir=None, example_db=None)

    def work(s: Session) -> SearchResult:
        slow(s)
        assert s.oracle is not None
        return Search(st.just(BOTH), s.execute, s.oracle, settings).run()

    result = Session(slowpage.target).run(work)
    assert not result.stop_reason.startswith("the target's threads are stuck")
    assert not result.findings
    assert any("slower than the client's timeout" in why for why in result.unknown)
