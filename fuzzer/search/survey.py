"""Before the search: send each endpoint's requests alone, and learn what it touches.

The survey tells the search which endpoints conflict (one writes a table the other
reads or writes), so a scenario's later requests can prefer partners of its first
one; and it catches an endpoint that answers 404 or 405 to its simplest request,
which is almost always a wrong path or method in the target spec.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings

from fuzzer.errors import InvalidTarget
from fuzzer.model import Execution, Gene, Request, Response, Scenario, Step
from fuzzer.search import interrupt
from fuzzer.search.schedules import (
    Footprint,
    at_points,
    decisions,
    footprint,
    locks,
    points_between,
)
from fuzzer.sql import Access, shape
from fuzzer.target.contract import Endpoint, Target

Run = Callable[[Scenario], Execution]


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
    common = routine([e.trace for e in alone])
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
            )
        )
    return Survey(tuple(results), common)


def routine(traces: Sequence[Sequence[Step]]) -> frozenset[str]:
    """The stamps that several endpoints make the same way before their own work: an
    UPDATE of one row named by its key (the same statement and the same key in each),
    the only write of its transaction, followed by more SQL after that transaction, in
    at least two endpoints and at least half of those that ran SQL. Flask-Login apps
    stamp ``user.last_seen`` in a ``before_request`` hook and commit, on every request;
    a yield at that stamp is far from the race. An INSERT is never routine, nor is a
    DELETE (issue 19): a get-or-create of site settings in a context processor makes
    the same single-insert transactions on every page, and its race is there."""
    counts: dict[tuple[str, str], int] = {}
    with_sql = 0
    for trace in traces:
        if any(step.kind == "sql" for step in trace):
            with_sql += 1
        for stamp in _stamps(trace):
            counts[stamp] = counts.get(stamp, 0) + 1
    return frozenset(text for (text, _), n in counts.items() if n >= 2 and 2 * n >= with_sql)


def _stamps(trace: Sequence[Step]) -> set[tuple[str, str]]:
    """The stamps of ``trace`` (statement, the row's key): UPDATEs of one row by its key
    that are alone in their transaction, with SQL after it."""
    found: set[tuple[str, str]] = set()
    writes: list[tuple[str, str] | None] = []  # None: a write that is no stamp
    ended: list[tuple[str, str]] = []  # the single stamp of a transaction committed
    for step in trace:
        if step.kind == "sql":
            found.update(ended)  # SQL after a committed single write
            ended = []
            seen = step.access
            if seen.write:
                writes.append(_stamp(step, seen))
        elif step.kind in ("commit", "rollback"):
            if len(writes) == 1 and writes[0] is not None:
                ended = [writes[0]]
            writes = []
    return found


def _stamp(step: Step, seen: Access) -> tuple[str, str] | None:
    """A write that may be a stamp: an UPDATE whose WHERE names its row by a key."""
    if seen.verb != "UPDATE" or not shape(step.text).where:
        return None
    return (step.text, repr(seen.key))


def _other_identity(
    run: Run, writer: _Alone, identities: Sequence[str], common: frozenset[str]
) -> Request | None:
    """The writing request sent as another identity that also writes, touching the same
    rows as it when one does (the same item bought by two users), not a self-action (a
    user following themself writes nothing)."""
    from dataclasses import replace

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


def rows(trace: Sequence[Step]) -> set[tuple[str, str, str]]:
    """The rows a request's writes name: (table, statement, parameters) of each write, and
    of each read of a table it writes."""
    written = {w for s in trace if s.kind == "sql" and (w := s.access.write)}
    result = set()
    for step in trace:
        if step.kind != "sql":
            continue
        a = step.access
        if a.write or set(a.reads) & written:
            result.add((a.write or ",".join(sorted(a.reads)), step.text, step.params))
    return result


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


MAX_OPENINGS = 32
#: Moments of decision tried per request in the opening (a request with three commits
#: has a few; the race is rarely past the third).
MAX_DECISIONS = 3


def _writing(e: EndpointSurvey) -> Request:
    """The endpoint's request that wrote the most when surveyed (its simplest one may
    write nothing: a user following themself)."""
    return e.writer or e.request


@dataclass(frozen=True)
class Profile:
    """What ``likelihood`` reads off one request's steps, read once per endpoint."""

    read_then_written: frozenset[str]  # tables it reads and then writes
    written: frozenset[str]
    rows: frozenset[tuple[str, str, str]]  # survey.rows


