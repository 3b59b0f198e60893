"""``concurrency-error`` (a 5xx no serial run gives) and ``serial-failure`` (a 5xx a
request gives alone too: a plain bug, never a race)."""

from __future__ import annotations

from collections.abc import Sequence

from fuzzer.findings.context import _Context, _Event
from fuzzer.findings.explain import _clip, _order, label
from fuzzer.findings.finding import Finding


def _concurrency_error(c: _Context) -> Finding | None:
    """A 5xx that no serial run of the same requests gives."""
    reference = c.verdict.reference
    for i, response in enumerate(c.execution.responses):
        if response is None or response.status < 500 or i in c.verdict.aborted:
            continue
        if i in c.serial_errors:
            continue  # it fails alone too: a serial-failure, not a race
        expected = reference.responses[i] if reference is not None else None
        exception = response.exception_type or f"HTTP {response.status}"
        touched = _culprit_tables(c, c.of(i))
        others = _concurrent_writers(c, i, touched)
        facts: list[str] = []
        cited: list[int] = []
        for w in others:
            # what it wrote besides the stamps every request makes, if anything
            tables = c.written(w, stamps=False) & touched or c.written(w) & touched
            fact, positions = c.around(i, w, tables)
            if fact:
                facts.append(fact)
                cited += positions
        failed = _failing_statement(c, i)
        place = ""
        if failed is not None:
            step = c.trace[failed]
            place = _statement_place(c, failed)
            if step.error:
                outcome = f"raised {_clip(step.error, 120)}"
            elif step.rowcount is not None:
                outcome = f"matched {step.rowcount} row{'s' if step.rowcount != 1 else ''}"
            else:
                outcome = "was its last"
            facts.append(f"{label(i)}'s statement at {c.step(failed)} {outcome};")
            cited.append(failed)
        facts.append(
            f"{label(i)} answered {response.status}"
            + (f" with {_clip(response.error.rstrip('.'), 160)}" if response.error else "")
            + "."
        )
        serially = expected.status if expected is not None else "nothing"
        however = (
            f"However, run one at a time, in any order, {label(i)} never fails that way; "
            f"in the closest serial order, {_order(c.verdict.order)}, it answers "
            f"{serially}: a contradiction!"
        )
        return c.finding(
            "concurrency-error",
            {i, *others},
            facts,
            however,
            exception=exception,
            difference=next((d for d in c.differences if d.request == i), None),
            conflicts=cited,
            place=place,
        )
    return None


def _statement_place(c: _Context, position: int) -> str:
    """Where an error was raised, when a statement raised it: its table and verb
    ("users (INSERT)"). With the exception type, that is the bug, whatever route reached
    it: a registration check reached by two routes is one finding, not one per route."""
    event = next((e for e in c.events if e.position == position), None)
    if event is None or not event.step.error or event.access.write is None:
        return ""
    return f"{event.access.write} ({event.access.verb})"


def _failing_statement(c: _Context, request: int) -> int | None:
    """The statement that failed: one that raised, else an UPDATE/DELETE that matched no
    row, else the request's last statement."""
    sql = [e for e in c.of(request) if e.step.kind == "sql"]
    raised = [e for e in sql if e.step.error]
    if raised:
        return raised[0].position
    missed = [e for e in sql if e.step.rowcount == 0 and e.access.verb in ("UPDATE", "DELETE")]
    if missed:
        return missed[0].position
    return sql[-1].position if sql else None


def _culprit_tables(c: _Context, own: Sequence[_Event]) -> set[str]:
    """The tables most likely behind a request's error: the one its failing statement
    writes, else the ones it wrote (a flush that matched no row; a stamp every request
    made is not one), else all it touched. Writers of a table the request merely read
    (the user a login loads) are bystanders, and stay out of the fingerprint."""
    failed = {e.access.write for e in own if e.access.write and e.step.error}
    wrote = {e.access.write for e in own if e.access.write and e.step.text not in c.stamps}
    return failed or wrote or {t for e in own for t in e.tables}


def _concurrent_writers(c: _Context, request: int, tables: set[str]) -> list[int]:
    """Requests that committed a write to one of ``tables`` while ``request`` ran."""
    own = c.of(request)
    if not own:
        return []
    start, end = own[0].position, own[-1].position
    return sorted(
        w
        for w, commit in c.commits.items()
        if w != request and start < commit < end and c.written(w) & tables
    )


def _serial_failures(c: _Context) -> list[Finding]:
    findings = []
    seen: set[tuple[str, str]] = set()
    for i, response in c.verdict.serial_failures:
        endpoint = c.scenario.requests[i].endpoint
        exception = response.exception_type or f"HTTP {response.status}"
        if (endpoint, exception) in seen:
            continue
        seen.add((endpoint, exception))
        facts = [
            f"run alone, {label(i)} answered {response.status}"
            + (f" with {_clip(response.error.rstrip('.'), 200)}" if response.error else "")
            + "."
        ]
        however = "This is a plain bug, not a race: it happens without any concurrency."
        findings.append(c.finding("serial-failure", (i,), facts, however, exception=exception))
    return findings
