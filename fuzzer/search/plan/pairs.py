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
search takes their schedules breadth first and one level at a time (``LEVELS``): every
pair's first (likeliest) schedule, then every pair's second, and so on, each level
across every pair before the next (one switch at a moment of decision, one switch at
any other conflict point, two switches), so every conflicting pair gets its first
schedules before any pair gets its last. A run says how much of it was done ("24 of 24
endpoint pairs explored at depth ≤ 2 at conflict points"), and level by level when it
did not finish ("25 of 25 tried, 25 of 25 at their moments of decision, …").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace

from fuzzer.model import Gene, Request, Scenario, Step
from fuzzer.search import interrupt
from fuzzer.search.plan.likelihood import Profile, likely, profile
from fuzzer.search.plan.schedules import Footprint, decisions, footprint, points_between
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
    shallow: int | None = None  # pairs whose every one-switch schedule ran (None: unknown)
    decided: int | None = None  # pairs whose every one switch at a likeliest point ran
    tried: int | None = None  # pairs with at least one schedule run (or none to run)

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
            "shallow": self.shallow,
            "decided": self.decided,
            "tried": self.tried,
        }


@dataclass(frozen=True)
class Variant:
    """One order and identity relation of a pair: its two requests, and each one's
    conflict points as indices (the drawn form a gene holds), likeliest first: its
    moments of decision (``schedules.decisions``), then the others in order."""

    requests: tuple[Request, Request]
    first: tuple[int, ...]
    second: tuple[int, ...]
    likeliest: int = 0  # how many of ``first`` come first (``_likeliest``)

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

    def likeliest(self) -> int:
        """How many of its schedules have one switch at a likeliest point."""
        return sum(v.likeliest for v in self.variants)

    def singles(self) -> int:
        """How many of its schedules have one context switch (the rest have two)."""
        return sum(len(v.first) for v in self.variants)

    def schedules(self) -> Iterator[Scenario]:
        """Every schedule of at most ``depth`` switches, in the order of ``LEVELS``."""
        for level in LEVELS:
            yield from level(self)

    def at_likeliest(self) -> Iterator[Scenario]:
        """One switch at each of the first request's likeliest points (its moments of
        decision: after its last conflicting read before a write; or its first conflict
        point when it has none), the other request running through: each variant in
        turn at its first, then at its next."""
        return self._one_switch(lambda v: v.first[: v.likeliest])

    def at_other_points(self) -> Iterator[Scenario]:
        """One switch at each of the first request's other conflict points, in order."""
        return self._one_switch(lambda v: v.first[v.likeliest :])

    def _one_switch(self, chosen: Callable[[Variant], tuple[int, ...]]) -> Iterator[Scenario]:
        points = [(v, chosen(v)) for v in self.variants]
        longest = max((len(p) for _, p in points), default=0)
        for i in range(longest):
            for v, p in points:
                if i < len(p):
                    yield Scenario(v.requests, (Gene(0, (p[i],)), Gene()))

    def two_switches(self) -> Iterator[Scenario]:
        """Each request yields once (with ``depth`` 2), by the sum of the two points'
        ranks: the likeliest pairs of points first."""
        if self.depth < 2:
            return
        widest = max((len(v.first) + len(v.second) for v in self.variants), default=0)
        for total in range(widest - 1):
            for v in self.variants:
                for i in range(max(0, total - len(v.second) + 1), min(total, len(v.first) - 1) + 1):
                    genes = (Gene(0, (v.first[i],)), Gene(0, (v.second[total - i],)))
                    yield Scenario(v.requests, genes)


#: The plan's levels, each taken across every pair before the next: one switch at a
#: likeliest point, one switch at any other conflict point, two switches.
LEVELS = (PairPlan.at_likeliest, PairPlan.at_other_points, PairPlan.two_switches)


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
        """(index into ``pairs``, scenario in drawn form), breadth first and one level at
        a time (``LEVELS``): round after round, each pair's next schedule of one switch
        at a likeliest point (a moment of decision) in turn, a pair leaving the round
        when it has no more, until every pair has had them all; then those of one switch
        at its other conflict points, round after round again; then those of two
        switches. So every pair, likeliest first, is tried at each of its moments of
        decision (every pair in the first round), then at each of its conflict points,
        before examples go to depth."""
        for level in LEVELS:
            active = [(k, level(shape)) for k, shape in enumerate(self.shapes)]
            while active:
                still = []
                for k, schedules in active:
                    interrupt.check()
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
        """The coverage once the first ``ran`` scenarios (of ``scenarios()``) have run:
        how many pairs finished each level (and every level before it)."""
        ran_all = ran
        first = [k for k, shape in enumerate(self.shapes) if len(shape)]  # the first round
        tried = len(self.shapes) - len(first) + min(ran, len(first))
        levels = [
            [shape.likeliest() for shape in self.shapes],
            [shape.singles() - shape.likeliest() for shape in self.shapes],
            [len(shape) - shape.singles() for shape in self.shapes],
        ]
        done = [True] * len(self.shapes)
        counts = []
        for lengths in levels:
            finished = _finished(lengths, ran)
            done = [d and f for d, f in zip(done, finished, strict=True)]
            counts.append(sum(done))
            ran -= min(ran, sum(lengths))
        decided, shallow, explored = counts
        return Coverage(
            pairs=len(self.pairs),
            explored=explored,
            schedules=self.size,
            ran=min(ran_all, self.size),
            done_after=done_after if explored == len(self.pairs) else None,
            random=random,
            relations=self.relations,
            shallow=shallow,
            decided=decided,
            tried=tried,
        )


def _finished(lengths: Sequence[int], ran: int) -> list[bool]:
    """Which pairs (of these numbers of schedules) the first ``ran`` schedules taken
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
    finished = [n <= low for n in lengths]
    for k, n in enumerate(lengths):  # the next round, in order, as far as it went
        if n > low:
            if partial <= 0:
                break
            partial -= 1
            finished[k] = n == low + 1
    return finished


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
    orders: dict[tuple[str, str], tuple[tuple[int, ...], tuple[int, ...], int]] = {}
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


def _orders(a: _Known, b: _Known) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Each request's conflict points against the other's, likeliest first (indices),
    and how many of the first request's come first."""
    first, decided = _likeliest(points_between(a.footprint, [b.footprint]), a.trace)
    second, _ = _likeliest(points_between(b.footprint, [a.footprint]), b.trace)
    return first, second, decided


def _likeliest(points: tuple[int, ...], steps: Sequence[Step]) -> tuple[tuple[int, ...], int]:
    """Indices into ``points``: the moments of decision first, then the rest in order;
    and how many are likeliest: the moments of decision, or the first point when there
    is none (so every pair with a conflict point is in the plan's first level)."""
    decided = [points.index(n) for n in decisions(points, steps)]
    chosen = set(decided)
    ranked = (*decided, *(i for i in range(len(points)) if i not in chosen))
    return ranked, min(max(len(decided), 1), len(ranked))


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
