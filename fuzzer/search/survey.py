"""Before the search: send each endpoint's requests alone, and learn what it touches.

The survey tells the search which endpoints conflict (one writes a table the other
reads or writes), so a scenario's later requests can prefer partners of its first
one; and it catches an endpoint that answers 404 or 405 to its simplest request,
which is almost always a wrong path or method in the target spec.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, Phase, find, settings

from fuzzer.errors import InvalidTarget
from fuzzer.findings.stamps import own_row, routine
from fuzzer.model import Execution, Gene, Request, Response, Scenario, Step
from fuzzer.search.plan.likelihood import rows
from fuzzer.sql import STORES
from fuzzer.target.contract import Endpoint, Target

Run = Callable[[Scenario], Execution]

#: what a cache or Redis command writes, as a table: ``cache:<key>``, ``db.redis:<key>``
_STORE_KEY = re.compile(r"^(?:[^.:]+\.)?(?:cache|redis):")


@dataclass(frozen=True)
class EndpointSurvey:
    endpoint: str
    request: Request  # the simplest request, and what it answered
    status: int
    reads: frozenset[str]
    writes: frozenset[str]
    statements: int
    trace: tuple[Step, ...] = ()  # the steps of the request that wrote the most (no routine)
    writer: Request | None = None  # that request
    variant: Request | None = None  # another request of it that wrote (other arguments)
    other: Request | None = None  # the writer as another identity that writes (same rows)
    response: Response | None = None  # what the simplest request answered
    writer_status: int = 0  # what the writer answered (0: nothing wrote)

    @property
    def keys_only(self) -> bool:
        """A redirect that wrote nothing but cache or Redis keys (a session or a visit
        counter kept there), whatever it read, or ran nothing but such commands: it
        reached no view's work (issue 20)."""
        if not 300 <= self.status < 400:
            return False
        if self.writes:
            return all(_STORE_KEY.match(table) for table in self.writes)
        statements = [s.text for s in self.trace if s.kind == "sql"]
        return bool(statements) and all(s.startswith(STORES) for s in statements)


@dataclass(frozen=True)
class Survey:
    endpoints: tuple[EndpointSurvey, ...]
    routine: frozenset[str] = frozenset()  # writes every request makes the same way

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
    from fuzzer.strategies import requests_from

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

    from fuzzer.strategies import requests_from

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
#: At most this many other identities are tried for an endpoint's writing request, to
#: find one that touches the same rows (two users, one resource).
OTHERS = 2


def survey(target: Target, run: Run) -> Survey:
    """Send each endpoint's simplest request alone, from the snapshot, then other requests
    of it until two have written; what an endpoint touches is the union of what they
    touched, and its steps are those of the request that wrote the most (the simplest on
    a tie). A write every request makes the same way (a session stamp) is routine: it is
    left out of what an endpoint writes and of its steps, so conflict points and moments
    of decision fall on the request's own work. The writing request is also sent as
    other identities, to find one that touches the same rows (two users, one item)."""
    identities = [i.name for i in target.identities]
    simplest = [simplest_request(e, identities) for e in target.endpoints]
    alone = [run(Scenario(requests=(r,), schedule=(Gene(),))) for r in simplest]
    common = _identity_stamps(target, run, simplest, alone)
    results = []
    for endpoint, first, execution in zip(target.endpoints, simplest, alone, strict=True):
        others = [
            r
            for r in sample_requests(endpoint, identities, SAMPLES)
            if r.describe() != first.describe()
        ]
        runs = [_Alone.judged(first, execution, common)]
        for other in others[: SAMPLES - 1]:
            if sum(1 for r in runs if r.writes) >= 2:
                break
            runs.append(_Alone.of(run, other, common))
        richest = max(runs, key=lambda r: (len(r.writes), r.statements))
        writing = [r.request for r in runs if r.writes and r is not richest]
        allowed = list(endpoint.identities) if endpoint.identities else identities
        results.append(
            EndpointSurvey(
                endpoint.name,
                first,
                runs[0].status,
                frozenset().union(*(r.reads for r in runs)),
                frozenset().union(*(r.writes for r in runs)),
                richest.statements,
                richest.trace,
                richest.request,
                writing[0] if writing else None,
                _other_identity(run, richest, allowed, common) if richest.writes else None,
                runs[0].response,
                richest.status if richest.writes else 0,
            )
        )
    return Survey(tuple(results), common)


