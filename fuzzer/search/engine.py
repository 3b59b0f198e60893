"""The Hypothesis search loop: draw a scenario, run it, judge it, shrink what fails.

Hypothesis drives the search: every example is a sequence of choices, and shrinking
makes it shorter and simpler (fewer requests, simpler arguments, fewer yields: fewer
context switches). Each distinct finding (fingerprint: kind + endpoints + exception
type) is its own "interesting origin", so one run reports every distinct finding it
met, each shrunk on its own.

Hypothesis's internals are used only through ``fuzzer/search/conjecture.py``; this
module decides what to run and when to stop. A run has two budgets, each its own:

- the search: ``max_examples`` examples (the systematic opening and the replays of the
  example database count) and ``time_budget`` seconds, whichever ends first;
- shrinking: ``shrink_budget`` seconds for shrinking every finding, dropping requests
  and yields, and confirming (a share is kept for the confirmations).

So a run takes at most about ``time_budget + shrink_budget`` (each may overrun by one
execution), and its result says how long each took.

A finding is written unshrunk (marked so) the moment it is seen and reproduced once,
and replaced when shrinking ends: an interrupted run keeps what it announced.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hypothesis import Phase
from hypothesis.strategies import SearchStrategy

from fuzzer.execute.runner import Controlled, Dispatch, Free
from fuzzer.execute.scheduler import Limits
from fuzzer.findings import Finding, Reproduced, classify
from fuzzer.judge.oracle import Oracle
from fuzzer.model import Execution, Scenario, Step
from fuzzer.search import conjecture, interrupt
from fuzzer.search.conjecture import Budget, Case, Choices
from fuzzer.search.events import Example, Final, Found, Listener, Unconfirmed, Unshrunk, ignore
from fuzzer.search.finish import Finishing, evaluate
from fuzzer.search.plan.pairs import Coverage, Plan
from fuzzer.search.plan.schedules import needs_trace, resolve, surveyed_trace
from fuzzer.search.records import Detection, SearchResult, Tuning
from fuzzer.settings import Settings

__all__ = ["Detection", "Search", "SearchResult", "Tuning", "evaluate"]

UNSHRUNK = "not yet shrunk: written when first seen; replaced when shrinking ends"
#: The pairs' plan may take up to this percentage of the example budget; the rest goes
#: to the random search (Hypothesis), which runs first and reaches what the plan does
#: not: three requests, init requests, other values, a single request that fails.
PLAN_SHARE = 75


class _TargetStuck(BaseException):
    """An execution left requests stuck for good: stop the search (not a test failure)."""


class Search(Finishing):
    """One search over a target's scenarios."""

    def __init__(
        self,
        strategy: SearchStrategy[Scenario],
        execute: Callable[[Scenario, Dispatch], Execution],
        oracle: Oracle,
        settings: Settings,
        tuning: Tuning | None = None,
        *,
        http_requests: Callable[[], int] = lambda: 0,
        on_event: Listener = ignore,
        traces: Mapping[str, Sequence[Step]] | None = None,
        seeds: Sequence[Scenario] = (),
        plan: Plan | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.strategy = strategy
        self.clock = clock  # monotonic seconds, for the budgets (a test passes a fake one)
        self.traces = traces  # each endpoint's steps alone (the survey), for conflict points
        self.tuning = tuning = tuning or Tuning()
        limits = tuning.limits or Limits.of(settings)
        self.controlled = Controlled(limits)
        self.dispatch: Dispatch = Free(limits) if tuning.free_running else self.controlled
        self.execute = execute
        self.oracle = oracle
        self.settings = settings
        self.http_requests = http_requests
        self.on_event = on_event
        self.examples = 0
        self.calls = 0
        self.unknown: Counter[str] = Counter()
        self.treated: Counter[str] = Counter()  # verdicts that needed a reading: why
        self.judged: Counter[str] = Counter()
        self.masked: Counter[str] = Counter()
        self.detections: dict[str, Detection] = {}
        self.seen_as: dict[str, tuple[str, ...]] = {}  # fingerprint -> its first endpoints
        self._routes: dict[str, set[str]] = {}  # fingerprint -> every endpoint seen in it
        self.seconds: dict[str, float] = defaultdict(float)  # where the time goes
        self.stuck: list[Finding] | None = None  # the findings of an execution that got stuck
        self.seeds = tuple(seeds)
        self.plan = plan  # the bounded exhaustive search of endpoint pairs, after the opening
        self._planned = 0  # how many of the plan's scenarios ran
        self._opened: set[str] = set()  # the opening's scenarios (``_key``), run already
        self._plan_done: int | None = None  # examples run when the plan was done
        self._random = 0  # examples Hypothesis generated
        self._seeded: dict[str, Finding] = {}  # fingerprint -> first seed that showed it
        self.seed = settings.seed if settings.seed is not None else random.getrandbits(32)
        self._findings_by_choices: dict[tuple[Any, ...], list[Finding]] = {}
        self._smallest: dict[str, tuple[Any, ...]] = {}  # fingerprint -> choices seen
        self._started = 0.0
        self._shrinking = False
        self._focus: str | None = None
        self._execution_seconds = 0.0  # by ``clock``: what an execution costs, on average
        self._written: set[str] = set()  # fingerprints written unshrunk
        self.budget = self._budget()

    def _budget(self) -> Budget:
        s = self.settings
        return Budget(
            max_examples=s.max_examples,
            seconds=s.time_budget,
            shrink_seconds=s.shrink_budget,
            clock=self.clock,
            stop=self._found_wanted if self.tuning.stop_at_first else None,
        )

    # -- the test function ----------------------------------------------------------------

    def _stopped_stuck(self) -> SearchResult:
        """The findings of the execution that got stuck, as they are: nothing more can
        run against a process whose threads are deadlocked."""
        findings = list(self.stuck or [])
        note = (
            "its requests' threads stayed stuck after the hang (a deadlock in Python): "
            "the search stopped here, unshrunk"
        )
        findings = [
            f.with_(
                found_after=self.detections[f.fingerprint].examples,
                extra={**f.extra, "stopped": note},
            )
            for f in findings
        ]
        findings = [self._with_routes(f) for f in findings]  # written with every route
        for finding in findings:
            self.on_event(Final(finding))
        return self._result(
            findings, "the target's threads are stuck (deadlocked in Python); restart it"
        )

    def _result(
        self,
        findings: list[Finding],
        stop_reason: str,
        unconfirmed: list[Finding] | None = None,
    ) -> SearchResult:
        budget, s = self.budget, self.settings
        return SearchResult(
            findings=[self._with_routes(f) for f in findings],
            examples=self.examples,
            calls=self.calls,
            seconds=self.clock() - self._started,
            stop_reason=stop_reason,
            detections=self.detections,
            unknown=self.unknown,
            shrink_seconds=budget.shrink_elapsed,
            seed=self.seed,
            search_seconds=budget.search_seconds,
            time_budget=s.time_budget,
            shrink_budget=s.shrink_budget,
            max_examples=s.max_examples,
            coverage=self._coverage(),
            unconfirmed=unconfirmed or [],
            treated=self.treated,
            judged=self.judged,
            masked=self.masked,
        )

    def _draw(self, case: Case) -> Scenario:
        return self.prepare(case.draw(self.strategy))

    def prepare(self, drawn: Scenario) -> Scenario:
        """Turn the drawn genes into a concrete schedule (step numbers): conflict points
        come from the endpoints' surveyed steps, or else from a serial run."""
        mode = self.settings.schedule
        if not needs_trace(mode):
            return resolve(drawn, mode)
        if self.traces is not None:
            return resolve(drawn, mode, surveyed_trace(drawn, self.traces))
        serial, _ = self.oracle.reference(drawn, tuple(range(len(drawn.requests))))
        return resolve(drawn, mode, serial.trace)

    def _example(self, scenario: Scenario) -> list[Finding]:
        """Run one example, judge it, classify it, and record what it cost and found."""
        interrupt.check()
        self.calls += 1
        if not self._shrinking:
            self.examples += 1
        started = time.perf_counter()
        references = self.oracle.stats.seconds
        clock_started = self.clock()
        execution = self.execute(scenario, self.dispatch)
        self._execution_seconds += self.clock() - clock_started
        if execution.cut:  # requests still running at the deadline: nothing to judge
            if not self._shrinking:
                self.judged["not"] += 1
                self.unknown[execution.cut] += 1
                self.budget.spent()
            return []
        executed = time.perf_counter()
        verdict = self.oracle.judge(scenario, execution)
        judged = time.perf_counter()
        known = self.tuning.known  # already reported (a soak's earlier rounds)
        findings = [f for f in classify(scenario, execution, verdict) if f.fingerprint not in known]
        spent = self.seconds
        spent["executions"] += executed - started
        spent["references"] += self.oracle.stats.seconds - references
        spent["oracle"] += judged - executed - (self.oracle.stats.seconds - references)
        spent["classify"] += time.perf_counter() - judged
        if self._shrinking:
            spent["shrinking"] += time.perf_counter() - started
        if not self._shrinking:
            self.judged[verdict.judged] += 1
            self.masked.update(verdict.masked)
            if verdict.status == "unknown":
                self.unknown[verdict.reason.split(";")[0]] += 1
            elif verdict.status == "serializable" and verdict.reason:
                self.treated[verdict.reason] += 1
        self.on_event(
            Example(
                examples=self.examples,
                calls=self.calls,
                findings=len(self.detections),
                shrinking=self._shrinking,
            )
        )
        now = self.clock() - self._started
        new = []
        for finding in findings:
            if finding.kind == "concurrency-error":  # one statement's error: its routes
                self._routes.setdefault(finding.fingerprint, set()).update(finding.endpoints)
            if finding.fingerprint not in self.detections:
                self.detections[finding.fingerprint] = Detection(
                    self.examples, self.http_requests(), now
                )
                self.seen_as[finding.fingerprint] = finding.endpoints
                self.on_event(Found(finding, self.examples))
                new.append(finding)
        if any(r is not None and r.status == 0 for r in execution.responses):
            # threads that never came back (a deadlock in Python) keep their locks: every
            # later example would hang on them, so the search ends here
            self.stuck = findings
            raise _TargetStuck
        for finding in new:
            self._write_unshrunk(finding)
        if not self._shrinking:
            self.budget.spent()
        return findings

    def _write_unshrunk(self, finding: Finding) -> None:
        """Write a finding as first seen, once it reproduces under its schedule, so an
        interrupted run keeps it; its final (shrunk) version replaces it."""
        if self.tuning.free_running or self._shrinking or finding.fingerprint in self._written:
            return
        hits = int(self._reproduces(finding.scenario, finding.fingerprint) is not None)
        self._written.add(finding.fingerprint)
        detection = self.detections[finding.fingerprint]
        self.on_event(
            Unshrunk(
                finding.with_(
                    found_after=detection.examples,
                    flaky=None if hits else Reproduced(0, 1),
                    extra={**finding.extra, "unshrunk": UNSHRUNK},
                )
            )
        )

    def _test(self, case: Case) -> None:
        # the same race as first seen, or none: shrinking keeps a finding's route
        findings = [f for f in self._example(self._draw(case)) if self._same(f)]
        if not findings:
            return
        choices = case.choices
        for finding in findings:
            best = self._smallest.get(finding.fingerprint)
            if best is None or _smaller(choices, best):
                self._smallest[finding.fingerprint] = choices
        relevant = [f for f in findings if self._focus is None or f.fingerprint == self._focus]
        if relevant:
            self._findings_by_choices[choices] = findings
            case.mark(relevant[0].fingerprint)

    def _run_seeds(self) -> None:
        """The systematic opening (before Hypothesis): each seed scenario once, within the
        example and time budgets."""
        for drawn in self.seeds:
            if self._opening_over():
                return
            scenario = self.prepare(drawn)
            self._opened.add(_key(scenario))
            for finding in self._example(scenario):
                self._seeded.setdefault(finding.fingerprint, finding)

    def _run_plan(self) -> None:
        """The pairs' plan (after the random phase, which has its share of the budget
        first: it reaches what the plan does not, such as a single request that fails),
        breadth first (every pair's likeliest schedule, then every pair's next) until the
        example or time budget is spent. A schedule the opening ran is not run again: it
        counts as covered, at no example."""
        if self.plan is None:
            return
        for _, drawn in self.plan.scenarios():
            scenario = self.prepare(drawn)
            if _key(scenario) in self._opened:
                self._planned += 1
                continue
            if self._opening_over():
                return
            for finding in self._example(scenario):
                self._seeded.setdefault(finding.fingerprint, finding)
            self._planned += 1
        self._plan_done = self.examples

    def _random_budget(self) -> int:
        """Examples for Hypothesis: what the opening and the plan leave of the budget (the
        plan's schedules the opening ran need none), and at least ``100 - PLAN_SHARE``
        per cent of it."""
        s = self.settings
        if self.plan is None or not self.plan.size:
            return s.max_examples
        rest = s.max_examples - len(self.seeds) - self.plan.size
        if rest > 0:  # a plan this small is cheap to read through for what the opening ran
            rest += sum(_key(self.prepare(d)) in self._opened for _, d in self.plan.scenarios())
        return max(rest, s.max_examples * (100 - PLAN_SHARE) // 100, 1)

    def _random_seconds(self) -> float | None:
        """Seconds for Hypothesis under a time budget: what the plan will not need (its
        scenarios at the pace of the examples so far), and at least ``100 - PLAN_SHARE``
        per cent of what is left, so that the plan's share holds for the time budget as
        it does for ``--max-examples``."""
        s = self.settings
        if s.time_budget is None or self.plan is None or not self.plan.size:
            return None
        left = max(s.time_budget - (self.budget.clock() - self.budget.started), 0.0)
        least = left * (100 - PLAN_SHARE) / 100
        if not self.examples:
            return least
        pace = (self.budget.clock() - self.budget.started) / self.examples
        return max(left - pace * self.plan.size, least)

    def _opening_over(self) -> bool:
        """Whether the opening or the plan must stop: a wanted finding (benchmarks), the
        example budget or the time budget spent (the search's budget, latched)."""
        return not self.budget.check()

    def _coverage(self) -> Coverage | None:
        if self.plan is None:
            return None
        return self.plan.coverage(self._planned, self._plan_done, self._random)

    def _found_wanted(self) -> bool:
        kinds = self.tuning.stop_kinds
        return any(not kinds or fp.split(":", 1)[0] in kinds for fp in self.detections)

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> SearchResult:
        if self.settings.example_db or self.tuning.example_database is not None:
            return self._run()
        with conjecture.storage_elsewhere():  # asked to write nothing: not even .hypothesis/
            return self._run()

    def _run(self) -> SearchResult:
        s, t = self.settings, self.tuning
        self.budget = budget = self._budget()
        self._started = budget.started
        database = None
        if s.example_db and (s.seed is None or t.example_db_with_seed):
            database = conjecture.open_database(s.example_db, t.example_database)
        phases = t.phases or (Phase.reuse, Phase.generate, Phase.shrink)
        shrink = t.shrink and Phase.shrink in phases
        try:
            self._run_seeds()
            before = self.examples
            exploration = conjecture.explore(
                self._test,
                budget=budget,
                seed=self.seed,
                database=database,
                key=t.database_key,
                reuse=Phase.reuse in phases,
                generate=Phase.generate in phases,
                share=self._random_budget(),
                seconds=self._random_seconds(),
            )
            self._random = self.examples - before
            self._run_plan()
            stop_reason = budget.reason or exploration.reason
            self._shrinking = True
            budget.start_shrinking()
            candidates = {**self._smallest, **exploration.interesting}
            seeded = [f for fp, f in self._seeded.items() if fp not in candidates]
            # keep the time for confirming each finding (and one replay) out of shrinking:
            # confirmations are never skipped, so they overrun only a budget too small
            # for them alone
            executions = self._execution_seconds / max(self.calls, 1)
            count = len(candidates) + len(seeded)
            budget.reserve = (t.confirm + 1) * count * executions
            minimal: dict[str, Choices] = {}
            while candidates:  # shrinking one finding may meet another: shrink it too
                for fp in sorted(candidates, key=lambda f: _sort_key(candidates[f])):
                    choices = candidates[fp]
                    if shrink:
                        choices = self._shrink_alone(fp, choices, database)
                    minimal[fp] = choices
                candidates = {f: c for f, c in self._smallest.items() if f not in minimal}
            findings: list[Finding] = []
            unconfirmed: list[Finding] = []

            def final(finding: Finding) -> None:
                finding = self._with_routes(finding)  # written with every route
                if finding.unconfirmed:  # never reproduced: not a finding, and not written
                    unconfirmed.append(finding)
                    self.on_event(Unconfirmed(finding))
                else:
                    findings.append(finding)
                    self.on_event(Final(finding))  # shrunk and confirmed: report it

            for fp, choices in minimal.items():
                found = self._final(fp, choices)
                if found is not None:
                    final(found)
            for fp, seeded_finding in self._seeded.items():
                if fp not in minimal:  # seen only in the opening or the plan: minimize it
                    final(self._final_seeded(seeded_finding))
        except _TargetStuck:
            return self._stopped_stuck()
        # rows that differ first, then findings where only responses differ
        findings.sort(key=lambda f: (f.response_only, _kind_rank(f.kind), f.endpoints))
        return self._result(findings, stop_reason, unconfirmed)

    def _shrink_alone(self, fingerprint: str, choices: Choices, database: Any) -> Choices:
        self._focus = fingerprint
        try:
            return conjecture.shrink(
                self._test,
                fingerprint,
                choices,
                budget=self.budget,
                seed=self.seed,
                database=database,
                key=self.tuning.database_key,
            )
        finally:
            self._focus = None

    def _with_routes(self, finding: Finding) -> Finding:
        """An error reached by more routes than its example shows (one statement's error
        through two views) lists them all. Other kinds are fingerprinted by the tables
        they are about, so the examples that showed one may hold bystanders: not routes."""
        routes = self._routes.get(finding.fingerprint, set())
        if not routes - set(finding.endpoints):
            return finding
        return finding.with_(extra={**finding.extra, "routes": sorted(routes)})

    def _final(self, fingerprint: str, choices: tuple[Any, ...]) -> Finding | None:
        """The minimal example's finding, replayed to check that it reproduces."""
        findings = self._findings_by_choices.get(choices)
        if findings is None:
            scenario = self._draw(conjecture.replayed(choices, self._test))
            interrupt.check()
            _, _, findings = evaluate(scenario, self.execute, self.oracle, self.dispatch)
        finding = self._match(findings, fingerprint)
        if finding is None:
            return None
        return self._final_seeded(finding)


def _key(scenario: Scenario) -> str:
    """A concrete scenario as text: two equal when they run the same (requests hold
    dicts, so a scenario is not hashable)."""
    return json.dumps(scenario.to_json(), sort_keys=True, default=str)


def _sort_key(choices: Choices) -> tuple[int, str]:
    return (len(choices), repr(choices))


def _smaller(a: Choices, b: Choices) -> bool:
    return _sort_key(a) < _sort_key(b)


def _kind_rank(kind: str) -> int:
    from fuzzer.kinds import KINDS

    return KINDS.index(kind)
