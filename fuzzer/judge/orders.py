"""Which serial orders may explain an execution, and the serial runs' bookkeeping:
memo keys, run order, what ran one after another, rejections under contention."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace

from fuzzer.model import Execution, Response, Scenario

MAX_ORDERS = 120  # 5! — beyond that only the commit order and its rotations are tried


def candidate_orders(
    execution: Execution, committed: Sequence[int], strict: bool = False
) -> list[tuple[int, ...]]:
    """The commit order seen in the trace first, then every other permutation (or,
    beyond five requests, the commit order's rotations); with ``strict`` only those
    that respect real time."""
    first = tuple(i for i in execution.commit_order if i in committed)
    first += tuple(i for i in committed if i not in first)
    orders = [first]
    if len(committed) <= 5:
        orders += [p for p in itertools.permutations(committed) if p != first]
    else:
        orders += [first[k:] + first[:k] for k in range(1, len(first))]
    if strict:
        orders = [o for o in orders if _respects_real_time(o, execution)]
    return orders[:MAX_ORDERS]


def turned_away(scenario: Scenario, execution: Execution, request: int) -> bool:
    """Whether a request that is not a read answered 4xx, committed no write, and ran
    while another request was in flight (their steps overlap in the trace)."""
    response = execution.responses[request]
    if response is None or not 400 <= response.status < 500:
        return False
    if scenario.requests[request].method.upper() in ("GET", "HEAD", "OPTIONS"):
        return False
    spans: dict[int, list[int]] = {}
    wrote = False
    for position, step in enumerate(execution.trace):
        spans.setdefault(step.request, [position, position])[1] = position
        if step.request == request and step.is_write:
            wrote = True
        if step.request == request and step.kind == "commit" and wrote and not step.error:
            return False  # it committed a write
    mine = spans.get(request)
    return mine is not None and any(
        other != request and start <= mine[1] and mine[0] <= end
        for other, (start, end) in spans.items()
    )


def stray_writes(execution: Execution) -> str:
    """Why an execution cannot be judged because a write no request made ran while it
    did (the app's background thread), naming the write; "" when none did."""
    if not execution.stray_writes:
        return ""
    first = execution.stray_writes[0]
    return (
        f"a write no request made ran during it: {first}; the app writes from a thread of "
        f"its own (after the response?), which the fuzzer cannot attribute or order"
    )


def serial_key(scenario: Scenario, order: Sequence[int]) -> str:
    """What a serial run depends on: the init requests, the requests in the order they
    run, the observers."""
    return json.dumps(
        [
            [r.to_json() for r in scenario.init],
            [scenario.requests[i].to_json() for i in order],
            [r.to_json() for r in scenario.observers],
        ],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )


def in_run_order(execution: Execution, order: Sequence[int]) -> Execution:
    """The execution with request k being the k-th to run."""
    position = {index: k for k, index in enumerate(order)}
    return replace(
        execution,
        responses=tuple(execution.responses[i] for i in order),
        trace=tuple(replace(s, request=position[s.request]) for s in execution.trace),
        order=tuple(range(len(order))),
    )


def placed(canonical: Execution, order: Sequence[int], requests: int) -> Execution:
    """A run-order execution placed back at a scenario's request indices."""
    responses: list[Response | None] = [None] * requests
    for k, index in enumerate(order):
        responses[index] = canonical.responses[k]
    return replace(
        canonical,
        responses=tuple(responses),
        trace=tuple(replace(s, request=order[s.request]) for s in canonical.trace),
        order=tuple(order),
    )


def ran_one_after_another(execution: Execution) -> tuple[int, ...] | None:
    """The order of the requests if each ran start to end without another in between."""
    if execution.mode == "free":
        return None  # no trace order to trust: the requests really ran in parallel
    order: list[int] = []
    for step in execution.trace:
        if order and step.request == order[-1]:
            continue
        if step.request in order:
            return None
        order.append(step.request)
    missing = [i for i, r in enumerate(execution.responses) if r is not None and i not in order]
    return tuple(order + missing)


def _respects_real_time(order: Sequence[int], execution: Execution) -> bool:
    """Strict mode: a request that ended before another started precedes it."""
    first_step: dict[int, int] = {}
    end_step: dict[int, int] = {}
    for position, step in enumerate(execution.trace):
        if step.kind != "start":
            first_step.setdefault(step.request, position)
        if step.kind == "end":
            end_step[step.request] = position
    rank = {r: k for k, r in enumerate(order)}
    for a in order:
        for b in order:
            if a != b and end_step.get(a, 1 << 30) < first_step.get(b, -1) and rank[a] > rank[b]:
                return False
    return True
