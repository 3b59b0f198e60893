"""Requests that act on rows only other requests make (a checkout needs a cart): found
by sending each of the app's creating endpoints first. An endpoint whose simplest
request wrote nothing alone, and writes (answering 2xx or 3xx) after a request of a
creating endpoint as the same identity, needs that request first; the spec's setup
then sends it once for each signed-in identity, through the app's own endpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fuzzer.model import Execution, Gene, Request, Scenario

__all__ = ["Prerequisite", "find_prerequisites"]

_TRIES = 60  # executions at most: a large app has many pairs
_CANDIDATES = 4  # requests of one creating endpoint tried as the prerequisite


@dataclass(frozen=True)
class Prerequisite:
    endpoint: str  # the endpoint that needs it
    request: Request  # what to send first (its identity is replaced by each one's)


def find_prerequisites(
    surveyed: Any,
    execute: Callable[[Scenario], Execution],
    candidates: Callable[[str], Sequence[Request]] = lambda endpoint: (),
    users: Sequence[str] = (),
) -> list[Prerequisite]:
    """For each endpoint that changes state but wrote nothing alone, the first request
    of another endpoint after which it writes. Setup sends it once for each of
    ``users``; a request that, sent so, leaves an endpoint that wrote alone writing
    nothing (the last seat of an event booked by setup) is passed over for another of
    the same endpoint (``candidates``: more requests of it), on another row."""
    writers = [e for e in surveyed.endpoints if e.writes]
    found: list[Prerequisite] = []
    budget = [_TRIES]
    for needy in surveyed.endpoints:
        if needy.writes or needy.request.method in ("GET", "HEAD") or needy.status >= 500:
            continue
        if needy.status in (401, 403) or needy.request.identity in (None, "anonymous"):
            continue  # turned away, or nobody whose rows these would be
        fallback: Request | None = None
        for writer in writers:
            if writer.endpoint == needy.endpoint:
                continue
            for first in _requests_of(writer, needy.request.identity, candidates):
                if budget[0] <= 0 or not _enables(needy, first, surveyed, execute, budget):
                    continue
                if _spares(first, users or (needy.request.identity,), surveyed, execute, budget):
                    found.append(Prerequisite(needy.endpoint, first))
                    break
                fallback = fallback or first
            else:
                continue
            break
        else:
            if fallback is not None:  # every one exhausts something: better than none
                found.append(Prerequisite(needy.endpoint, fallback))
    return found


def _requests_of(
    writer: Any, identity: str | None, candidates: Callable[[str], Sequence[Request]]
) -> list[Request]:
    """The creating endpoint's requests to try first: the one that wrote the most, the
    other that wrote, then more of its requests; as ``identity``, each once."""
    requests = [writer.writer or writer.request, writer.variant, *candidates(writer.endpoint)]
    seen: dict[str, Request] = {}
    for request in requests:
        if request is not None:
            request = replace(request, identity=identity)
            seen.setdefault(request.describe(), request)
    return list(seen.values())[:_CANDIDATES]


def _enables(
    needy: Any,
    first: Request,
    surveyed: Any,
    execute: Callable[[Scenario], Execution],
    budget: list[int],
) -> bool:
    """Whether the needy endpoint's request writes (answering 2xx or 3xx) after ``first``."""
    budget[0] -= 1
    scenario = Scenario(requests=(needy.request,), schedule=(Gene(),), init=(first,))
    execution = execute(scenario)
    response = execution.responses[0]
    return _wrote(execution, surveyed) and response is not None and 200 <= response.status < 400


def _spares(
    first: Request,
    users: Sequence[str],
    surveyed: Any,
    execute: Callable[[Scenario], Execution],
    budget: list[int],
) -> bool:
    """Whether, after ``first`` sent once as each of ``users`` (as setup will), every
    init request answers 2xx or 3xx and each endpoint that wrote alone still writes."""
    init = tuple(replace(first, identity=user) for user in users)
    for writer in surveyed.endpoints:
        if not writer.writes:
            continue
        budget[0] -= 1
        request = writer.writer or writer.request
        execution = execute(Scenario(requests=(request,), schedule=(Gene(),), init=init))
        if any(not 200 <= r.status < 400 for r in execution.init):
            return False
        if not _wrote(execution, surveyed):
            return False
    return True


def _wrote(execution: Execution, surveyed: Any) -> bool:
    return any(
        s.kind == "sql" and s.text not in surveyed.routine and s.access.write
        for s in execution.trace
    )


def prove_identities(
    surveyed: Any, users: list[str], guarded: set[str], execute: Callable[[Scenario], Execution]
) -> list[str]:
    """Each signed-in identity proven by a request that needs it: the simplest request of
    an endpoint behind a login (``guarded``; else any that ran SQL), sent as it, answers
    2xx or 3xx and runs SQL. One line per identity, saying how, or what failed."""
    lines: list[str] = []
    probes = [e for e in surveyed.endpoints if e.endpoint in guarded] or [
        e for e in surveyed.endpoints if e.statements
    ]
    for name in users:
        said = f"{name}: not proven (no endpoint behind a login to try)"
        for probe in probes[:3]:
            request = replace(probe.request, identity=name)
            execution = execute(Scenario(requests=(request,), schedule=(Gene(),)))
            response = execution.responses[0]
            status = response.status if response is not None else 0
            ran = any(s.kind == "sql" for s in execution.trace)
            if 200 <= status < 400 and ran:
                said = f"{name}: proven by {probe.endpoint} ({status}, ran SQL as {name})"
                break
            said = f"{name}: FAILED, {probe.endpoint} answered {status}" + (
                "" if ran else " and ran no SQL"
            )
        lines.append(said)
    return lines
