"""Before the search: send each endpoint's requests alone, and learn what it touches.

The survey tells the search which endpoints conflict (one writes a table the other
reads or writes), so a scenario's later requests can prefer partners of its first
one; and it catches an endpoint that answers 404 or 405 to its simplest request,
which is almost always a wrong path or method in the target spec.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, find, settings

from .errors import InvalidTarget
from .model import Execution, Gene, Request, Response, Scenario, Step
from .schedules import conflict_points, surveyed_trace
from .sql import access
from .target import Endpoint, Target

Run = Callable[[Scenario], Execution]


@dataclass(frozen=True)
class EndpointSurvey:
    endpoint: str
    request: Request  # the simplest request, and what it answered
    status: int
    reads: frozenset[str]
    writes: frozenset[str]
    statements: int
    trace: tuple[Step, ...] = ()  # the steps of the request that wrote the most
    writer: Request | None = None  # that request
    variant: Request | None = None  # another request of it that wrote (other arguments)
    response: Response | None = None  # what the simplest request answered


@dataclass(frozen=True)
class Survey:
    endpoints: tuple[EndpointSurvey, ...]

    def partners(self) -> dict[str, tuple[str, ...]]:
        """For each endpoint, the endpoints it conflicts with, strongest first: writers of
        the tables it writes, then of the tables it reads, then readers of what it writes."""
        result: dict[str, tuple[str, ...]] = {}
        for a in self.endpoints:
            ranked: list[tuple[int, str]] = []
            for b in self.endpoints:
                if a.writes & b.writes:
                    ranked.append((0, b.endpoint))
                elif a.reads & b.writes:
                    ranked.append((1, b.endpoint))
                elif a.writes & b.reads:
                    ranked.append((2, b.endpoint))
            result[a.endpoint] = tuple(name for _, name in sorted(ranked))
        return result

    def writers(self) -> tuple[str, ...]:
        """Endpoints that write, most conflicting first: they are the ones that race
        (with each other, and with themselves on a double submit)."""
        partners = self.partners()
        writing = [e.endpoint for e in self.endpoints if e.writes]
        return tuple(sorted(writing, key=lambda name: -len(partners[name])))

    def trace_of(self, endpoint: str) -> tuple[Step, ...]:
        """The steps of the endpoint's simplest request, run alone."""
        for e in self.endpoints:
            if e.endpoint == endpoint:
                return e.trace
        return ()

    def unreachable(self) -> list[EndpointSurvey]:
        return [e for e in self.endpoints if e.status in (404, 405)]


