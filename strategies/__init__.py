"""Hypothesis strategies for the fuzzer: requests from endpoints, schedules, scenarios.

Every strategy here shrinks toward the simplest case: the first endpoint, the
simplest arguments, fewer requests, no yields (the requests then run one after
another), lower priorities (the requests then run in their listed order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from fuzzer.errors import InvalidTarget
from fuzzer.model import Fault, Gene, Request, Scenario
from fuzzer.target.contract import Endpoint, Target

__all__ = ["faults", "genes", "requests_from", "scenarios"]

#: A request's yield points are drawn among its first steps: most handlers run fewer
#: than this many statements, and a yield past a request's last step never happens.
MAX_STEP = 12
MAX_YIELDS = 3
MAX_PRIORITY = 3
#: Conflict-guided yields pick among a request's conflicting steps; most races need a
#: switch at one of the first few.
MAX_CONFLICT_INDEX = 5
MAX_PCT_PRIORITY = 1000
#: About one concurrent request in this many repeats the one before it (same endpoint,
#: arguments and identity), as a double click or a retried submit does: those races
#: need two equal requests, which independent draws rarely make.
DOUBLE_SUBMIT_ODDS = 4
#: ``--faults``: at most this many injected errors per request, each at one of its first
#: statements (conflicting ones first, in the ``conflict`` mode).
MAX_FAULTS = 2
MAX_FAULT_INDEX = 8


def _strategy(value: Any) -> SearchStrategy[Any]:
    """A strategy for a value that is a strategy, a plain value, or a dict or list with
    strategies inside (``{"name": st.sampled_from(...), "password": "secret"}``)."""
    if isinstance(value, SearchStrategy):
        return value
    if not _holds_strategies(value):
        return st.just(value)
    if isinstance(value, Mapping):
        return st.fixed_dictionaries({k: _strategy(v) for k, v in value.items()})
    return st.tuples(*(_strategy(v) for v in value)).map(list)


def _holds_strategies(value: Any) -> bool:
    if isinstance(value, SearchStrategy):
        return True
    if isinstance(value, Mapping):
        return any(_holds_strategies(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_strategies(v) for v in value)
    return False


def requests_from(endpoint: Endpoint, identities: Sequence[str] = ()) -> SearchStrategy[Request]:
    """Requests drawn from one endpoint: each of its path, json, form, params and headers
    is a value or a strategy. Shrinks as the endpoint's own strategies shrink, and toward
    the first identity it may act as."""
    allowed = list(endpoint.identities) if endpoint.identities else list(identities)
    return st.builds(
        _request,
        st.just(endpoint),
        _strategy(endpoint.path),
        _strategy(endpoint.json),
        _strategy(endpoint.params),
        _strategy(endpoint.headers),
        st.sampled_from(allowed) if allowed else st.none(),
        _strategy(endpoint.form),
    )


def _request(
    endpoint: Endpoint,
    path: Any,
    body: Any,
    params: Any,
    headers: Any,
    identity: str | None,
    form: Any = None,
) -> Request:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidTarget(
            f"endpoint {endpoint.name!r} drew path {path!r}; paths must be strings starting "
            f"with '/' (the fuzzer only talks to its own server)"
        )
    _check_json(endpoint, "json", body)
    for name, value in (("form", form), ("params", params), ("headers", headers)):
        if value is not None and not isinstance(value, Mapping):
            raise InvalidTarget(f"endpoint {endpoint.name!r} drew {name}={value!r}, not a mapping")
    if form is not None:
        _check_json(endpoint, "form", dict(form))
    return Request(
        endpoint=endpoint.name,
        method=endpoint.method,
        path=path,
        json=body,
        params=dict(params) if params is not None else None,
        headers={str(k): str(v) for k, v in headers.items()} if headers is not None else None,
        identity=identity,
        form=dict(form) if form is not None else None,
    )


def _check_json(endpoint: Endpoint, name: str, value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise InvalidTarget(
            f"endpoint {endpoint.name!r} drew {name}={value!r}, which is not JSON; draw dicts, "
            f"lists, strings, numbers, booleans and None"
        ) from None


def faults(kinds: Sequence[str], mode: str = "conflict") -> SearchStrategy[tuple[Fault, ...]]:
    """Injected errors for one request (``--faults``): up to ``MAX_FAULTS`` of the given
    kinds, each at a statement. In the ``conflict`` mode the number indexes the
    request's statements, conflicting ones first (fuzzer/search/plan/schedules.py); otherwise
    it is a step number. Shrinks toward no fault, then one fault at the earliest
    statement, of the first kind."""
    if not kinds:
        return st.just(())
    low = 0 if mode == "conflict" else 1
    one = st.builds(Fault, st.integers(low, MAX_FAULT_INDEX + low), st.sampled_from(list(kinds)))
    return st.lists(one, max_size=MAX_FAULTS).map(tuple)


def genes(
    mode: str = "conflict",
    *,
    max_yields: int = MAX_YIELDS,
    max_priority: int = MAX_PRIORITY,
    fault_kinds: Sequence[str] = (),
) -> SearchStrategy[Gene]:
    """One request's scheduling genes: a priority and up to ``max_yields`` yield numbers.
    How the numbers become steps is the schedule mode (fuzzer/search/plan/schedules.py):

    * ``conflict``: numbers index the request's conflicting steps, 0 being the first;
      ``MAX_CONFLICT_INDEX`` means "no yield". Shrinks toward one yield at the first
      conflict; the engine then drops every yield the finding does not need.
    * ``random`` and ``pct``: numbers are step numbers, 0 meaning none. Shrinks toward
      no yields, i.e. the requests run serially in their listed order.

    Shrinks toward priority 0 (the listed order). With ``fault_kinds`` (``--faults``), a
    gene also carries injected errors (``faults``); without, none is drawn."""
    priority = st.integers(0, MAX_PCT_PRIORITY if mode == "pct" else max_priority)
    injected = faults(fault_kinds, mode)
    if mode == "conflict":
        numbers = st.lists(st.integers(0, MAX_CONFLICT_INDEX), min_size=1, max_size=max_yields)
        return st.builds(
            Gene,
            priority=priority,
            yields=numbers.map(lambda ns: tuple(sorted({n for n in ns if n < MAX_CONFLICT_INDEX}))),
            faults=injected,
        )
    numbers = st.lists(st.integers(0, MAX_STEP), max_size=1 if mode == "pct" else max_yields)
    return st.builds(
        Gene,
        priority=priority,
        yields=numbers.map(lambda ns: tuple(sorted({n for n in ns if n > 0}))),
        faults=injected,
    )


def _any_request(
    endpoints: Sequence[Endpoint], identities: Sequence[str], prefer: Sequence[str] = ()
) -> SearchStrategy[Request]:
    """A request of any endpoint; with ``prefer`` (names), those endpoints are drawn
    more often (and shrunk toward)."""
    per_endpoint = [requests_from(e, identities) for e in endpoints]  # built once
    everything = st.integers(0, len(endpoints) - 1)
    preferred = [i for name in prefer for i, e in enumerate(endpoints) if e.name == name]
    index = everything
    if preferred and len(preferred) < len(endpoints):
        index = st.one_of(st.sampled_from(preferred), everything)
    return index.flatmap(per_endpoint.__getitem__)


def scenarios(
    target: Target,
    *,
    schedule: SearchStrategy[Gene] | str = "conflict",
    prefer: Sequence[str] = (),
    fault_kinds: Sequence[str] = (),
) -> SearchStrategy[Scenario]:
    """Scenarios for a target: concurrent requests, each with its genes, then serial init
    requests that run before them. ``prefer`` names endpoints to draw more often (the
    writers the survey found: they are the ones that race). About one request in
    ``DOUBLE_SUBMIT_ODDS`` repeats the one before it (a double submit). Shrinks toward
    fewer requests (each deletion takes its genes with it), simpler requests, fewer
    yields, no repeats, and no init requests; with ``fault_kinds``, toward fewer
    injected errors, at earlier statements."""
    identities = [i.name for i in target.identities]
    request = _any_request(target.endpoints, identities, prefer)
    gene = genes(schedule, fault_kinds=fault_kinds) if isinstance(schedule, str) else schedule
    again = st.sampled_from([False] * (DOUBLE_SUBMIT_ODDS - 1) + [True])
    pairs = st.lists(
        st.tuples(request, gene, again),
        min_size=target.min_requests,
        max_size=target.max_requests,
    )
    init = st.lists(request, max_size=target.max_init_requests)
    observers = st.tuples(*(requests_from(e, identities) for e in target.observers))
    return st.builds(_scenario, pairs, init, observers)


def _scenario(
    pairs: Sequence[tuple[Request, Gene, bool]],
    init: Sequence[Request],
    observers: Sequence[Request],
) -> Scenario:
    requests: list[Request] = []
    for request, _, again in pairs:
        requests.append(requests[-1] if again and requests else request)
    return Scenario(
        requests=tuple(requests),
        schedule=tuple(g for _, g, _ in pairs),
        init=tuple(init),
        observers=tuple(observers),
    )
