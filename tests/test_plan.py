"""The pairs' plan at scale: lazy, breadth first, each trace read once, conflicts by key.

Property tests hold the lazy plan to the eager one it replaced (the same schedules of
every pair, only in another order) and to its promise (every pair's first schedule
before any pair's second); the rest pin what made real apps' plans blow up: cache
reads that conflict with nothing, a page's memoized values taken for its decisions,
and a hundred endpoints planned in seconds.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer.model import Gene, Request, Scenario, Step
from fuzzer.search import interrupt
from fuzzer.search.plan.likelihood import likelihood
from fuzzer.search.plan.openings import openings
from fuzzer.search.plan.pairs import Plan, _finished, _requests, plan
from fuzzer.search.plan.schedules import conflict_points, decisions, surveyed_trace
from fuzzer.search.survey import EndpointSurvey, Survey
from fuzzer.sql import access
from fuzzer.target.contract import Endpoint, Identity, Target

STATEMENTS = [
    "SELECT * FROM a WHERE id = ?",
    "UPDATE a SET x=? WHERE id = ?",
    "INSERT INTO b (x) VALUES (?)",
    "SELECT * FROM b",
    "DELETE FROM c WHERE id = ?",
    "SELECT * FROM c",
    "cache GET app:k1",
    "cache SET app:k1",
    "cache GET app:k2",
    "cache SET app:k2",
    "commit",
]


def steps(*texts: str) -> tuple[Step, ...]:
    """A request's steps: "commit" commits, anything else is a statement."""
    result = [Step(0, 1, "start")]
    for text in texts:
        number = len(result) + 1
        kind = "commit" if text == "commit" else "sql"
        result.append(Step(0, number, kind, "" if kind == "commit" else text))
    return (*result, Step(0, len(result) + 1, "end"))


def surveyed(name: str, trace: tuple[Step, ...]) -> EndpointSurvey:
    """An endpoint as the survey would see it: what it reads and writes, from its steps."""
    reads: set[str] = set()
    writes: set[str] = set()
    for step in trace:
        if step.kind == "sql":
            a = access(step.text)
            reads |= a.reads
            writes |= {a.write} if a.write else set()
    request = Request(name, "POST", "/" + name.replace(" ", "-"), identity="alice")
    return EndpointSurvey(
        name,
        request,
        200,
        frozenset(reads),
        frozenset(writes),
        len(trace),
        trace,
        request,
        None,
        replace(request, identity="bob"),
    )


def target(names: list[str], identities: int = 2) -> Target:
    return Target(
        name="t",
        app=lambda url: None,
        setup=None,
        endpoints=[Endpoint("POST", "/" + n.replace(" ", "-"), name=n) for n in names],
        identities=[Identity(n) for n in ["alice", "bob", "carol"][:identities]],
        max_requests=2,
    )


def eager(result: Survey, t: Target, depth: int = 2) -> list[tuple[int, Scenario]]:
    """The plan as it was before it was lazy: every schedule of every pair, pair after
    pair, from conflict points read off the pair's surveyed trace each time."""
    traces = {e.endpoint: e.trace for e in result.endpoints}
    writers = [e for e in result.endpoints if e.writes]
    identities = [i.name for i in t.identities]
    candidates = []
    for k, a in enumerate(writers):
        for b in writers[k:]:
            if a.writes & (b.reads | b.writes) or b.writes & (a.reads | a.writes):
                score = likelihood(traces[a.endpoint], traces[b.endpoint], a is b)
                candidates.append((-score, len(candidates), a, b))
    scenarios = []
    for index, (_, _, a, b) in enumerate(sorted(candidates, key=lambda c: c[:2])):
        for x, y in _requests(a, b, identities):
            for first, second in [(x, y)] if x == y else [(x, y), (y, x)]:
                scenario = Scenario((first, second), (Gene(), Gene()))
                points = conflict_points(surveyed_trace(scenario, traces), 2)
                n, m = len(points.get(0, ())), len(points.get(1, ()))
                genes = [(Gene(0, (i,)), Gene()) for i in range(n)]
                if depth >= 2:
                    genes += [(Gene(0, (i,)), Gene(0, (j,))) for i in range(n) for j in range(m)]
                scenarios += [(index, Scenario((first, second), g)) for g in genes]
    return scenarios


def key(item: tuple[int, Scenario]) -> str:
    return json.dumps([item[0], item[1].to_json()], sort_keys=True, default=str)