def profile(steps: Sequence[Step]) -> Profile:
    read: set[str] = set()
    then_written: set[str] = set()
    written: set[str] = set()
    for step in steps:
        if step.kind != "sql":
            continue
        a = step.access
        if a.write:
            written.add(a.write)
            if a.write in read:
                then_written.add(a.write)
        read |= a.reads
    return Profile(frozenset(then_written), frozenset(written), frozenset(rows(steps)))


def likely(a: Profile, b: Profile, identical: bool = False) -> int:
    """``likelihood`` of two requests' profiles."""
    score = 4 * len(a.read_then_written & b.written) + 4 * len(b.read_then_written & a.written)
    if not identical and a.rows & b.rows:
        score += 2
    if a.written & b.written:
        score += 1
    return score


def likelihood(a: Sequence[Step], b: Sequence[Step], identical: bool = False) -> int:
    """How likely two requests race, from their steps alone: each table one reads and
    then writes that the other writes (check-then-act, read-modify-write) counts most,
    then the same rows under the drawn values (not counted for two ``identical``
    requests: they touch the same rows by construction, and writing the same values
    twice is often harmless), then a table both write."""
    return likely(profile(a), profile(b), identical)


def openings(result: Survey, target: Target) -> list[Scenario]:
    """The search's systematic opening, likeliest first:

    * pairs that may race, ranked by ``likelihood``: every writing endpoint against
      itself as the same identity (a double submit) and as another identity touching the
      same rows (two users, one item), and every two writers of a common table; each
      with both requests yielding at each of their first ``MAX_DECISIONS`` moments of
      decision (``schedules.decisions``: after the last conflicting read before a write,
      in every transaction of the request), then at their first conflict point;
    * every writing endpoint with two different requests of it (write skew: two doctors
      signing off at once), at the first decision and at the first conflict;
    * every reader of a table a writer writes, against that writer (a stale read: a
      total across two queries), the writer running through;
    * every pair of writers again, one yielding right after its COMMIT when it reads its
      rows again afterwards, the other running through (deleted under an expired object);
    * the ranked pairs again, both requests yielding wherever they hold a write's locks
      with another write to make (``schedules.locks``): both take compatible locks
      before either goes on, so a deadlock the database detects shows;
    * every writing endpoint in ``max_requests`` copies (an overrun that needs three).

    Most races that real users meet are among these. When there are more than
    ``MAX_OPENINGS``, every category keeps its first few. Each category is made lazily
    and only as far as it can be kept: a target with a hundred writers ranks its pairs
    (each endpoint's steps read once) but works out schedules for a few dozen."""
    by_name = {e.endpoint: e for e in result.endpoints}
    writers = [by_name[name] for name in result.writers()]
    reading = _Reading({e.endpoint: e.trace for e in result.endpoints})
    pair = max(2, target.min_requests)
    categories: list[Iterable[Scenario]] = []
    if target.min_requests <= 2 <= target.max_requests:
        ranked = _ranked(writers)
        seen: set[Any] = set()
        distinct = (s for s in ranked if s.requests[0].endpoint != s.requests[1].endpoint)
        categories = [
            _racing(ranked, reading, seen),
            _variants(writers, reading, seen),
            _readers(result, writers),
            _after_commit(distinct, reading),
            (s for r in ranked if (s := _yield_at_all(r, reading, locks)) is not None),
        ]
    elif pair <= target.max_requests:
        categories = [[_at_first(*(_writing(e),) * pair) for e in writers]]
    if target.max_requests > pair:
        categories.append(_at_first(*(_writing(e),) * target.max_requests) for e in writers)
    return _fair([_taken(c, MAX_OPENINGS) for c in categories], MAX_OPENINGS)


