"""Bounded exhaustive search of endpoint pairs, and what it covered (DESIGN.md §7, §11).

After the opening and the random search's share of the budget, every pair of writing
endpoints that conflict is explored systematically: both requests of the pair, in both
orders, as the same identity and as two different ones, under every schedule with one
context switch (the first request yields at one of its conflict points, the other runs
through) and with two (the first yields at one of its conflict points, the second at one
of its own). The plan is data: a list of scenarios in drawn form, pair after pair,
likeliest pair first, and a run says how much of it was done ("24 of 24 endpoint pairs explored at
depth ≤ 2 at conflict points").
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from fuzzer.model import Gene, Request, Scenario, Step
from fuzzer.search.schedules import conflict_points, surveyed_trace
from fuzzer.search.survey import EndpointSurvey, Survey, likelihood
from fuzzer.target.contract import Target

__all__ = ["DEPTH", "Coverage", "Plan", "plan"]

#: Context switches per schedule the plan reaches (most races need one or two).
DEPTH = 2


@dataclass(frozen=True)
class Coverage:
    """How much of the plan a search ran: data, rendered by fuzzer/report/reporting.py."""

    pairs: int  # endpoint pairs in the plan
    explored: int  # pairs whose every schedule ran
    schedules: int  # schedules in the plan
    ran: int  # of them run
    depth: int = DEPTH
    done_after: int | None = None  # examples run when the last pair was explored
    random: int = 0  # examples of the random phase (Hypothesis) after the plan
    relations: tuple[str, ...] = ()  # the identity relations explored ("same", "different")

    @property
    def complete(self) -> bool:
        return self.explored == self.pairs

    def to_json(self) -> dict[str, object]:
        return {
            "pairs": self.pairs,
            "explored": self.explored,
            "schedules": self.schedules,
            "ran": self.ran,
            "depth": self.depth,
            "done_after": self.done_after,
            "random": self.random,
            "relations": list(self.relations),
        }


@dataclass(frozen=True)
class Plan:
    """The schedules to run, pair after pair; ``pairs`` names each pair's endpoints."""

    pairs: tuple[tuple[str, str], ...]
    scenarios: tuple[tuple[int, Scenario], ...]  # (index into pairs, scenario)
    relations: tuple[str, ...] = ()

    def only(self, wanted: Collection[tuple[str, str]]) -> Plan:
        """The plan of the ``wanted`` pairs alone (a soak worker's share of it)."""
        keep = [k for k, pair in enumerate(self.pairs) if pair in wanted]
        index = {k: n for n, k in enumerate(keep)}
        scenarios = tuple((index[k], s) for k, s in self.scenarios if k in index)
        return Plan(tuple(self.pairs[k] for k in keep), scenarios, self.relations)

    def coverage(self, ran: int, done_after: int | None = None, random: int = 0) -> Coverage:
        """The coverage once the first ``ran`` scenarios have run."""
        total: dict[int, int] = {}
        for pair, _ in self.scenarios:
            total[pair] = total.get(pair, 0) + 1
        done: dict[int, int] = {}
        for pair, _ in self.scenarios[:ran]:
            done[pair] = done.get(pair, 0) + 1
        explored = sum(1 for k in range(len(self.pairs)) if done.get(k, 0) >= total.get(k, 0))
        return Coverage(
            pairs=len(self.pairs),
            explored=explored,
            schedules=len(self.scenarios),
            ran=min(ran, len(self.scenarios)),
            done_after=done_after if explored == len(self.pairs) else None,
            random=random,
            relations=self.relations,
        )


def plan(result: Survey, target: Target, depth: int = DEPTH) -> Plan:
    """Every pair of writing endpoints that conflict (an endpoint with itself included),
    likeliest first (``survey.likelihood``), with every schedule of at most ``depth``
    (1 or 2) context switches at conflict points, in both orders, as the same identity
    and as different identities when the target declares several."""
    traces = {e.endpoint: e.trace for e in result.endpoints}
    writers = [e for e in result.endpoints if e.writes]
    identities = [i.name for i in target.identities]
    relations = ("same", "different") if len(identities) >= 2 else ()
    if not target.min_requests <= 2 <= target.max_requests:
        return Plan((), (), relations)
    candidates: list[tuple[int, int, EndpointSurvey, EndpointSurvey]] = []
    for k, a in enumerate(writers):
        for b in writers[k:]:
            if not _conflict(a, b):
                continue
            score = likelihood(traces[a.endpoint], traces[b.endpoint], a is b)
            candidates.append((-score, len(candidates), a, b))
    pairs: list[tuple[str, str]] = []
    scenarios: list[tuple[int, Scenario]] = []
    for _, _, a, b in sorted(candidates, key=lambda c: c[:2]):
        index = len(pairs)
        pairs.append((a.endpoint, b.endpoint))
        seen: set[str] = set()  # requests hold dicts: a scenario is not hashable
        for x, y in _requests(a, b, identities):
            for scenario in _schedules(x, y, traces, depth):
                key = json.dumps(scenario.to_json(), sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    scenarios.append((index, scenario))
    return Plan(tuple(pairs), tuple(scenarios), relations)


def _conflict(a: EndpointSurvey, b: EndpointSurvey) -> bool:
    return bool(a.writes & (b.reads | b.writes) or b.writes & (a.reads | a.writes))


def _requests(
    a: EndpointSurvey, b: EndpointSurvey, identities: Sequence[str]
) -> list[tuple[Request, Request]]:
    """The pair's two requests as the same identity, then as different identities."""
    x = a.writer or a.request
    y = b.writer or b.request
    if not identities or x.identity is None:
        return [(x, y)]
    same = replace(y, identity=x.identity)
    if a is b and a.other is not None:
        different = a.other
    else:
        others = [i for i in identities if i != x.identity]
        different = replace(y, identity=others[0]) if others else same
    result = [(x, same)]
    if different != same:
        result.append((x, different))
    return result


def _schedules(
    x: Request, y: Request, traces: Mapping[str, Sequence[Step]], depth: int
) -> list[Scenario]:
    """Every schedule of ``x`` and ``y`` with 1, then 2 context switches at their conflict
    points, ``x`` first and then ``y`` first (drawn form: yields index conflict points)."""
    result: list[Scenario] = []
    orders = [(x, y)] if x == y else [(x, y), (y, x)]
    for first, second in orders:
        scenario = Scenario((first, second), (Gene(), Gene()))
        points = conflict_points(surveyed_trace(scenario, traces), 2)
        n, m = len(points.get(0, ())), len(points.get(1, ()))
        result += [Scenario((first, second), (Gene(0, (i,)), Gene())) for i in range(n)]
        if depth >= 2:
            result += [
                Scenario((first, second), (Gene(0, (i,)), Gene(0, (j,))))
                for i in range(n)
                for j in range(m)
            ]
    return result
