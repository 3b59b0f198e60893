"""Requests that act on rows only other requests make (a checkout needs a cart): found
by sending each of the app's creating endpoints first. An endpoint whose simplest
request wrote nothing alone, and writes (answering 2xx or 3xx) after a request of a
creating endpoint as the same identity, needs that request first; the spec's setup
then sends it once for each signed-in identity, through the app's own endpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from fuzzer.model import Execution, Gene, Request, Scenario

__all__ = ["Prerequisite", "find_prerequisites"]

_TRIES = 60  # executions at most: a large app has many pairs


@dataclass(frozen=True)
class Prerequisite:
    endpoint: str  # the endpoint that needs it
    request: Request  # what to send first (its identity is replaced by each one's)


def find_prerequisites(
    surveyed: Any, execute: Callable[[Scenario], Execution]
) -> list[Prerequisite]:
    """For each endpoint that changes state but wrote nothing alone, the first request
    of another endpoint after which it writes."""
    writers = [e for e in surveyed.endpoints if e.writes]
    found: list[Prerequisite] = []
    tries = 0
    for needy in surveyed.endpoints:
        if needy.writes or needy.request.method in ("GET", "HEAD") or needy.status >= 500:
            continue
        if needy.status in (401, 403) or needy.request.identity in (None, "anonymous"):
            continue  # turned away, or nobody whose rows these would be
        for writer in writers:
            if writer.endpoint == needy.endpoint or tries >= _TRIES:
                continue
            tries += 1
            first = replace(writer.writer or writer.request, identity=needy.request.identity)
            scenario = Scenario(requests=(needy.request,), schedule=(Gene(),), init=(first,))
            execution = execute(scenario)
            response = execution.responses[0]
            wrote = any(
                s.kind == "sql" and s.text not in surveyed.routine and s.access.write
                for s in execution.trace
            )
            if wrote and response is not None and 200 <= response.status < 400:
                found.append(Prerequisite(needy.endpoint, first))
                break
    return found


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
