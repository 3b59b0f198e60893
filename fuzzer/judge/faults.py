"""Judging an execution the fuzzer injected errors into (``--faults``, DESIGN.md §11).

A request whose statement the database made fail (a deadlock, a serialization
failure, a lock wait timeout, a lost connection) may do one of two correct things:

* retry and succeed once: the execution then matches a serial order of all the
  requests, as if the error never happened;
* give up cleanly: answer an error (any 4xx or 5xx) and leave no effect, the others
  serializable without it.

So a faulted request that answered an error is aborted, like a 409, and the rest is
judged against serial orders as usual. No order matching is a violation; the verdict
records which requests were faulted, which of them gave up, and which of those that
succeeded show their effect twice (the rows equal a serial run where the request runs
twice in a row, or a row no serial order makes repeats one it makes but for its
generated key: a retry that repeated a committed side effect). The findings
(fuzzer/findings/faults.py) name the kind from that. Serial runs never inject: they
are the references.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Protocol

from fuzzer.judge.compare import compare
from fuzzer.judge.masks import plain
from fuzzer.judge.normalise import Normalizer
from fuzzer.judge.orders import candidate_orders
from fuzzer.judge.verdict import Difference, Outcome, Verdict
from fuzzer.model import Execution, Gene, Response, Scenario


class Oracle(Protocol):
    """What this module uses of the oracle (fuzzer/judge/oracle.py), which calls it."""

    normalizer: Normalizer
    conflict_statuses: frozenset[int]
    strict: bool

    def outcome(self, scenario: Scenario, execution: Execution) -> Outcome: ...

    def reference(
        self, scenario: Scenario, order: tuple[int, ...], fresh: bool = False
    ) -> tuple[Execution, Outcome]: ...


@dataclass(frozen=True)
class FaultVerdict(Verdict):
    """A verdict on an execution with injected errors."""

    faulted: tuple[int, ...] = ()  # requests an injected error hit
    gave_up: tuple[int, ...] = ()  # of them, those that answered an error (aborted)
    doubled: tuple[int, ...] = ()  # of the others, those whose effect the rows show twice
    injected: tuple[tuple[int, str], ...] = ()  # (request, the error's code), first each


def injected(execution: Execution) -> dict[int, str]:
    """Request -> the code of the first error injected into it ("1213")."""
    hit: dict[int, str] = {}
    for step in execution.trace:
        if step.injected:
            hit.setdefault(step.request, step.injected)
    return hit


def judge(oracle: Oracle, scenario: Scenario, execution: Execution) -> Verdict | None:
    """The verdict on an execution an injected error hit; None when none did (the plain
    oracle judges it)."""
    hit = injected(execution)
    if not hit:
        return None
    responses = execution.responses
    gave_up = tuple(
        sorted(i for i in hit if responses[i] is not None and responses[i].status >= 400)  # type: ignore[union-attr]
    )
    aborted = tuple(
        sorted(
            {
                i
                for i, r in enumerate(responses)
                if r is not None and r.status in oracle.conflict_statuses
            }
            | set(gave_up)
        )
    )
    committed = [i for i in range(len(scenario.requests)) if i not in aborted]
    actual = oracle.outcome(scenario, execution)
    # an aborted request's answer is judged apart (findings/faults.py); leaving it out
    # also covers the empty order, which the comparison reads as "every request"
    actual = replace(
        actual,
        responses=tuple(None if i in aborted else r for i, r in enumerate(actual.responses)),
    )
    failures: dict[int, Response] = {}
    tried: list[tuple[tuple[int, ...], Execution, list[Difference]]] = []
    common = {
        "faulted": tuple(sorted(hit)),
        "gave_up": gave_up,
        "injected": tuple(sorted(hit.items())),
    }
    for order in candidate_orders(execution, committed, oracle.strict):
        reference, expected = oracle.reference(scenario, order)
        for i in order:
            response = reference.responses[i]
            if response is not None and response.status >= 500:
                failures.setdefault(i, response)
        differences = compare(oracle.normalizer, actual, expected, order)
        if not differences:
            return FaultVerdict(
                "serializable",
                order,
                aborted,
                reference=reference,
                serial_failures=tuple(sorted(failures.items())),
                orders_tried=len(tried) + 1,
                **common,  # type: ignore[arg-type]
            )
        tried.append((order, reference, differences))
    order, reference, differences = min(tried, key=lambda t: len(t[2]))
    rows_differ = any(d.where in _ROWS for d in differences)
    repeated = _repeated_rows(oracle, actual, oracle.outcome(scenario, reference))
    doubled = tuple(
        i
        for i in sorted(hit)
        if rows_differ
        and i not in aborted
        and (repeated or _applied_twice(oracle, scenario, execution, order, i))
    )
    return FaultVerdict(
        "violation",
        order,
        aborted,
        tuple(differences),
        reference,
        tuple(sorted(failures.items())),
        orders_tried=len(tried),
        consulted=tuple(t[1] for t in tried),
        doubled=doubled,
        **common,  # type: ignore[arg-type]
    )


def _applied_twice(
    oracle: Oracle,
    scenario: Scenario,
    execution: Execution,
    order: tuple[int, ...],
    request: int,
) -> bool:
    """Whether the final rows are those of the serial ``order`` with ``request`` run twice
    in a row (its retry repeated what its first attempt had committed)."""
    twice = replace(
        scenario,
        requests=(*scenario.requests, scenario.requests[request]),
        schedule=(*scenario.schedule, Gene()),
    )
    extra = len(scenario.requests)
    at = order.index(request) + 1 if request in order else len(order)
    doubled_order = (*order[:at], extra, *order[at:])
    _, expected = oracle.reference(twice, doubled_order)
    longer = replace(execution, responses=(*execution.responses, None))
    actual = oracle.outcome(twice, longer)
    differences = compare(oracle.normalizer, actual, expected, doubled_order)
    return not any(d.where in _ROWS for d in differences)


def _repeated_rows(oracle: Oracle, actual: Outcome, expected: Outcome) -> bool:
    """Whether the final rows hold a row more often than the serial order makes it, but
    for its generated key: a side effect (a notice, a charge) written a second time."""
    for name, rows in actual.tables.items():
        info = oracle.normalizer.tables.get(name)
        if info is None or not info.generated:
            continue
        position = info.columns.index(info.generated)

        def content(row: tuple[object, ...], skip: int = position) -> str:
            return repr([plain(v) for k, v in enumerate(row) if k != skip])

        have = Counter(content(row) for row in rows)
        want = Counter(content(row) for row in expected.tables.get(name, ()))
        if any(0 < want[row] < n for row, n in have.items()):
            return True
    return False


_ROWS = ("cell", "extra-row", "missing-row")
