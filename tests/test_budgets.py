"""The search's budgets hold at every edge (issue 14, item 6; issue 12's last bullet).

A run has two budgets: the search (examples, the opening and the replays of the
example database included, and seconds) and shrinking (seconds). These tests run the
engine on a small world where each execution costs one second of a fake clock, so
"the budget runs out during the opening, the reuse phase, generation, shrinking, or
exactly between two phases" is deterministic. A request ``GET /e<k % 3>`` with value
``k >= 5`` fails when run alone (a serial failure): three distinct findings, each of
which shrinks to one request with value 5..7.

The first test uses the real clock, as the soak did when it crashed: an opening that
spends the whole time budget made Hypothesis's generation phase assert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from fuzzer.judge.oracle import OracleStats, Verdict
from fuzzer.model import Execution, Gene, Request, Response, Scenario
from fuzzer.search.engine import Search, SearchResult, Tuning
from fuzzer.settings import Settings, split


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(k: int) -> Request:
    return Request(f"GET /e{k % 3}", "GET", f"/e{k % 3}/{k}")


def scenario(*values: int) -> Scenario:
    return Scenario(tuple(request(k) for k in values), tuple(Gene() for _ in values))


SCENARIOS = st.lists(st.integers(0, 9), min_size=1, max_size=3).map(lambda ks: scenario(*ks))


class World:
    """Executions that cost ``cost`` seconds of ``clock`` (or real sleep when ``sleep``)."""

    def __init__(self, clock: Callable[[], float], *, bad: int = 5, cost: float = 1.0) -> None:
        self.clock = clock
        self.bad = bad
        self.cost = cost
        self.executions = 0
        self.stats = OracleStats()

    def execute(self, scenario: Scenario, dispatch: Any) -> Execution:
        self.executions += 1
        if isinstance(self.clock, Clock):
            self.clock.now += self.cost
        else:
            time.sleep(self.cost)
        responses = tuple(Response(200, None) for _ in scenario.requests)
        return Execution(mode="controlled", responses=responses, tables={})

    def judge(self, scenario: Scenario, execution: Execution) -> Verdict:
        failures = tuple(
            (i, Response(500, "", error="builtins.ValueError: too big"))
            for i, r in enumerate(scenario.requests)
            if int(r.path.rsplit("/", 1)[1]) >= self.bad
        )
        return Verdict(status="serializable", serial_failures=failures)


def search(
    world: World, *, seeds: tuple[Scenario, ...] = (), clock: Any = None, **settings: Any
) -> Search:
    options: dict[str, Any] = {
        "seed": 3,
        "example_db": None,
        "confirm": 1,
        "schedule": "random",
        **settings,
    }
    given, tuning = split(options)  # a run's settings, and the search's tuning
    return Search(
        SCENARIOS,
        world.execute,
        world,  # type: ignore[arg-type]
        Settings(**given),
        Tuning(**tuning),
        seeds=seeds,
        **({"clock": clock} if clock is not None else {}),
    )


def test_an_opening_that_spends_the_time_budget_ends_the_search_without_an_assertion() -> None:
    """The soak's crash: the opening ran past the deadline, then Hypothesis's generation
    phase asserted should_generate_more() (AssertionError, exit 3)."""
    world = World(time.monotonic, bad=99, cost=0.06)
    opening = (scenario(1), scenario(2), scenario(3))
    result = search(world, seeds=opening, time_budget=0.1, max_examples=50).run()
    # two executions of 0.06 s pass 0.1 s; on a loaded machine the first alone may
    assert result.examples in (1, 2) and world.executions == result.examples
    assert result.stop_reason == "time budget of 0.1 s"


@pytest.mark.parametrize("seconds", [0.0, 1.0, 3.0])
def test_the_time_budget_runs_out_in_the_opening(seconds: float) -> None:
    clock = Clock()
    world = World(clock, bad=99)
    opening = tuple(scenario(k) for k in range(6))
    result = search(world, seeds=opening, clock=clock, time_budget=seconds).run()
    assert result.examples == seconds
    assert result.stop_reason == f"time budget of {seconds:g} s"


def test_the_time_budget_runs_out_exactly_between_the_opening_and_generation() -> None:
    clock = Clock()
    world = World(clock, bad=99)
    opening = tuple(scenario(k) for k in range(3))
    result = search(world, seeds=opening, clock=clock, time_budget=3.0).run()
    assert result.examples == 3 and world.executions == 3


def test_the_time_budget_runs_out_during_generation() -> None:
    clock = Clock()
    world = World(clock, bad=99)
    result = search(world, clock=clock, time_budget=7.0).run()
    assert result.examples == 7 and result.search_seconds == 7.0
    assert result.stop_reason == "time budget of 7 s"


@pytest.mark.parametrize("opening", [0, 2, 5, 8])
def test_max_examples_counts_the_opening_and_not_shrinking(opening: int) -> None:
    clock = Clock()
    world = World(clock)
    seeds = tuple(scenario(k % 5) for k in range(opening))  # values < 5: no finding
    result = search(world, seeds=seeds, clock=clock, max_examples=5).run()
    assert result.examples == 5
    assert result.stop_reason == "max examples (5)"
    assert result.findings or opening >= 5  # shrinking ran (its calls are not examples)
    assert result.calls >= result.examples


def test_max_examples_holds_when_every_example_finds_something() -> None:
    clock = Clock()
    world = World(clock, bad=0)
    result = search(world, clock=clock, max_examples=20).run()
    assert result.examples == 20
    assert {f.endpoints for f in result.findings} == {("GET /e0",), ("GET /e1",), ("GET /e2",)}


@pytest.mark.parametrize("shrink_budget", [0.5, 4.0, 12.0, 600.0])
def test_shrinking_keeps_to_its_own_budget_and_still_reports_every_finding(
    shrink_budget: float,
) -> None:
    clock = Clock()
    world = World(clock, bad=5)
    result = search(
        world, clock=clock, max_examples=60, time_budget=30.0, shrink_budget=shrink_budget
    ).run()
    assert result.search_seconds <= 30.0 + 2  # an example and its first replay may overrun
    # confirmations (one per finding here) are never skipped: a budget too small for
    # them alone is overrun by them, and by at most one shrink step otherwise
    confirmations = len(result.findings) * world.cost
    assert result.shrink_seconds <= max(shrink_budget, confirmations) + world.cost
    assert result.seconds == pytest.approx(result.search_seconds + result.shrink_seconds)
    assert len(result.findings) == 3
    if shrink_budget >= 600:
        assert all(len(f.scenario.requests) == 1 for f in result.findings)


def test_the_time_budget_runs_out_during_the_reuse_of_the_example_database(
    tmp_path: Path,
) -> None:
    examples = str(tmp_path / "examples")
    first = search(World(Clock()), clock=Clock(), seed=None, example_db=examples, max_examples=80)
    assert len(first.run().findings) == 3  # three failures stored in the example database

    clock = Clock()
    world = World(clock)
    result: SearchResult = search(
        world, clock=clock, seed=None, example_db=examples, time_budget=1.0, shrink_budget=0.0
    ).run()
    assert result.examples == 1  # the first replayed failure, then the budget is spent
    assert result.stop_reason == "time budget of 1 s"
    assert len(result.findings) == 1


def test_a_spent_budget_before_a_replay_round_is_not_an_error(tmp_path: Path) -> None:
    from hypothesis import Phase

    clock = Clock()
    world = World(clock)
    result = search(
        world,
        clock=clock,
        example_db=str(tmp_path / "none"),
        example_db_with_seed=True,
        phases=(Phase.reuse, Phase.shrink),
        time_budget=0.0,
    ).run()
    assert result.examples == 0 and result.findings == []


@pytest.mark.slow
def test_a_real_run_runs_as_many_examples_as_asked() -> None:
    """``-n 20`` ran 99 examples: Hypothesis's shrinking calls were counted as examples,
    and the opening came on top of the 20."""
    from fuzzer import api

    report = api.run(
        "targets.profile:buggy", max_examples=20, seed=3, report_dir=None, example_db=None
    )
    result = report.result
    assert result.examples == 20
    assert result.stop_reason == "max examples (20)"
    assert report.findings  # shrinking ran, and its calls were not counted
    assert result.calls > result.examples
    assert result.seconds == pytest.approx(result.search_seconds + result.shrink_seconds, abs=0.01)


def test_only_the_adapter_uses_hypothesis_internals() -> None:
    """Hypothesis's internals (its runner, its data, its build context, its example
    databases) are reached through ``fuzzer/search/conjecture.py`` alone."""
    root = Path(__file__).resolve().parent.parent / "fuzzer"
    internal = ("hypothesis.internal", "hypothesis.control", "hypothesis.database")
    internal += ("hypothesis.extra.redis", "ConjectureRunner", "ConjectureData")
    users = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if any(name in path.read_text(encoding="utf-8") for name in internal)
    )
    assert users == ["search/conjecture.py"]