_FIRST = Gene(0, (0,))


def _at_first(*requests: Request) -> Scenario:
    return Scenario(requests, (_FIRST,) * len(requests))


def _taken(scenarios: Iterable[Scenario], limit: int) -> list[Scenario]:
    """The first ``limit`` scenarios of a category (no more can be kept), checking for a
    stop asked for (SIGINT, SIGTERM) as it goes."""
    result = []
    for scenario in scenarios:
        interrupt.check()
        result.append(scenario)
        if len(result) >= limit:
            break
    return result


def _ranked(writers: Sequence[EndpointSurvey]) -> list[Scenario]:
    """The pairs that may race, likeliest first, each request yielding at its first
    conflict point."""
    profiles = {e.endpoint: profile(e.trace) for e in writers}
    candidates: list[tuple[Request, Request]] = []
    for k, a in enumerate(writers):
        interrupt.check()
        candidates.append((_writing(a), _writing(a)))
        if a.other is not None:
            candidates.append((_writing(a), a.other))
        candidates += [(_writing(a), _writing(b)) for b in writers[k + 1 :] if a.writes & b.writes]
    scored = [
        (-likely(profiles[x.endpoint], profiles[y.endpoint], x == y), order, (x, y))
        for order, (x, y) in enumerate(candidates)
    ]
    return [_at_first(x, y) for _, _, (x, y) in sorted(scored, key=lambda t: t[:2])]


def _racing(ranked: Iterable[Scenario], reading: _Reading, seen: set[Any]) -> Iterator[Scenario]:
    """Each ranked pair with both requests at each of their first moments of decision,
    then at their first conflict point (each concrete schedule once)."""
    for scenario in ranked:
        for k in (*range(MAX_DECISIONS), -1):
            decided = scenario if k < 0 else _yield_at_each(scenario, reading, decisions, k)
            if decided is None:
                continue
            key = _concrete(decided, reading)
            if key not in seen:
                seen.add(key)
                yield decided


def _variants(
    writers: Iterable[EndpointSurvey], reading: _Reading, seen: set[Any]
) -> Iterator[Scenario]:
    """Each writer with two different requests of it (write skew), at the first decision
    and at the first conflict point, unless a ranked pair's opening has it already."""
    for e in writers:
        if e.variant is None:
            continue
        variant = _at_first(_writing(e), e.variant)
        decided = _yield_at_each(variant, reading, decisions, 0)
        for scenario in ([decided] if decided not in (None, variant) else []) + [variant]:
            key = _concrete(scenario, reading)
            if key not in seen:
                seen.add(key)
                yield scenario


def _readers(result: Survey, writers: Sequence[EndpointSurvey]) -> Iterator[Scenario]:
    """Every reader against each writer of what it reads, the writer running through."""
    for reader in result.endpoints:
        if reader.writes:
            continue
        for e in writers:
            if reader.reads & e.writes:
                yield Scenario((reader.request, _writing(e)), (_FIRST, Gene()))


def _after_commit(pairs: Iterable[Scenario], reading: _Reading) -> Iterator[Scenario]:
    """Each pair of different writers, in both orders, the first yielding after its
    COMMIT, when that is a conflict point."""
    pairs = list(pairs)
    for scenario in pairs + [Scenario(p.requests[::-1], p.schedule) for p in pairs]:
        changed = _yield_after_commit(scenario, reading)
        if changed.schedule[0] != _FIRST:
            yield changed


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


