"""The findings of an execution with injected errors (``--faults``, DESIGN.md §11).

The verdict (fuzzer/judge/faults.py) says which requests an injected error hit, which
of them gave up (answered an error) and which show their effect twice. From that:

* ``partial-commit``: a request that gave up left some of its writes behind (no
  serial order without it gives the final rows);
* ``duplicate-effect``: a request that retried applied its effect twice (the rows
  are those of a serial run where it runs twice in a row);
* ``stale-retry``: a request that retried succeeded, but the outcome is one no
  serial order gives (the retry acted on values read before the abort);
* ``unhandled-retryable``: a request failed (a 500, or an exception out of the app) on
  an error the database says to retry (a kind of its own, so ``--fail-on`` can leave it
  out). A 503 or any other answer the app chose is a clean one.
"""

from __future__ import annotations

from fuzzer.findings.context import _Context
from fuzzer.findings.explain import _clip, _describe, _order, label
from fuzzer.findings.finding import Finding
from fuzzer.findings.races import _races
from fuzzer.judge.faults import FaultVerdict

#: the kinds this module gives, in KINDS order
FAULT_KINDS = ("partial-commit", "duplicate-effect", "stale-retry", "unhandled-retryable")


def _faults(c: _Context) -> list[Finding] | None:
    """The findings of an execution with injected errors; None when none hit it."""
    verdict = c.verdict
    if not isinstance(verdict, FaultVerdict) or not verdict.faulted:
        return None
    findings: list[Finding] = []
    if verdict.status == "violation":
        finding = _violation(c, verdict)
        findings += [finding] if finding is not None else _races(c)
    findings += _unhandled(c, verdict)
    return findings


def _injections(c: _Context, requests: tuple[int, ...]) -> tuple[list[str], list[int]]:
    """One fact per injected error of ``requests``, and the trace positions cited."""
    facts, cited = [], []
    for position, step in enumerate(c.trace):
        if step.injected and step.request in requests:
            facts.append(
                f"{label(step.request)}'s statement at {c.step(position)} failed with an "
                f"injected {step.injected} ({_clip(step.error, 90) or 'the database error'});"
            )
            cited.append(position)
    return facts, cited


def _answered(c: _Context, i: int) -> str:
    response = c.execution.responses[i]
    if response is None:
        return f"{label(i)} was not answered."
    return f"{label(i)} answered {response.status}" + (
        f" with {_clip(response.error.rstrip('.'), 120)}." if response.error else "."
    )


def _committed_a_write(c: _Context, request: int) -> bool:
    """Whether ``request`` committed a write (a write, then a COMMIT that did not fail, on
    one connection): only then can a request that gave up have left something."""
    pending: set[int] = set()
    for step in c.trace:
        if step.request != request:
            continue
        if step.kind == "sql" and step.is_write and not step.error:
            pending.add(step.connection)
        elif step.kind == "rollback":
            pending.discard(step.connection)
        elif step.kind == "commit" and not step.error and step.connection in pending:
            return True
    return False


def _violation(c: _Context, verdict: FaultVerdict) -> Finding | None:
    """The finding of a violation a faulted request explains, or None (another request
    did it: the race rules judge it)."""
    partial = tuple(i for i in verdict.gave_up if _committed_a_write(c, i))
    if partial:
        kind, involved = "partial-commit", partial
        rule = (
            f"a request that gives up after the database aborted it must leave no effect, "
            f"but no serial order without {', '.join(label(i) for i in involved)} gives "
            f"this outcome"
        )
    elif verdict.doubled:
        kind, involved = "duplicate-effect", verdict.doubled
        rule = (
            f"a retried request must take effect once, but the final rows hold what "
            f"{label(involved[0])} writes more often than a serial run makes it"
        )
    else:
        kind = "stale-retry"
        involved = tuple(i for i in verdict.faulted if i not in verdict.aborted)
        rule = (
            "a request that retries after the database aborted it must act as if it ran "
            "once, from what it reads again, but no serial order gives this outcome"
        )
    if not involved:
        return None
    facts, cited = _injections(c, verdict.faulted)
    facts += [_answered(c, i) for i in involved]
    difference = c.differences[0] if c.differences else None
    however = (
        f"However, {rule}; in the closest serial order, {_order(verdict.order)}, "
        f"{_describe(difference) or 'the outcome differs'}: a contradiction!"
    )
    return c.finding(
        kind, involved, facts, however, difference=difference, conflicts=cited, place=""
    )


def _unhandled(c: _Context, verdict: FaultVerdict) -> list[Finding]:
    findings = []
    for i in verdict.faulted:
        response = c.execution.responses[i]
        if response is None or not (response.status == 500 or response.error):
            continue  # a 503 "try again" is a clean answer
        facts, cited = _injections(c, (i,))
        facts.append(_answered(c, i))
        however = (
            "However, the database said to retry (the transaction is safe to run again): "
            "the app should retry it or answer a clean error (409, 503), not fail."
        )
        findings.append(
            c.finding(
                "unhandled-retryable",
                (i,),
                facts,
                however,
                exception=response.exception_type or f"HTTP {response.status}",
                conflicts=cited,
            )
        )
    return findings
