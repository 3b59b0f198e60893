"""The search's systematic opening: the pairs likeliest to race, each under the few
schedules most races need, run before the random search (DESIGN.md §7)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from fuzzer.model import Gene, Request, Scenario, Step
from fuzzer.search import interrupt
from fuzzer.search.plan.likelihood import likely, profile
from fuzzer.search.plan.schedules import (
    Footprint,
    at_points,
    decisions,
    footprint,
    locks,
    points_between,
)
from fuzzer.search.survey import EndpointSurvey, Survey
from fuzzer.target.contract import Target

__all__ = ["MAX_DECISIONS", "MAX_OPENINGS", "openings"]

MAX_OPENINGS = 32
#: Moments of decision tried per request in the opening (a request with three commits
#: has a few; the race is rarely past the third).
MAX_DECISIONS = 3


def _writing(e: EndpointSurvey) -> Request:
    """The endpoint's request that wrote the most when surveyed (its simplest one may
    write nothing: a user following themself)."""
    return e.writer or e.request


def openings(result: Survey, target: Target) -> list[Scenario]:
    """The search's systematic opening, likeliest first:

    * pairs that may race, ranked by ``likelihood``: every writing endpoint against
      itself as the same identity (a double submit) and as another identity touching the
      same rows (two users, one item), and every two writers of a common table; each
      with both requests yielding at each of their first ``MAX_DECISIONS`` moments of
      decision (``schedules.decisions``: after the last conflicting read before a write,
      in every transaction of the request), then at their first conflict point;
    * every writing endpoint with two different requests of it (write skew: two doctors
      signing off at once), at the first decision and at the first conflict;
    * every reader of a table a writer writes, against that writer (a stale read: a
      total across two queries), the writer running through;
    * every pair of writers again, one yielding right after its COMMIT when it reads its
      rows again afterwards, the other running through (deleted under an expired object);
    * the ranked pairs again, both requests yielding wherever they hold a write's locks
      with another write to make (``schedules.locks``): both take compatible locks
      before either goes on, so a deadlock the database detects shows;
    * every writing endpoint in ``max_requests`` copies (an overrun that needs three).

    Most races that real users meet are among these. When there are more than
    ``MAX_OPENINGS``, every category keeps its first few. Each category is made lazily
    and only as far as it can be kept: a target with a hundred writers ranks its pairs
    (each endpoint's steps read once) but works out schedules for a few dozen."""
    by_name = {e.endpoint: e for e in result.endpoints}
    writers = [by_name[name] for name in result.writers()]
    reading = _Reading({e.endpoint: e.trace for e in result.endpoints})
    pair = max(2, target.min_requests)
    categories: list[Iterable[Scenario]] = []
    if target.min_requests <= 2 <= target.max_requests:
        ranked = _ranked(writers)
        seen: set[Any] = set()
        distinct = (s for s in ranked if s.requests[0].endpoint != s.requests[1].endpoint)
        categories = [
            _racing(ranked, reading, seen),
            _variants(writers, reading, seen),
            _readers(result, writers),
            _after_commit(distinct, reading),
            (s for r in ranked if (s := _yield_at_all(r, reading, locks)) is not None),
        ]
    elif pair <= target.max_requests:
        categories = [[_at_first(*(_writing(e),) * pair) for e in writers]]
    if target.max_requests > pair:
        categories.append(_at_first(*(_writing(e),) * target.max_requests) for e in writers)
    return _fair([_taken(c, MAX_OPENINGS) for c in categories], MAX_OPENINGS)


_FIRST = Gene(0, (0,))


def _at_first(*requests: Request) -> Scenario:
    return Scenario(requests, (_FIRST,) * len(requests))


def _taken(scenarios: Iterable[Scenario], limit: int) -> list[Scenario]:
    """The first ``limit`` scenarios of a category (no more can be kept), checking for a
    stop asked for (SIGINT, SIGTERM) as it goes."""
    result = []
    for scenario in scenarios:
        interrupt.check()
        result.append(scenario)
        if len(result) >= limit:
            break
    return result


def _ranked(writers: Sequence[EndpointSurvey]) -> list[Scenario]:
    """The pairs that may race, likeliest first, each request yielding at its first
    conflict point."""
    profiles = {e.endpoint: profile(e.trace) for e in writers}
    candidates: list[tuple[Request, Request]] = []
    for k, a in enumerate(writers):
        interrupt.check()
        candidates.append((_writing(a), _writing(a)))
        if a.other is not None:
            candidates.append((_writing(a), a.other))
        candidates += [(_writing(a), _writing(b)) for b in writers[k + 1 :] if a.writes & b.writes]
    scored = [
        (-likely(profiles[x.endpoint], profiles[y.endpoint], x == y), order, (x, y))
        for order, (x, y) in enumerate(candidates)
    ]
    return [_at_first(x, y) for _, _, (x, y) in sorted(scored, key=lambda t: t[:2])]


def _racing(ranked: Iterable[Scenario], reading: _Reading, seen: set[Any]) -> Iterator[Scenario]:
    """Each ranked pair with both requests at each of their first moments of decision,
    then at their first conflict point (each concrete schedule once)."""
    for scenario in ranked:
        for k in (*range(MAX_DECISIONS), -1):
            decided = scenario if k < 0 else _yield_at_each(scenario, reading, decisions, k)
            if decided is None:
                continue
            key = _concrete(decided, reading)
            if key not in seen:
                seen.add(key)
                yield decided


def _variants(
    writers: Iterable[EndpointSurvey], reading: _Reading, seen: set[Any]
) -> Iterator[Scenario]:
    """Each writer with two different requests of it (write skew), at the first decision
    and at the first conflict point, unless a ranked pair's opening has it already."""
    for e in writers:
        if e.variant is None:
            continue
        variant = _at_first(_writing(e), e.variant)
        decided = _yield_at_each(variant, reading, decisions, 0)
        for scenario in ([decided] if decided not in (None, variant) else []) + [variant]:
            key = _concrete(scenario, reading)
            if key not in seen:
                seen.add(key)
                yield scenario


def _readers(result: Survey, writers: Sequence[EndpointSurvey]) -> Iterator[Scenario]:
    """Every reader against each writer of what it reads, the writer running through."""
    for reader in result.endpoints:
        if reader.writes:
            continue
        for e in writers:
            if reader.reads & e.writes:
                yield Scenario((reader.request, _writing(e)), (_FIRST, Gene()))


def _after_commit(pairs: Iterable[Scenario], reading: _Reading) -> Iterator[Scenario]:
    """Each pair of different writers, in both orders, the first yielding after its
    COMMIT, when that is a conflict point."""
    pairs = list(pairs)
    for scenario in pairs + [Scenario(p.requests[::-1], p.schedule) for p in pairs]:
        changed = _yield_after_commit(scenario, reading)
        if changed.schedule[0] != _FIRST:
            yield changed


def _fair(categories: Sequence[Sequence[Scenario]], limit: int) -> list[Scenario]:
    """The categories one after another, at most ``limit`` scenarios: when they hold more,
    each keeps its first ``q`` (the largest ``q`` that fits), so a target with many
    writers still gets every kind of opening; what is left over goes to the first."""
    if sum(len(c) for c in categories) <= limit:
        return [s for c in categories for s in c]
    quota = 0
    while sum(min(len(c), quota + 1) for c in categories) <= limit:
        quota += 1
    spare = limit - sum(min(len(c), quota) for c in categories)
    result: list[Scenario] = []
    for c in categories:
        extra = min(spare, max(len(c) - quota, 0))
        spare -= extra
        result += c[: quota + extra]
    return result


class _Reading:
    """Each endpoint's surveyed steps, read once: a scenario's conflict points come from
    its endpoints' footprints (``schedules.points_between``), computed once per
    combination of endpoints, not from a trace rebuilt and parsed for every opening."""

    def __init__(self, traces: Mapping[str, Sequence[Step]]) -> None:
        self.traces = traces
        self._prints: dict[str, Footprint] = {}
        self._points: dict[tuple[str, ...], dict[int, tuple[int, ...]]] = {}

    def steps(self, scenario: Scenario, index: int) -> Sequence[Step]:
        return self.traces.get(scenario.requests[index].endpoint, ())

    def points(self, scenario: Scenario) -> dict[int, tuple[int, ...]]:
        """Per request, its conflict points (as ``schedules.conflict_points`` gives them
        for the scenario's surveyed trace)."""
        names = tuple(r.endpoint for r in scenario.requests)
        if names not in self._points:
            prints = [self._footprint(name) for name in names]
            self._points[names] = {
                i: points_between(p, prints[:i] + prints[i + 1 :]) for i, p in enumerate(prints)
            }
        return self._points[names]

    def _footprint(self, endpoint: str) -> Footprint:
        if endpoint not in self._prints:
            self._prints[endpoint] = footprint(self.traces.get(endpoint, ()))
        return self._prints[endpoint]


def _yield_at_each(
    scenario: Scenario,
    reading: _Reading,
    points: Callable[[Sequence[int], Sequence[Step]], tuple[int, ...]],
    k: int,
) -> Scenario | None:
    """Genes that make each request yield at its ``k``-th point of ``points`` (its last
    one when it has fewer); None when no request has a ``k``-th one."""
    own = reading.points(scenario)
    chosen = [points(own[i], reading.steps(scenario, i)) for i in range(len(scenario.requests))]
    if all(len(c) <= k for c in chosen):
        return None
    genes = []
    for i, c in enumerate(chosen):
        number = c[min(k, len(c) - 1)] if c else None
        genes.append(Gene(0, (own[i].index(number),)) if number is not None else Gene(0, (0,)))
    return Scenario(scenario.requests, tuple(genes))


def _yield_at_all(
    scenario: Scenario,
    reading: _Reading,
    points: Callable[[Sequence[int], Sequence[Step]], tuple[int, ...]],
) -> Scenario | None:
    """Genes that make each request yield at every one of its ``points``; None unless
    every request has one."""
    own = reading.points(scenario)
    chosen = [points(own[i], reading.steps(scenario, i)) for i in range(len(scenario.requests))]
    if not all(chosen):
        return None
    genes = [Gene(0, tuple(own[i].index(n) for n in c)) for i, c in enumerate(chosen)]
    return Scenario(scenario.requests, tuple(genes))


def _concrete(scenario: Scenario, reading: _Reading) -> Any:
    """The scenario with its yields as step numbers, as text: two openings the same when
    equal (requests hold dicts, so a scenario is not hashable)."""
    concrete = at_points(scenario, reading.points(scenario))
    return json.dumps(concrete.to_json(), sort_keys=True, default=str)


def _yield_after_commit(scenario: Scenario, reading: _Reading) -> Scenario:
    """Genes that make the first request yield after its COMMIT when a conflicting step
    follows it (it reads its own row again: SQLAlchemy expires objects on commit), while
    the second runs through: the row may be gone or changed by then."""

    def committed(own: Sequence[int], steps: Sequence[Step]) -> int | None:
        commits = [s.number for s in steps if s.kind == "commit" and s.number in own]
        return commits[0] if commits else None

    yielding = _yield_at(scenario, reading, committed)
    return Scenario(scenario.requests, (yielding.schedule[0], Gene()))


def _yield_at(
    scenario: Scenario,
    reading: _Reading,
    pick: Callable[[Sequence[int], Sequence[Step]], int | None],
) -> Scenario:
    """The scenario with each request yielding once, after the step ``pick`` chooses among
    its conflict points (its first one when ``pick`` chooses none), as an index into them
    (schedules.conflict_points): the form the engine draws and resolves."""
    points = reading.points(scenario)
    genes = []
    for index in range(len(scenario.requests)):
        own = points[index]
        chosen = pick(own, reading.steps(scenario, index))
        genes.append(Gene(0, (own.index(chosen) if chosen is not None else 0,)))
    return Scenario(scenario.requests, tuple(genes))