traces = st.lists(st.sampled_from(STATEMENTS), min_size=1, max_size=7).map(lambda t: steps(*t))
surveys = st.lists(traces, min_size=1, max_size=4).map(
    lambda ts: Survey(tuple(surveyed(f"E{k}", t) for k, t in enumerate(ts)))
)


@settings(max_examples=60, deadline=None)
@given(surveys, st.integers(1, 3), st.sampled_from([1, 2]))
def test_the_lazy_plan_holds_the_same_schedules_as_the_eager_one(
    result: Survey, identities: int, depth: int
) -> None:
    t = target([e.endpoint for e in result.endpoints], identities)
    lazy = plan(result, t, depth)
    listed = list(lazy.scenarios())
    assert len(listed) == lazy.size
    assert sorted(map(key, listed)) == sorted(map(key, eager(result, t, depth)))


@settings(max_examples=60, deadline=None)
@given(surveys, st.integers(1, 3))
def test_every_pair_gets_its_first_schedule_before_any_pair_gets_its_second(
    result: Survey, identities: int
) -> None:
    lazy = plan(result, target([e.endpoint for e in result.endpoints], identities))
    listed = list(lazy.scenarios())
    with_schedules = [k for k, shape in enumerate(lazy.shapes) if len(shape)]
    first = [k for k, _ in listed[: len(with_schedules)]]
    assert first == with_schedules  # ranked order, each pair once
    # the coverage counts what the order covers: per level, the pairs whose every
    # schedule of that level (and of those before it) ran
    kinds = [switches(0), likeliest(lazy), switches(1)]
    wanted = [
        [sum(1 for s in shape.schedules() if kind(s)) for shape in lazy.shapes] for kind in kinds
    ]
    seen = [[0] * len(lazy.shapes) for _ in kinds]
    for ran in range(len(listed) + 1):
        if ran:
            j, s = listed[ran - 1]
            for kind, counts in zip(kinds, seen, strict=True):
                counts[j] += kind(s)
        done = [
            [n == w for n, w in zip(c, ws, strict=True)] for c, ws in zip(seen, wanted, strict=True)
        ]
        coverage = lazy.coverage(ran)
        assert coverage.explored == sum(done[0])
        assert coverage.decided == sum(done[1])
        assert coverage.shallow == sum(done[2])
        ran_any = {j for j, _ in listed[:ran]}
        assert coverage.tried == sum(k in ran_any or not len(s) for k, s in enumerate(lazy.shapes))


def switches(n: int) -> Callable[[Scenario], bool]:
    """Whether a scenario has at most ``n`` switches (0: any number)."""
    return lambda s: not n or sum(1 for g in s.schedule if g.yields) <= n


def likeliest(lazy: Plan) -> Callable[[Scenario], bool]:
    """Whether a scenario is one of the plan's one switch at a likeliest point."""
    at = {key((0, s)) for shape in lazy.shapes for s in shape.at_likeliest()}
    return lambda s: key((0, s)) in at


@settings(max_examples=60, deadline=None)
@given(surveys, st.integers(1, 3))
def test_every_pair_is_tried_at_each_level_before_any_pair_at_the_next(
    result: Survey, identities: int
) -> None:
    """One switch at the likeliest points (moments of decision), then every other one
    switch, then two switches: each level across all the pairs before the next."""
    lazy = plan(result, target([e.endpoint for e in result.endpoints], identities))
    at = likeliest(lazy)
    levels = [0 if at(s) else sum(1 for g in s.schedule if g.yields) for _, s in lazy.scenarios()]
    assert levels == sorted(levels)
    assert levels.count(0) == sum(shape.likeliest() for shape in lazy.shapes)
    assert levels.count(1) == sum(shape.singles() - shape.likeliest() for shape in lazy.shapes)


@given(st.lists(st.integers(0, 6), max_size=6), st.integers(0, 40))
def test_the_pairs_explored_are_counted_without_listing_the_schedules(
    lengths: list[int], ran: int
) -> None:
    order = [k for r in range(max(lengths, default=0)) for k, n in enumerate(lengths) if n > r]
    taken = order[:ran]
    assert _finished(lengths, ran) == [taken.count(k) == n for k, n in enumerate(lengths)]


MEMOIZED = [
    text
    for k in range(15)
    for text in (
        f"cache GET app:memo{k}",
        f"SELECT * FROM users WHERE id = {k}",
        f"cache SET app:memo{k}",
    )
]
PAGE = steps(
    "SELECT * FROM threads WHERE id = ?",
    "UPDATE threads SET views=(threads.views + ?) WHERE threads.id = ?",
    "commit",
    *MEMOIZED,
    "SELECT * FROM reads WHERE user_id = ? AND thread_id = ?",
    "INSERT INTO reads (user_id, thread_id) VALUES (?, ?)",
    "commit",
)


