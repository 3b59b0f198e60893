"""Bounded exhaustive search of endpoint pairs, and what it covered (DESIGN.md §7, §11).

After the opening and the random search's share of the budget, every pair of writing
endpoints that conflict is explored systematically: both requests of the pair, in both
orders, as the same identity and as two different ones, under every schedule with one
context switch (the first request yields at one of its conflict points, the other runs
through) and with two (the first yields at one of its conflict points, the second at one
of its own).

The plan is data, and lazy: each pair is described by its requests and the counts of
their conflict points (``PairPlan``), and its schedules are made only when the search
asks for them. Pairs are ranked by ``likelihood.likelihood`` across all endpoints, and the
search takes their schedules breadth first: every pair's first (likeliest) schedule,
then every pair's second, and so on, so every conflicting pair gets its first
schedules before any pair gets its last. A run says how much of it was done ("24 of 24
endpoint pairs explored at depth ≤ 2 at conflict points").
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace

from fuzzer.model import Gene, Request, Scenario, Step
from fuzzer.search import interrupt
from fuzzer.search.likelihood import Profile, likely, profile
from fuzzer.search.schedules import Footprint, decisions, footprint, points_between
from fuzzer.search.survey import EndpointSurvey, Survey
from fuzzer.target.contract import Target

__all__ = ["DEPTH", "Coverage", "PairPlan", "Plan", "Variant", "plan"]

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
class Variant:
    """One order and identity relation of a pair: its two requests, and each one's
    conflict points as indices (the drawn form a gene holds), likeliest first: its
    moments of decision (``schedules.decisions``), then the others in order."""

    requests: tuple[Request, Request]
    first: tuple[int, ...]
    second: tuple[int, ...]

    def size(self, depth: int) -> int:
        return len(self.first) * (1 + (len(self.second) if depth >= 2 else 0))


@dataclass(frozen=True)
class PairPlan:
    """The schedules of one endpoint pair, described rather than listed."""

    endpoints: tuple[str, str]
    variants: tuple[Variant, ...]
    depth: int = DEPTH

    def __len__(self) -> int:
        return sum(v.size(self.depth) for v in self.variants)

    def schedules(self) -> Iterator[Scenario]:
        """Every schedule of at most ``depth`` switches, each variant in turn at each
        step: one switch at the first request's likeliest point, then its next; then two
        switches, by the sum of the two points' ranks (the likeliest pairs of points
        first)."""
        longest = max((len(v.first) for v in self.variants), default=0)
        for i in range(longest):
            for v in self.variants:
                if i < len(v.first):
                    yield Scenario(v.requests, (Gene(0, (v.first[i],)), Gene()))
        if self.depth < 2:
            return
        widest = max((len(v.first) + len(v.second) for v in self.variants), default=0)
        for total in range(widest - 1):
            for v in self.variants:
                for i in range(max(0, total - len(v.second) + 1), min(total, len(v.first) - 1) + 1):
                    genes = (Gene(0, (v.first[i],)), Gene(0, (v.second[total - i],)))
                    yield Scenario(v.requests, genes)


@dataclass(frozen=True)
class Plan:
    """The pairs to explore, likeliest first (``pairs`` names each pair's endpoints,
    ``shapes`` describes its schedules), and the schedules breadth first."""

    pairs: tuple[tuple[str, str], ...]
    shapes: tuple[PairPlan, ...] = ()
    relations: tuple[str, ...] = ()

    @functools.cached_property
    def size(self) -> int:
        """How many schedules the plan holds (counted, not listed)."""
        return sum(len(shape) for shape in self.shapes)

    def scenarios(self) -> Iterator[tuple[int, Scenario]]:
        """(index into ``pairs``, scenario in drawn form), round after round: each pair's
        next schedule in turn, a pair leaving the round when it has no more."""
        active = [(k, shape.schedules()) for k, shape in enumerate(self.shapes)]
        while active:
            still = []
            for k, schedules in active:
                scenario = next(schedules, None)
                if scenario is not None:
                    yield k, scenario
                    still.append((k, schedules))
            active = still

    def only(self, wanted: Collection[tuple[str, str]]) -> Plan:
        """The plan of the ``wanted`` pairs alone (a soak worker's share of it)."""
        keep = [k for k, pair in enumerate(self.pairs) if pair in wanted]
        return Plan(
            tuple(self.pairs[k] for k in keep), tuple(self.shapes[k] for k in keep), self.relations
        )

    def coverage(self, ran: int, done_after: int | None = None, random: int = 0) -> Coverage:
        """The coverage once the first ``ran`` scenarios (of ``scenarios()``) have run."""
        explored = _explored([len(shape) for shape in self.shapes], ran)
        return Coverage(
            pairs=len(self.pairs),
            explored=explored,
            schedules=self.size,
            ran=min(ran, self.size),
            done_after=done_after if explored == len(self.pairs) else None,
            random=random,
            relations=self.relations,
        )


def _explored(lengths: Sequence[int], ran: int) -> int:
    """How many pairs (of these numbers of schedules) the first ``ran`` schedules taken
    round after round cover whole: those no longer than the rounds run in full, and
    those the last, partial round finished."""

    def taken(rounds: int) -> int:
        return sum(min(n, rounds) for n in lengths)

    low, high = 0, max(lengths, default=0)
    while low < high:  # the most full rounds that fit in ``ran``
        middle = (low + high + 1) // 2
        if taken(middle) <= ran:
            low = middle
        else:
            high = middle - 1
    partial = ran - taken(low)
    explored = sum(1 for n in lengths if n <= low)
    for n in lengths:  # the next round, in order, as far as it went
        if n > low:
            if partial <= 0:
                break
            partial -= 1
            explored += n == low + 1
    return explored


def plan(result: Survey, target: Target, depth: int = DEPTH) -> Plan:
    """Every pair of writing endpoints that conflict (an endpoint with itself included),
    likeliest first (``likelihood.likelihood``), with every schedule of at most ``depth``
    (1 or 2) context switches at conflict points, in both orders, as the same identity
    and as different identities when the target declares several. Each endpoint's
    steps are read once; the schedules are made as they are taken."""
    writers = [e for e in result.endpoints if e.writes]
    identities = [i.name for i in target.identities]
    relations = ("same", "different") if len(identities) >= 2 else ()
    if not target.min_requests <= 2 <= target.max_requests:
        return Plan((), (), relations)
    known = {e.endpoint: _Known(e.trace, footprint(e.trace), profile(e.trace)) for e in writers}
    candidates: list[tuple[int, int, EndpointSurvey, EndpointSurvey]] = []
    for k, a in enumerate(writers):
        interrupt.check()  # a stop asked for while planning (SIGINT, SIGTERM)
        for b in writers[k:]:
            if _conflict(a, b):
                score = likely(known[a.endpoint].profile, known[b.endpoint].profile, a is b)
                candidates.append((-score, len(candidates), a, b))
    candidates.sort(key=lambda c: c[:2])
    orders: dict[tuple[str, str], tuple[tuple[int, ...], tuple[int, ...]]] = {}
    shapes = []
    for _, _, a, b in candidates:
        interrupt.check()
        variants = []
        for x, y in _requests(a, b, identities):
            for first, second in [(x, y)] if x == y else [(x, y), (y, x)]:
                names = (first.endpoint, second.endpoint)
                if names not in orders:  # the same for every identity relation
                    orders[names] = _orders(known[names[0]], known[names[1]])
                variants.append(Variant((first, second), *orders[names]))
        shapes.append(PairPlan((a.endpoint, b.endpoint), tuple(variants), depth))
    return Plan(tuple(s.endpoints for s in shapes), tuple(shapes), relations)


@dataclass(frozen=True)
class _Known:
    """One writing endpoint's surveyed steps, read once."""

    trace: tuple[Step, ...]
    footprint: Footprint
    profile: Profile


def _orders(a: _Known, b: _Known) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Each request's conflict points against the other's, likeliest first (indices)."""
    return (
        _likeliest(points_between(a.footprint, [b.footprint]), a.trace),
        _likeliest(points_between(b.footprint, [a.footprint]), b.trace),
    )


def _likeliest(points: tuple[int, ...], steps: Sequence[Step]) -> tuple[int, ...]:
    """Indices into ``points``: the moments of decision first, then the rest in order."""
    decided = [points.index(n) for n in decisions(points, steps)]
    chosen = set(decided)
    return (*decided, *(i for i in range(len(points)) if i not in chosen))


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
