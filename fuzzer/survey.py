"""Before the search: send each endpoint once, alone, and learn what it touches.

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
from .model import Execution, Gene, Request, Scenario, Step
from .sql import access
from .target import Endpoint, Target

Run = Callable[[Scenario], Execution]


@dataclass(frozen=True)
class EndpointSurvey:
    endpoint: str
    request: Request
    status: int
    reads: frozenset[str]
    writes: frozenset[str]
    statements: int
    trace: tuple[Step, ...] = ()


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
    """Raise InvalidTarget for an endpoint that answers 404/405 to every request tried."""
    identities = [i.name for i in target.identities]
    for surveyed in result.unreachable():
        endpoint = next(e for e in target.endpoints if e.name == surveyed.endpoint)
        tried = [surveyed.request]
        for request in sample_requests(endpoint, identities, 6):
            if request.describe() == surveyed.request.describe():
                continue
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


def survey(target: Target, run: Run) -> Survey:
    """Send each endpoint's simplest request alone, from the snapshot."""
    identities = [i.name for i in target.identities]
    results = []
    for endpoint in target.endpoints:
        request = simplest_request(endpoint, identities)
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
        results.append(
            EndpointSurvey(
                endpoint.name,
                request,
                response.status if response is not None else 0,
                frozenset(reads),
                frozenset(writes),
                statements,
                execution.trace,
            )
        )
    return Survey(tuple(results))


def describe(result: Survey) -> Mapping[str, str]:
    """One line per endpoint: what its simplest request answered and touched."""
    lines = {}
    for e in result.endpoints:
        touched = []
        if e.writes:
            touched.append("writes " + ", ".join(sorted(e.writes)))
        if e.reads - e.writes:
            touched.append("reads " + ", ".join(sorted(e.reads - e.writes)))
        lines[e.endpoint] = f"{e.status}; " + ("; ".join(touched) or "no SQL")
    return lines


MAX_OPENINGS = 24


def openings(result: Survey, target: Target) -> list[Scenario]:
    """The search's systematic opening: every writing endpoint against itself (two
    copies, and ``max_requests`` copies — double submissions, overruns), then every
    pair of writers of a common table, each request yielding at its first conflicting
    step (conflict-guided genes). Most races that real users meet are among these."""
    by_name = {e.endpoint: e for e in result.endpoints}
    writers = [by_name[name] for name in result.writers()]
    first = Gene(0, (0,))
    scenarios: list[Scenario] = []
    for e in writers:
        for copies in sorted({target.min_requests, 2, target.max_requests}):
            if 2 <= copies <= target.max_requests:
                scenarios.append(Scenario((e.request,) * copies, (first,) * copies))
    for k, a in enumerate(writers):
        for b in writers[k + 1 :]:
            if a.writes & b.writes and target.max_requests >= 2:
                scenarios.append(Scenario((a.request, b.request), (first, first)))
    return scenarios[:MAX_OPENINGS]