class _Reading:
    """Each endpoint's surveyed steps, read once: a scenario's conflict points come from
    its endpoints' footprints (``schedules.points_between``), computed once per
    combination of endpoints, not from a trace rebuilt and parsed for every opening."""

    def __init__(self, traces: Mapping[str, Sequence[Step]]) -> None:
        self.traces = traces
        self._prints: dict[str, Footprint] = {}
        self._points: dict[tuple[str, ...], dict[int, tuple[int, ...]]] = {}

    def steps(self, scenario: Scenario, index: int) -> Sequence[Step]:
        return self.traces.get(scenario.requests[index].endpoint, ())

    def points(self, scenario: Scenario) -> dict[int, tuple[int, ...]]:
        """Per request, its conflict points (as ``schedules.conflict_points`` gives them
        for the scenario's surveyed trace)."""
        names = tuple(r.endpoint for r in scenario.requests)
        if names not in self._points:
            prints = [self._footprint(name) for name in names]
            self._points[names] = {
                i: points_between(p, prints[:i] + prints[i + 1 :]) for i, p in enumerate(prints)
            }
        return self._points[names]

    def _footprint(self, endpoint: str) -> Footprint:
        if endpoint not in self._prints:
            self._prints[endpoint] = footprint(self.traces.get(endpoint, ()))
        return self._prints[endpoint]


def _yield_at_each(
    scenario: Scenario,
    reading: _Reading,
    points: Callable[[Sequence[int], Sequence[Step]], tuple[int, ...]],
    k: int,
) -> Scenario | None:
    """Genes that make each request yield at its ``k``-th point of ``points`` (its last
    one when it has fewer); None when no request has a ``k``-th one."""
    own = reading.points(scenario)
    chosen = [points(own[i], reading.steps(scenario, i)) for i in range(len(scenario.requests))]
    if all(len(c) <= k for c in chosen):
        return None
    genes = []
    for i, c in enumerate(chosen):
        number = c[min(k, len(c) - 1)] if c else None
        genes.append(Gene(0, (own[i].index(number),)) if number is not None else Gene(0, (0,)))
    return Scenario(scenario.requests, tuple(genes))


def _yield_at_all(
    scenario: Scenario,
    reading: _Reading,
    points: Callable[[Sequence[int], Sequence[Step]], tuple[int, ...]],
) -> Scenario | None:
    """Genes that make each request yield at every one of its ``points``; None unless
    every request has one."""
    own = reading.points(scenario)
    chosen = [points(own[i], reading.steps(scenario, i)) for i in range(len(scenario.requests))]
    if not all(chosen):
        return None
    genes = [Gene(0, tuple(own[i].index(n) for n in c)) for i, c in enumerate(chosen)]
    return Scenario(scenario.requests, tuple(genes))


def _concrete(scenario: Scenario, reading: _Reading) -> Any:
    """The scenario with its yields as step numbers, as text: two openings the same when
    equal (requests hold dicts, so a scenario is not hashable)."""
    concrete = at_points(scenario, reading.points(scenario))
    return json.dumps(concrete.to_json(), sort_keys=True, default=str)


def _yield_after_commit(scenario: Scenario, reading: _Reading) -> Scenario:
    """Genes that make the first request yield after its COMMIT when a conflicting step
    follows it (it reads its own row again: SQLAlchemy expires objects on commit), while
    the second runs through: the row may be gone or changed by then."""

    def committed(own: Sequence[int], steps: Sequence[Step]) -> int | None:
        commits = [s.number for s in steps if s.kind == "commit" and s.number in own]
        return commits[0] if commits else None

    yielding = _yield_at(scenario, reading, committed)
    return Scenario(scenario.requests, (yielding.schedule[0], Gene()))


def _yield_at(
    scenario: Scenario,
    reading: _Reading,
    pick: Callable[[Sequence[int], Sequence[Step]], int | None],
) -> Scenario:
    """The scenario with each request yielding once, after the step ``pick`` chooses among
    its conflict points (its first one when ``pick`` chooses none), as an index into them
    (schedules.conflict_points): the form the engine draws and resolves."""
    points = reading.points(scenario)
    genes = []
    for index in range(len(scenario.requests)):
        own = points[index]
        chosen = pick(own, reading.steps(scenario, index))
        genes.append(Gene(0, (own.index(chosen) if chosen is not None else 0,)))
    return Scenario(scenario.requests, tuple(genes))
