"""Is an execution explained by some serial order of its requests? (DESIGN.md §5)

References are real serial runs of the same requests on the same database, each
from the initial snapshot: the commit order seen in the trace first (it usually
matches), then the other orders. They are memoized by the request list, so the many
schedules tried for the same requests cost one set of serial runs.

Comparison is on the *outcome*: every committed request's response, every observer
response, and the final rows of every table, after normalization (``normalise``):

* a request answered with a conflict status (409, 423 by default) is aborted: it
  must have left no effect, and the others must be serializable without it;
* keys the database generated for inserted rows are renamed to canonical names;
* columns and response fields the target names are ignored, what varies between
  serial runs of one order is masked (``masks``).

If the same serial order gives two different outcomes, the target is
nondeterministic and the verdict is ``unknown``, never a finding.

The judge's parts: ``verdict`` (what it says), ``normalise`` (the outcome compared),
``orders`` (which serial orders, and their bookkeeping), ``compare`` (the
differences), this module (the search over orders, reruns, masks learned).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fuzzer.judge import masks as masking
from fuzzer.judge.compare import compare, difference_name
from fuzzer.judge.normalise import Normalizer
from fuzzer.judge.orders import (
    candidate_orders,
    in_run_order,
    placed,
    ran_one_after_another,
    serial_key,
    stray_writes,
    turned_away,
)
from fuzzer.judge.verdict import (
    Difference,
    OracleStats,
    Outcome,
    Verdict,
    at,
    order_text,
)
from fuzzer.model import Execution, Response, Scenario

__all__ = [
    "Difference",
    "Normalizer",
    "Oracle",
    "OracleStats",
    "Outcome",
    "Verdict",
    "ran_one_after_another",
    "serial_key",
]

MEMO_SIZE = 1024  # serial runs kept (see Oracle._memo)
RERUNS = 3  # fresh serial runs of the closest order before an example is a violation

Tried = tuple[tuple[int, ...], Execution, list[Difference]]  # order, reference, differences


@dataclass
class _Attempt:
    """One execution being judged: what it looks like, the orders tried so far."""

    scenario: Scenario
    execution: Execution
    actual: Outcome
    aborted: tuple[int, ...]
    tried: list[Tried] = field(default_factory=list)
    failures: dict[int, Response] = field(default_factory=dict)  # 5xx in serial runs

    def left_out(self, order: Sequence[int]) -> tuple[int, ...]:
        """The requests a serial order leaves out: those it takes as aborted."""
        return tuple(i for i in range(len(self.scenario.requests)) if i not in order)


class Oracle:
    """Judges executions against serial references of the same requests."""

    def __init__(
        self,
        normalizer: Normalizer,
        run_serial: Callable[[Scenario, tuple[int, ...]], Execution],
        *,
        conflict_statuses: frozenset[int] = frozenset({409, 423}),
        strict: bool = False,
    ) -> None:
        self.normalizer = normalizer
        self.masks = normalizer.masks  # learned for the run, refined as examples run
        self._run_serial = run_serial
        self.conflict_statuses = conflict_statuses
        self.strict = strict
        self.stats = OracleStats()
        # serial runs, in run order; least recently used dropped first beyond MEMO_SIZE, so
        # a soak of hours stays flat in memory (Hypothesis tries one request list's
        # schedules close together)
        self._memo: OrderedDict[str, Execution] = OrderedDict()
        # serial keys whose reruns showed nothing more to mask (bounded like the memo)
        self._stable: OrderedDict[str, None] = OrderedDict()

    def forget(self) -> None:
        """Drop the memoized serial runs (benchmarks: each seed pays its own)."""
        self._memo.clear()
        self._stable.clear()

    def outcome(self, scenario: Scenario, execution: Execution) -> Outcome:
        return self.normalizer.outcome(
            execution,
            [r.endpoint for r in scenario.requests],
            [r.endpoint for r in scenario.observers],
            scope=_scope(scenario),
        )

    def reference(
        self, scenario: Scenario, order: tuple[int, ...], fresh: bool = False
    ) -> tuple[Execution, Outcome]:
        """The serial run of ``order``. Memoized by the requests *in the order they run*,
        so the same sequence drawn in another list order, or two identical requests in
        either order, cost one run."""
        key = serial_key(scenario, order)
        cached = None if fresh else self._memo.get(key)
        if cached is not None:
            self.stats.memo_hits += 1
            self._memo.move_to_end(key)
            execution = placed(cached, order, len(scenario.requests))
            return execution, self.outcome(scenario, execution)
        self.stats.references += 1
        started = time.perf_counter()
        execution = self._run_serial(scenario, order)
        self.stats.seconds += time.perf_counter() - started
        if not fresh:
            self._memo[key] = in_run_order(execution, order)
            if len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return execution, self.outcome(scenario, execution)

    def judge(self, scenario: Scenario, execution: Execution) -> Verdict:
        unjudged = _unjudgeable(execution)
        if unjudged is not None:
            return unjudged
        from fuzzer.judge import faults  # injected errors (--faults) are judged there

        faulted = faults.judge(self, scenario, execution)
        if faulted is not None:
            return faulted
        aborted = tuple(
            i
            for i, r in enumerate(execution.responses)
            if r is not None and r.status in self.conflict_statuses
        )
        order = ran_one_after_another(execution)
        if order is not None:
            # no interleaving at all: this execution *is* the serial run of that order
            alone = tuple(
                (i, r)
                for i, r in enumerate(execution.responses)
                if r is not None and r.status >= 500
            )
            return Verdict(
                "serializable", order, aborted, reference=execution, serial_failures=alone
            )
        attempt = _Attempt(scenario, execution, self.outcome(scenario, execution), aborted)
        verdict = None
        for left_out in _abort_choices(aborted):
            committed = [i for i in range(len(scenario.requests)) if i not in left_out]
            verdict = self._explained(attempt, committed)
            if verdict is not None:
                break
        committed = [i for i in range(len(scenario.requests)) if i not in aborted]
        if verdict is None:
            verdict = self._rejected_under_contention(attempt, committed)
        if verdict is None:
            # no serial order explains it: unless the app varies on its own where this
            # execution differs, a violation
            verdict = self._after_reruns(attempt)
        return verdict if verdict is not None else self._violation(attempt)

    def _explained(self, attempt: _Attempt, committed: Sequence[int]) -> Verdict | None:
        """The verdict of the first serial order of ``committed`` that explains the
        execution (or of one whose serial run wrote from a thread of its own), or None;
        the orders tried are left in ``attempt``."""
        scenario = attempt.scenario
        for order in candidate_orders(attempt.execution, committed, self.strict):
            reference, _ = self.reference(scenario, order)
            stray = stray_writes(reference)
            if stray:
                self._memo.pop(serial_key(scenario, order), None)
                return Verdict("unknown", order, attempt.aborted, reason=stray, judged="not")
            for i in order:
                response = reference.responses[i]
                if response is not None and response.status >= 500:
                    attempt.failures.setdefault(i, response)
            attempt.tried.append((order, reference, []))
            verdict = self._matches(attempt, last=True)
            if verdict is not None:
                return verdict
        return None

    def _after_reruns(self, attempt: _Attempt) -> Verdict | None:
        """Reruns the closest order (once per request list) and learns what varies
        between its serial runs: the verdict if that leaves the execution explained, or
        unjudged (what differs cannot be masked); None otherwise."""
        scenario = attempt.scenario
        order, reference, _ = min(attempt.tried, key=lambda t: len(t[2]))
        key = serial_key(scenario, order)
        if key in self._stable:
            return None
        for _ in range(RERUNS):
            again, _ = self.reference(scenario, order, fresh=True)
            learned, unmaskable = self._learn(scenario, reference, again)
            if unmaskable:
                return Verdict(
                    "unknown",
                    order,
                    attempt.left_out(order),
                    reason=(
                        f"serial runs of one order differ where nothing can be masked: "
                        f"{unmaskable[0]}; the serial order {order_text(order)} ran twice: "
                        + ", ".join(unmaskable)
                    ),
                    reference=reference,
                    orders_tried=len(attempt.tried),
                    judged="not",
                )
            if learned:  # judge again, modulo what was just learned
                attempt.actual = self.outcome(scenario, attempt.execution)
                verdict = self._matches(attempt)
                if verdict is not None:
                    return verdict
        self._stable[key] = None
        if len(self._stable) > MEMO_SIZE:
            self._stable.popitem(last=False)
        return None

    def _violation(self, attempt: _Attempt) -> Verdict:
        """The violation verdict, against the closest order tried."""
        scenario = attempt.scenario
        with masking.recording() as used:
            actual = self.outcome(scenario, attempt.execution)
            tried = [
                (o, r, self._compare(actual, self.outcome(scenario, r), o))
                for o, r, _ in attempt.tried
            ]
        order, reference, differences = min(tried, key=lambda t: len(t[2]))
        masked = tuple(sorted(set(used)))
        return Verdict(
            "violation",
            order,
            attempt.left_out(order),
            tuple(differences),
            reference,
            tuple(sorted(attempt.failures.items())),
            orders_tried=len(tried),
            consulted=tuple(t[1] for t in tried),
            judged="partly" if masked else "fully",
            masked=masked,
        )

    def _compare(
        self, actual: Outcome, expected: Outcome, order: Sequence[int]
    ) -> list[Difference]:
        return compare(self.normalizer, actual, expected, order)

    def _rejected_under_contention(
        self, attempt: _Attempt, committed: Sequence[int]
    ) -> Verdict | None:
        """Aborts by any name: requests that answered 4xx while another request ran and
        committed nothing, when the rows and every other answer match a serial order
        without them, were turned away under contention (403 "another submission is
        being processed"), like a 409. A serializable verdict whose reason says so, or
        None. A read (GET, HEAD) answering 4xx is never one: what it answered is what it
        read."""
        scenario, execution = attempt.scenario, attempt.execution
        turned = [i for i in committed if turned_away(scenario, execution, i)]
        if not turned:
            return None
        rest = [i for i in committed if i not in turned]
        for order in candidate_orders(execution, rest, self.strict):
            reference, _ = self.reference(scenario, order)
            if execution.stray_writes or reference.stray_writes:
                return None
            if self._compare(attempt.actual, self.outcome(scenario, reference), order):
                continue
            what = "; ".join(
                f"{scenario.requests[i].endpoint} answered {execution.responses[i].status}"  # type: ignore[union-attr]
                for i in turned
            )
            return Verdict(
                "serializable",
                order,
                tuple(sorted({*attempt.aborted, *turned})),
                reference=reference,
                reason=(
                    f"a rejection under contention ({what}, committing nothing while another "
                    f"request ran): treated as aborted, the rest matches a serial order "
                    f"without it"
                ),
            )
        return None

    def _matches(self, attempt: _Attempt, last: bool = False) -> Verdict | None:
        """The serializable verdict if one of the orders tried (only the last one with
        ``last``) explains the execution, modulo the masks learned so far; records each
        order's differences in ``attempt.tried`` otherwise."""
        tried = attempt.tried
        for n, (order, reference, _) in enumerate(tried):
            if last and n != len(tried) - 1:
                continue
            with masking.recording() as used:
                expected = self.outcome(attempt.scenario, reference)
                differences = self._compare(attempt.actual, expected, order)
            tried[n] = (order, reference, differences)
            if not differences:
                masked = tuple(sorted(set(used)))
                return Verdict(
                    "serializable",
                    order,
                    attempt.left_out(order),
                    reference=reference,
                    serial_failures=tuple(sorted(attempt.failures.items())),
                    orders_tried=len(tried),
                    judged="partly" if masked else "fully",
                    masked=masked,
                )
        return None

    def _learn(
        self, scenario: Scenario, first: Execution, again: Execution
    ) -> tuple[bool, list[str]]:
        """Mask what differs between two serial runs of one order. Returns whether
        anything new was masked, and what differs that cannot be masked."""
        learned: list[str] = []
        bad: list[str] = []
        normalizer = self.normalizer
        for _ in range(len(normalizer.tables) * 4 + 1):  # columns, then the rows again
            a, b = normalizer.agree(self.outcome(scenario, first), self.outcome(scenario, again))
            if dict(a.tables) == dict(b.tables):
                break
            bad = []
            known = set(normalizer.tables)
            if not masking.learn_tables(
                self.masks,
                {k: v for k, v in a.tables.items() if k in known},
                {k: v for k, v in b.tables.items() if k in known},
                normalizer.columns,
                lambda table, column: column != normalizer.tables[table].generated,
                learned,
                bad,
                normalizer.key_positions,
                _scope(scenario),
            ):
                break
        if bad:
            return bool(learned), bad
        labels = [r.endpoint for r in scenario.requests]
        for names, xs, ys in (
            (labels, a.responses, b.responses),
            ([r.endpoint for r in scenario.observers], a.observers, b.observers),
        ):
            for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
                if x == y or x is None or y is None:
                    continue
                endpoint = at(names, i)
                if x[0] != y[0]:
                    bad.append(f"{endpoint} answered {x[0]} once and {y[0]} once")
                    continue
                redirect = isinstance(x[1], dict) and 300 <= x[0] < 400 and "path" in x[1]
                root = "Location" if redirect else "body"
                masking.learn_body(self.masks, endpoint, x[1], y[1], root, learned, bad)
        if not bad:
            a, b = normalizer.agree(self.outcome(scenario, first), self.outcome(scenario, again))
            if a != b:  # what is left: name it
                bad = [difference_name(d, scenario) for d in compare(normalizer, a, b, None)]
                bad = bad or ["their outcomes differ"]
        return bool(learned), bad


def _unjudgeable(execution: Execution) -> Verdict | None:
    """An execution that cannot be judged at all: it hung, a request got no response, a
    write no request made ran during it."""
    if execution.hang is not None:
        return Verdict("unknown", reason="the execution hung", judged="not")
    if any(r is not None and r.status == 0 for r in execution.responses):
        return Verdict("unknown", reason="a request got no response", judged="not")
    stray = stray_writes(execution)
    if stray:
        return Verdict("unknown", reason=stray, judged="not")
    return None


def _abort_choices(conflicts: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Which of the requests answered with a conflict status to take as aborted, in the
    order they are tried: all of them (the fewest serial runs), then fewer and fewer,
    down to none, so that a request answering 409 serially too is judged like any other
    answer (an app may write an audit row before it refuses). Beyond three such
    requests, only all and none."""
    if len(conflicts) > 3:
        return [conflicts, ()]
    return [
        chosen
        for size in range(len(conflicts), -1, -1)
        for chosen in itertools.combinations(conflicts, size)
    ]


def _scope(scenario: Scenario) -> frozenset[str]:
    """The endpoints of every request an example sends (init, concurrent, observers):
    the cells that varied in serial runs of such requests are masked (``Masks.cell``)."""
    return frozenset(r.endpoint for r in (*scenario.init, *scenario.requests, *scenario.observers))