def simplest_request(endpoint: Endpoint, identities: Sequence[str] = ()) -> Request:
    """The request Hypothesis considers simplest for an endpoint."""
    from strategies import requests_from

    return find(
        requests_from(endpoint, identities),
        lambda _: True,
        settings=settings(
            database=None,
            max_examples=1,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )


def sample_requests(endpoint: Endpoint, identities: Sequence[str], n: int) -> list[Request]:
    """Up to ``n`` distinct requests of an endpoint (deterministic)."""
    from hypothesis.errors import NoSuchExample

    from strategies import requests_from

    seen: dict[str, Request] = {}

    def collect(request: Request) -> bool:
        seen.setdefault(request.describe(), request)
        return len(seen) >= n

    with contextlib.suppress(NoSuchExample):
        find(
            requests_from(endpoint, identities),
            collect,
            settings=settings(
                database=None,
                max_examples=n * 10,
                phases=[Phase.generate],
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            ),
        )
    return list(seen.values())


def check_reachable(target: Target, result: Survey, run: Run, app: object = None) -> None:
    """Raise InvalidTarget for an endpoint that answers 404/405 to every request tried and
    whose path and method no rule of the app's URL map routes (a 404 from the view
    itself, for a row it did not find, is not a wrong spec)."""
    identities = [i.name for i in target.identities]
    for surveyed in result.unreachable():
        if _routed(app, surveyed.request):
            continue  # the view itself answered 404 (a row it did not find): reachable
        endpoint = next(e for e in target.endpoints if e.name == surveyed.endpoint)
        tried = [surveyed.request]
        for request in sample_requests(endpoint, identities, 6):
            if request.describe() == surveyed.request.describe():
                continue
            if _routed(app, request):
                break
            response = run(Scenario(requests=(request,), schedule=(Gene(),))).responses[0]
            tried.append(request)
            if response is not None and response.status not in (404, 405):
                break
        else:
            routes = _routes(app)
            raise InvalidTarget(
                f"endpoint {endpoint.name!r} answered {surveyed.status} to all {len(tried)} "
                f"requests tried (e.g. {tried[0].method} {tried[0].path}); check its method "
                f"and path" + (f" against the app's routes: {routes}" if routes else "")
            )


def _routed(app: object, request: Request) -> bool:
    """Whether the app's own URL map routes this method and path to a view (a Flask app;
    False when it cannot tell)."""
    url_map = getattr(app, "url_map", None)
    if url_map is None:
        return False
    from urllib.parse import unquote

    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect

    try:
        path = unquote(request.path.split("?", 1)[0])
        url_map.bind("localhost").match(path, method=request.method)
    except RequestRedirect:
        return True
    except HTTPException:
        return False
    return True


def _routes(app: object) -> str:
    url_map = getattr(app, "url_map", None)
    if url_map is None:
        return ""
    rules = []
    for rule in url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = ",".join(sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")))
        rules.append(f"{methods} {rule.rule}")
    return "; ".join(sorted(rules))


#: At most this many requests are sent per endpoint: its simplest one, then others until
#: two of them write. The simplest request often does nothing (a user following
#: themself, a visitor's form as a signed-in user), and conflict points read off a
#: request that writes nothing find no race; two different writing requests of one
#: endpoint (two doctors signing off) make the opening's write-skew pair.
SAMPLES = 8


def survey(target: Target, run: Run) -> Survey:
    """Send each endpoint's simplest request alone, from the snapshot, then other requests
    of it until two have written; what an endpoint touches is the union of what they
    touched, and its steps are those of the request that wrote the most (the simplest on
    a tie)."""
    identities = [i.name for i in target.identities]
    results = []
    for endpoint in target.endpoints:
        simplest = simplest_request(endpoint, identities)
        others = [
            r
            for r in sample_requests(endpoint, identities, SAMPLES)
            if r.describe() != simplest.describe()
        ]
        runs = [_Alone.of(run, simplest)]
        for other in others[: SAMPLES - 1]:
            if sum(1 for r in runs if r.writes) >= 2:
                break
            runs.append(_Alone.of(run, other))
        richest = max(runs, key=lambda r: (len(r.writes), r.statements))
        writing = [r.request for r in runs if r.writes and r is not richest]
        results.append(
            EndpointSurvey(
                endpoint.name,
                simplest,
                runs[0].status,
                frozenset().union(*(r.reads for r in runs)),
                frozenset().union(*(r.writes for r in runs)),
                richest.statements,
                richest.trace,
                richest.request,
                writing[0] if writing else None,
                runs[0].response,
            )
        )
    return Survey(tuple(results))


@dataclass(frozen=True)
class _Alone:
    """One request run alone: its status, steps, and the tables it read and wrote."""

    request: Request
    status: int
    trace: tuple[Step, ...]
    reads: frozenset[str]
    writes: frozenset[str]
    statements: int
    response: Response | None = None

    @classmethod
    def of(cls, run: Run, request: Request) -> _Alone:
        execution = run(Scenario(requests=(request,), schedule=(Gene(),)))
        reads: set[str] = set()
        writes: set[str] = set()
        statements = 0
        for step in execution.trace:
            if step.kind != "sql":
                continue
            statements += 1
            a = access(step.text)
            prefix = f"{step.database}." if step.database else ""
            reads |= {prefix + t for t in a.reads}
            if a.write:
                writes.add(prefix + a.write)
        response = execution.responses[0]
        return cls(
            request,
            response.status if response is not None else 0,
            execution.trace,
            frozenset(reads),
            frozenset(writes),
            statements,
            response,
        )


def describe(result: Survey) -> Mapping[str, str]:
    """One line per endpoint: what its simplest request answered, and what its requests
    touched."""

    def names(tables: frozenset[str]) -> str:
        return ", ".join(sorted(t.removeprefix("default.") for t in tables))

    lines = {}
    for e in result.endpoints:
        touched = []
        if e.writes:
            touched.append("writes " + names(e.writes))
        if e.reads - e.writes:
            touched.append("reads " + names(e.reads - e.writes))
        lines[e.endpoint] = f"{e.status}; " + ("; ".join(touched) or "no SQL")
    return lines


MAX_OPENINGS = 24


def _writing(e: EndpointSurvey) -> Request:
    """The endpoint's request that wrote the most when surveyed (its simplest one may
    write nothing: a user following themself)."""
    return e.writer or e.request


def openings(result: Survey, target: Target) -> list[Scenario]:
    """The search's systematic opening, likeliest and cheapest first:

    * every writing endpoint against itself, the same request twice (a double submit);
    * every pair of writers of a common table (two edits of one row);
    * every writing endpoint with two different requests of it (write skew: two doctors
      signing off at once);
    * every reader of a table a writer writes, against that writer (a stale read: a
      total across two queries);
    * every pair of writers again, one yielding right after its COMMIT when it reads its
      rows again afterwards, the other running through (deleted under an expired object);
    * every writing endpoint in ``max_requests`` copies (an overrun that needs three);
    * the double submits and writer pairs again, each writer yielding at its moment of
      decision instead.

    A request first yields after its first conflicting step (conflict-guided genes: a
    stale copy taken to be merged later), a reader's writer running through. The moment
    of decision is after its last conflicting read before its first write: it has
    decided on what it read and not yet acted (check-then-act, an invariant over rows
    that the other request changes). Two different requests of one endpoint write
    different rows, where a write skew is likelier than a lost update, so their
    decision-point version comes right after the first-conflict one.
    Most races that real users meet are among these. When there are more than
    ``MAX_OPENINGS``, every category keeps its first few."""
    by_name = {e.endpoint: e for e in result.endpoints}
    writers = [by_name[name] for name in result.writers()]
    traces = {e.endpoint: e.trace for e in result.endpoints}
    first = Gene(0, (0,))

    def at_first(*requests: Request) -> Scenario:
        return Scenario(requests, (first,) * len(requests))

    pair = max(2, target.min_requests)
    two = target.min_requests <= 2 <= target.max_requests
    same: list[Scenario] = []
    pairs: list[Scenario] = []
    variants: list[Scenario] = []
    readers: list[Scenario] = []
    more: list[Scenario] = []
    if pair <= target.max_requests:
        same = [at_first(*(_writing(e),) * pair) for e in writers]
    if two:
        for k, a in enumerate(writers):
            for b in writers[k + 1 :]:
                if a.writes & b.writes:
                    pairs.append(at_first(_writing(a), _writing(b)))
        variants = [at_first(_writing(e), e.variant) for e in writers if e.variant]
        for reader in result.endpoints:
            if reader.writes:
                continue
            for e in writers:
                if reader.reads & e.writes:
                    readers.append(Scenario((reader.request, _writing(e)), (first, Gene())))
    if target.max_requests > pair:
        more = [at_first(*(_writing(e),) * target.max_requests) for e in writers]

    def decided(scenarios: list[Scenario]) -> list[Scenario]:
        changed = [_yield_when_decided(s, traces) for s in scenarios]
        return [d for d, s in zip(changed, scenarios, strict=True) if d != s]

    def after_commit(pairs: list[Scenario]) -> list[Scenario]:
        swapped = [Scenario(p.requests[::-1], p.schedule) for p in pairs]
        changed = [_yield_after_commit(s, traces) for s in pairs + swapped]
        return [s for s in changed if s.schedule[0] != first]

    variants = [s for v in variants for s in (v, *decided([v]))]
    categories = [same, pairs, variants, readers, after_commit(pairs), more]
    return _fair([*categories, decided(same), decided(pairs)], MAX_OPENINGS)


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


def _yield_when_decided(scenario: Scenario, traces: Mapping[str, Sequence[Step]]) -> Scenario:
    """Genes that make each request yield after its last conflicting step before its
    first write (or its first conflicting step, when it has none)."""

    def decision(own: Sequence[int], steps: Sequence[Step]) -> int | None:
        writes = [s.number for s in steps if s.kind == "sql" and access(s.text).write]
        before = [n for n in own if writes and n < min(writes)]
        return max(before) if before else None

    return _yield_at(scenario, traces, decision)


def _yield_after_commit(scenario: Scenario, traces: Mapping[str, Sequence[Step]]) -> Scenario:
    """Genes that make the first request yield after its COMMIT when a conflicting step
    follows it (it reads its own row again: SQLAlchemy expires objects on commit), while
    the second runs through: the row may be gone or changed by then."""

    def committed(own: Sequence[int], steps: Sequence[Step]) -> int | None:
        commits = [s.number for s in steps if s.kind == "commit" and s.number in own]
        return commits[0] if commits else None

    yielding = _yield_at(scenario, traces, committed)
    return Scenario(scenario.requests, (yielding.schedule[0], Gene()))


def _yield_at(
    scenario: Scenario,
    traces: Mapping[str, Sequence[Step]],
    pick: Callable[[Sequence[int], Sequence[Step]], int | None],
) -> Scenario:
    """The scenario with each request yielding once, after the step ``pick`` chooses among
    its conflict points (its first one when ``pick`` chooses none), as an index into them
    (schedules.conflict_points): the form the engine draws and resolves."""
    trace = surveyed_trace(scenario, traces)
    points = conflict_points(trace, len(scenario.requests))
    genes = []
    for index in range(len(scenario.requests)):
        own = points.get(index, ())
        chosen = pick(own, [s for s in trace if s.request == index])
        genes.append(Gene(0, (own.index(chosen) if chosen is not None else 0,)))
    return Scenario(scenario.requests, tuple(genes))
