"""Shrinking (``fuzzer/search/finish.py``, ``engine.py``; issue 19 item 7): a request
that is not part of the race is dropped, also when it made the others interleave; a
finding shrinks and confirms as the race it was first seen as, not another route's."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import strategies as st

from fuzzer.findings import Explanation, Finding
from fuzzer.model import Execution, Gene, Request, Scenario, Step
from fuzzer.search.conjecture import Budget
from fuzzer.search.engine import Search, Tuning
from fuzzer.settings import Settings, split
from tests.test_budgets import Clock, World

REACT = Request("POST /react", "POST", "/kudos/1/reactions", json={"emoji": "clap"})
RESET = Request("POST /reset", "POST", "/admin/budgets/reset")


def _finding(scenario: Scenario, trace: tuple[Step, ...] = ()) -> Finding:
    return Finding(
        kind="duplicate-insert",
        endpoints=("POST /react",),
        exception="",
        scenario=scenario,
        execution=Execution(mode="controlled", responses=(None,) * 3, tables={}, trace=trace),
        verdict=None,
        explanation=Explanation(let=(), facts=(), however=""),
        involved=(0, 1),
    )


def _steps(request: int, numbers: range, last: int = 10) -> list[Step]:
    return [Step(request=request, number=n, kind="end" if n == last else "sql") for n in numbers]


def test_a_bystander_that_held_a_lock_is_dropped_with_the_order_it_made() -> None:
    # the kudos tryout: two reactions and a budget reset. The reset held SQLite's write
    # lock from its step 4 to its commit, so each reaction read (steps 4-5) before the
    # other inserted (step 6). Without the reset, under the same genes, the first
    # reaction commits before the second reads: no duplicate, and the reset was kept
    # (3 requests, 6 switches). Replaying the order the two reactions ran in keeps it.
    trace = (
        *_steps(0, range(1, 4)),
        *_steps(1, range(1, 4)),
        *_steps(2, range(1, 5)),
        *_steps(0, range(4, 6)),
        *_steps(1, range(4, 6)),
        *_steps(2, range(5, 7), last=6),
        *_steps(0, range(6, 11)),
        *_steps(1, range(6, 11)),
    )
    genes = (Gene(yields=(3,)), Gene(yields=(3,)), Gene(yields=(4,)))
    seen = _finding(Scenario(requests=(REACT, REACT, RESET), schedule=genes), trace)

    def reproduces(scenario: Scenario, fingerprint: str) -> Finding | None:
        # the duplicate shows when both reactions read before either inserts: with the
        # reset in between, or when the first reaction itself yields after its read (5)
        assert fingerprint == seen.fingerprint
        tried.append(scenario)
        if scenario.requests == (REACT, REACT, RESET):
            both_read = scenario.schedule == genes
        elif scenario.requests == (REACT, REACT):
            first, second = scenario.schedule
            both_read = 5 in first.yields and 3 in second.yields
        else:
            both_read = False
        return _finding(scenario) if both_read else None

    tried: list[Scenario] = []
    search = object.__new__(Search)
    search.tuning = Tuning()
    search.budget = Budget(max_examples=1, seconds=None, shrink_seconds=60.0)
    search._reproduces = reproduces  # type: ignore[method-assign]
    fewer = search._fewer_requests(seen)
    assert fewer.scenario.requests == (REACT, REACT)
    first, second = fewer.scenario.schedule
    assert (first.yields, second.yields) == ((3, 5), (3, 5))
    assert first.priority < second.priority  # the first reaction started first
    # the plain drop (the genes as they were) was tried first, and failed
    assert tried[0].schedule == genes[:2]


def test_shrinking_keeps_the_route_a_finding_was_first_seen_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the kudos tryout: a lost update on ``members`` first seen through two redemptions
    # was reported as two kudos (the same fingerprint: a race on the rows is named by
    # its tables), because Hypothesis kept the smaller example of that fingerprint
    from fuzzer.search import engine, finish

    def classify(scenario: Scenario, execution: Execution, verdict: Any) -> list[Finding]:
        # two requests of one endpoint lose an update of the same table, whichever
        counts = Counter(r.endpoint for r in scenario.requests)
        return [
            replace(
                _finding(scenario),
                kind="lost-update",
                endpoints=(endpoint,),
                place="members",
                involved=tuple(
                    i for i, r in enumerate(scenario.requests) if r.endpoint == endpoint
                ),
            )
            for endpoint, count in sorted(counts.items())
            if count >= 2
        ]

    monkeypatch.setattr(engine, "classify", classify)
    monkeypatch.setattr(finish, "classify", classify)
    kudos, redeem = (Request(f"POST /{name}", "POST", f"/{name}/0") for name in ("kudos", "redeem"))
    drawn = st.lists(st.sampled_from([kudos, redeem]), min_size=1, max_size=3).map(
        lambda rs: Scenario(tuple(rs), tuple(Gene() for _ in rs))
    )
    first = Scenario((redeem, redeem), (Gene(), Gene()))
    world = World(Clock(), bad=99)
    options, tuning = split(
        {"seed": 3, "example_db": None, "confirm": 1, "max_examples": 60, "schedule": "random"}
    )
    result = Search(
        drawn, world.execute, world, Settings(**options), Tuning(**tuning), seeds=(first,)  # type: ignore[arg-type]
    ).run()
    (finding,) = result.findings
    assert finding.endpoints == ("POST /redeem",)
    assert finding.scenario.requests == (redeem, redeem)
    assert world.executions > 10  # Hypothesis met the kudos' race too, and shrank