def test_a_cache_read_of_a_key_nobody_writes_is_no_conflict_whatever_its_prefix() -> None:
    reader = steps("cache GET app:settings", "SELECT * FROM items", "cache GET app:menu")
    writer = steps("cache SET app:views:1", "UPDATE items SET n=? WHERE id = ?")
    trace = [*reader, *(replace(s, request=1) for s in writer)]
    # the SELECT (step 3) reads what the other writes; the cache reads name other keys
    assert conflict_points(trace, 2)[0] == (3, 2)
    clearing = [*reader, *(replace(s, request=1) for s in steps("cache CLEAR"))]
    assert set(conflict_points(clearing, 2)[0]) >= {2, 4}  # CLEAR writes every key


def test_a_pages_memoized_values_come_after_its_database_decisions() -> None:
    points = conflict_points([*PAGE, *(replace(s, request=1) for s in PAGE)], 2)[0]
    decided = decisions(points, PAGE)
    tracker = next(s.number for s in PAGE if "FROM reads" in s.text)
    assert decided[:2] == (2, tracker)  # the views counter's read, then the check
    assert len(decided) == 2 + 15  # then each memoized value's read before its write


def test_the_plan_takes_a_pages_check_before_its_memoized_values() -> None:
    page = surveyed("GET page", PAGE)
    result = plan(Survey((page,)), target(["GET page"]))
    tracker = next(s.number for s in PAGE if "FROM reads" in s.text)
    first = [s for _, s in list(result.scenarios())[:4]]
    points = conflict_points(surveyed_trace(first[0], {"GET page": PAGE}), 2)[0]
    assert {points[s.schedule[0].yields[0]] for s in first} == {2, tracker}


def wide(endpoints: int, memoized: int) -> Survey:
    """``endpoints`` writers of a shared table and one of their own, each reading
    ``memoized`` values through a cache first (the shape of a forum with a hundred
    endpoints)."""
    result = []
    for k in range(endpoints):
        texts = [
            "SELECT * FROM users WHERE id = ?",
            *[
                text
                for j in range(memoized)
                for text in (
                    f"cache GET app:memo{j}",
                    f"SELECT * FROM t{j}",
                    f"cache SET app:memo{j}",
                )
            ],
            f"SELECT * FROM own{k} WHERE id = ?",
            f"UPDATE own{k} SET n=? WHERE id = ?",
            "INSERT INTO log (x) VALUES (?)",
            "commit",
        ]
        result.append(surveyed(f"POST /e{k}", steps(*texts)))
    return Survey(tuple(result))


def test_a_hundred_endpoints_are_planned_in_seconds_and_little_memory() -> None:
    result = wide(100, 4)
    t = target([e.endpoint for e in result.endpoints])
    started = time.perf_counter()
    opening = openings(result, t)
    lazy = plan(result, t)
    first = [s for _, s in zip(range(500), lazy.scenarios(), strict=False)]
    seconds = time.perf_counter() - started
    assert len(lazy.pairs) == 100 * 101 // 2  # every two share the log
    assert lazy.size > 10**6  # counted, never listed (listed: gigabytes)
    assert len(opening) == 32 and len(first) == 500
    assert {k for k, _ in first} == set(range(500))  # 500 pairs, each its likeliest schedule
    assert seconds < 30, seconds  # about 2 s on an idle machine
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    assert peak < 500 * 2**20, peak  # the whole test process


def test_planning_stops_when_a_stop_is_asked_for() -> None:
    result = wide(20, 2)
    t = target([e.endpoint for e in result.endpoints])
    interrupt.request()
    try:
        with pytest.raises(KeyboardInterrupt):
            plan(result, t)
        with pytest.raises(KeyboardInterrupt):
            openings(result, t)
    finally:
        interrupt.clear()


def test_ctrl_c_during_a_long_plan_stops_it_at_once() -> None:
    """A run planning for minutes ignored Ctrl-C: trio delivered it to its main task,
    which waited on the work thread. The work now runs in the caller's thread."""
    from fuzzer.execute.instrument import load_target
    from fuzzer.modes.session import Session

    def work(_: Session) -> None:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # a long plan, checking for a stop
            interrupt.check()
            time.sleep(0.05)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Session(load_target("targets.profile:fixed")).run(work)
    interrupt.clear()
    assert time.monotonic() - started < 15
