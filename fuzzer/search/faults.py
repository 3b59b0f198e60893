"""The opening of a search with injected errors (``--faults``, DESIGN.md §11).

Before Hypothesis draws faults at random, every writing endpoint runs alone with one
error injected at each of its first statements that take locks (where the database
can abort it), of each chosen kind: a retry that repeats a committed side effect, a
handler that keeps half its work, a 500 for a retryable error all show with one
request and one fault. Then the likeliest racing pairs of the plain opening run with
an error injected into the first request's first conflicting statement (a retry that
acts on what it read before another request committed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from fuzzer.findings import Finding
from fuzzer.model import Fault, Gene, Scenario
from fuzzer.search.survey import Survey
from fuzzer.sql import takes_locks

#: how many statements of each writer get an error of each kind, and how many of the
#: opening's pairs get one
MAX_STATEMENTS = 4
MAX_PAIRS = 6


def openings(
    surveyed: Survey, kinds: Sequence[str], pairs: Sequence[Scenario] = ()
) -> list[Scenario]:
    """The fault opening: each writer alone, with an error at each of its first
    statements that take locks (kinds innermost), then ``pairs`` (the plain opening's,
    likeliest first) with an error at the first request's first conflicting statement.
    Fault numbers are indices into a request's fault points (schedules.fault_points),
    as the ``conflict`` schedule reads them."""
    if not kinds:
        return []
    by_name = {e.endpoint: e for e in surveyed.endpoints}
    alone: list[Scenario] = []
    for name in surveyed.writers():
        e = by_name[name]
        request = e.writer or e.request
        statements = sum(1 for s in e.trace if s.kind == "sql" and takes_locks(s.text))
        for k in range(min(statements, MAX_STATEMENTS)):
            for kind in kinds:
                alone.append(Scenario((request,), (Gene(0, (), (Fault(k, kind),)),)))
    together = [
        Scenario(
            scenario.requests,
            (
                Gene(
                    scenario.schedule[0].priority,
                    scenario.schedule[0].yields,
                    (Fault(0, kinds[0]),),
                ),
                *scenario.schedule[1:],
            ),
            scenario.init,
            scenario.observers,
        )
        for scenario in pairs
        if len(scenario.requests) >= 2
    ][:MAX_PAIRS]
    return alone + together


def fewer_faults(
    finding: Finding,
    reproduces: Callable[[Scenario, str], Finding | None],
    shrinking: Callable[[], bool],
) -> Finding:
    """Drop every injected error the finding does not need, latest first, while the
    shrink budget lasts: a finding is reported with the fewest errors that show it."""
    fingerprint = finding.fingerprint
    scenario = finding.scenario
    for index in reversed(range(len(scenario.schedule))):
        for fault in reversed(scenario.schedule[index].faults):
            if not shrinking():
                return finding
            gene = scenario.schedule[index]
            fewer = replace(gene, faults=tuple(f for f in gene.faults if f != fault))
            schedule = (*scenario.schedule[:index], fewer, *scenario.schedule[index + 1 :])
            candidate = replace(scenario, schedule=schedule)
            match = reproduces(candidate, fingerprint)
            if match is not None:
                scenario, finding = candidate, match.with_(found_after=finding.found_after)
    return finding