def _identity_stamps(
    target: Target, run: Run, requests: Sequence[Request], alone: Sequence[Execution]
) -> frozenset[str]:
    """``routine`` of the simplest requests' traces, kept only where a request that made
    the stamps, sent as another identity, stamps another row of the same table (one
    identity: nobody to compare with, kept)."""
    signed = [r.identity is not None for r in requests]
    common = routine([e.trace for e in alone], signed)
    names = [i.name for i in target.identities]
    if not common:
        return common
    for endpoint, request, execution in zip(target.endpoints, requests, alone, strict=True):
        if request.identity is None:
            continue
        allowed = [n for n in endpoint.identities or names if n != request.identity]
        if not allowed or not any(s.text in common for s in execution.trace):
            continue
        other = replace(request, identity=allowed[0])
        return own_row(common, execution.trace, run(Scenario((other,), (Gene(),))).trace)
    return common


def _other_identity(
    run: Run, writer: _Alone, identities: Sequence[str], common: frozenset[str]
) -> Request | None:
    """The writing request sent as another identity that also writes, touching the same
    rows as it when one does (the same item bought by two users), not a self-action (a
    user following themself writes nothing)."""
    fallback = None
    tried = 0
    for identity in identities:
        if identity == writer.request.identity or tried >= OTHERS:
            continue
        tried += 1
        other = _Alone.of(run, replace(writer.request, identity=identity), common)
        if not other.writes:
            continue
        if rows(writer.trace) & rows(other.trace):
            return other.request
        fallback = fallback or other.request
    return fallback


@dataclass(frozen=True)
class _Alone:
    """One request run alone: its status, steps, and the tables it read and wrote (its
    routine writes left out)."""

    request: Request
    status: int
    trace: tuple[Step, ...]
    reads: frozenset[str]
    writes: frozenset[str]
    statements: int
    response: Response | None = None

    @classmethod
    def of(cls, run: Run, request: Request, common: frozenset[str] = frozenset()) -> _Alone:
        return cls.judged(request, run(Scenario(requests=(request,), schedule=(Gene(),))), common)

    @classmethod
    def judged(cls, request: Request, execution: Execution, common: frozenset[str]) -> _Alone:
        reads: set[str] = set()
        writes: set[str] = set()
        statements = 0
        trace = tuple(s for s in execution.trace if not (s.kind == "sql" and s.text in common))
        for step in trace:
            if step.kind != "sql":
                continue
            statements += 1
            a = step.access
            prefix = f"{step.database}." if step.database else ""
            reads |= {prefix + t for t in a.reads}
            if a.write:
                writes.add(prefix + a.write)
        response = execution.responses[0]
        return cls(
            request,
            response.status if response is not None else 0,
            trace,
            frozenset(reads),
            frozenset(writes),
            statements,
            response,
        )


def describe(result: Survey) -> Mapping[str, str]:
    """One line per endpoint: what it answered, and what its requests touched. For an
    endpoint that writes, the status is that of the request that wrote the most (the
    simplest one may have been refused: a 400 beside a write would mislead)."""

    def names(tables: frozenset[str]) -> str:
        return ", ".join(sorted(t.removeprefix("default.") for t in tables))

    lines = {}
    for e in result.endpoints:
        if e.keys_only and e.writes:
            lines[e.endpoint] = (
                f"{e.status}; only redirected, writing nothing but a session or cache key "
                "(not exercised)"
            )
            continue
        touched = []
        if e.writes:
            touched.append("writes " + names(e.writes))
        if e.reads - e.writes:
            touched.append("reads " + names(e.reads - e.writes))
        status = e.writer_status if e.writes and e.writer_status else e.status
        lines[e.endpoint] = f"{status}; " + ("; ".join(touched) or "no SQL")
    return lines
