"""The hygiene kinds, read from the instrumentation rather than the oracle: ``hang``
(no request could progress, or a schema change would wait behind a request's
locks), ``leaked-transaction`` and ``wrong-engine``. Each gives one finding per
endpoint that shows it."""

from __future__ import annotations

from fuzzer.findings.context import _Context
from fuzzer.findings.explain import _clip, label
from fuzzer.findings.finding import Finding
from fuzzer.model import Hang


def _hang(c: _Context, hang: Hang) -> Finding:
    """No request could make progress."""
    facts = [f"{label(i)} was stuck: {why};" for i, why in sorted(hang.blocked.items())]
    facts += [f"{label(i)} waited to run: {what};" for i, what in sorted(hang.waiting.items())]
    however = (
        f"However, no request could make progress for {hang.seconds:g} s: the execution has hung."
    )
    return c.finding("hang", set(hang.blocked) | set(hang.waiting), facts, however)


def _blocked_schema_change(c: _Context, hang: Hang) -> list[Finding]:
    """The DDL probe's answer: a schema change would wait behind the locks of a
    transaction a request left open. One finding per endpoint that left one (as for
    leaked-transaction), so each shrinks to the one request that shows it."""
    findings = []
    seen: set[str] = set()
    for request, what in sorted(hang.holders.items()):
        if not 0 <= request < len(c.scenario.requests):
            continue
        endpoint = c.scenario.requests[request].endpoint
        if endpoint in seen:
            continue
        seen.add(endpoint)
        facts = [f"{label(request)} answered, and left {what};"]
        facts += [f"{why};" for why in hang.lock.split("; ") if why]
        however = (
            "However, as long as that transaction stays open a schema change cannot take "
            "its lock, and every later request that touches the table queues behind the "
            "waiting ALTER: the execution has hung."
        )
        findings.append(c.finding("hang", (request,), facts, however))
    return findings


def _leaks(c: _Context) -> list[Finding]:
    findings = []
    seen: set[str] = set()
    for leak in c.execution.leaks:
        if leak.request < 0 or leak.request >= len(c.scenario.requests):
            continue
        endpoint = c.scenario.requests[leak.request].endpoint
        if endpoint in seen:
            continue
        seen.add(endpoint)
        state = "inside an open transaction" if leak.in_transaction else "checked out of its pool"
        facts = [
            f"{label(leak.request)} sent its response while its connection {leak.connection} "
            f"to database {leak.database!r} was still {state};",
        ]
        if leak.last_statement:
            facts.append(f"its last statement there was: {_clip(leak.last_statement, 100)}")
        however = (
            "However, a request must give its connections back before it answers: the next "
            "request on this worker thread inherits the open session and its snapshot, and "
            "a schema change waits behind its locks."
        )
        findings.append(c.finding("leaked-transaction", (leak.request,), facts, however))
    return findings


def _wrong_engine(c: _Context) -> list[Finding]:
    findings = []
    seen: set[str] = set()
    for use in c.execution.wrong_engine:
        if use.request < 0 or use.request >= len(c.scenario.requests):
            continue
        endpoint = c.scenario.requests[use.request].endpoint
        if endpoint in seen:
            continue
        seen.add(endpoint)
        position = next(
            (p for p, s in enumerate(c.trace) if s.request == use.request and s.number == use.step),
            None,
        )
        facts = [
            f"{label(use.request)} was served by app {use.app!r}, whose engines use "
            f"database {', '.join(repr(d) for d in use.expected) or 'none'};",
        ]
        if position is not None:
            facts.append(f"its {c.step(position)} ran on database {use.database!r}.")
        else:
            facts.append(f"its step {use.step} ran on database {use.database!r}.")
        however = (
            "However, a request may only use its own app's engines: this statement ran on "
            "another app's database (a session or engine shared between the apps)."
        )
        findings.append(
            c.finding(
                "wrong-engine",
                (use.request,),
                facts,
                however,
                conflicts=(position,) if position is not None else (),
            )
        )
    return findings
