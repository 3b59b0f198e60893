"""Turn a verdict and its trace into classified, explained findings (DESIGN.md §6).

The kind of a finding is decided from evidence — the responses, the final rows, the
trace — never from the target's name. Each finding carries an explanation as data
(who read what before whom, the closest serial order, the first difference) that
renders as text: "Let … Then … However … : a contradiction!".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .model import Execution, Response, Scenario, Step
from .oracle import Difference, Verdict
from .sql import Access, access

KINDS = (
    "concurrency-error",
    "lost-update",
    "duplicate-insert",
    "limit-overrun",
    "write-skew",
    "stale-read",
    "hang",
    "leaked-transaction",
    "wrong-engine",
    "serial-failure",
)
RACES = frozenset(KINDS[:6])
TITLES = {
    "concurrency-error": "Error only under concurrency",
    "lost-update": "Lost update",
    "duplicate-insert": "Duplicate insert",
    "limit-overrun": "Limit overrun",
    "write-skew": "Write skew",
    "stale-read": "Stale read",
    "hang": "The execution has hung",
    "leaked-transaction": "Transaction left open",
    "wrong-engine": "Statement on the wrong engine",
    "serial-failure": "Fails even when run alone",
}


def label(index: int) -> str:
    return f"R{index + 1}"


@dataclass(frozen=True)
class Explanation:
    """Why no serial order explains what happened: data first, text second."""

    let: tuple[tuple[str, str], ...]  # (R1, "PUT /user/name {...}")
    facts: tuple[str, ...]  # "R1 read users at step 3, before R2 committed at step 9"
    however: str  # the observation no serial order makes
    order: tuple[int, ...] = ()  # the closest serial order
    difference: Difference | None = None  # the first difference from it
    conflicts: tuple[int, ...] = ()  # trace positions (from 0) of the conflicting steps

    def text(self) -> str:
        lines = ["Let " + ", ".join(f"{name} = {what}" for name, what in self.let) + "."]
        if self.facts:
            lines.append("Then:")
            lines += [f"  {fact}" for fact in self.facts]
        lines.append(self.however)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "let": [list(pair) for pair in self.let],
            "facts": list(self.facts),
            "however": self.however,
            "order": list(self.order),
            "difference": self.difference.to_json() if self.difference else None,
            "conflicts": list(self.conflicts),
            "text": self.text(),
        }


@dataclass(frozen=True)
class Finding:
    kind: str
    endpoints: tuple[str, ...]  # the endpoints involved, sorted
    exception: str  # the exception type, for errors
    scenario: Scenario
    execution: Execution
    verdict: Verdict | None
    explanation: Explanation
    involved: tuple[int, ...] = ()  # the requests involved
    flaky: str = ""  # "k/N" when the minimal example did not always reproduce
    found_after: int = 0  # examples run before it was first seen
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.kind, self.endpoints, self.exception)

    @property
    def is_race(self) -> bool:
        return self.kind in RACES

    def with_(self, **changes: Any) -> Finding:
        return replace(self, **changes)


def fingerprint(kind: str, endpoints: Sequence[str], exception: str = "") -> str:
    """Kind + endpoints + exception type: the same bug found twice is one finding."""
    text = json.dumps([kind, sorted(set(endpoints)), exception])
    return f"{kind}:{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def priority(finding: Finding) -> int:
    return KINDS.index(finding.kind)


def classify(
    scenario: Scenario, execution: Execution, verdict: Verdict, prefix_tables: bool = False
) -> list[Finding]:
    """Every finding one execution shows, most important first."""
    findings: list[Finding] = []
    lets = _lets(scenario)
    if execution.hang is not None:
        findings.append(_hang(scenario, execution, verdict, lets))
    if verdict.status == "violation":
        findings.append(_race(scenario, execution, verdict, lets))
    findings += _leaks(scenario, execution, verdict, lets)
    findings += _wrong_engine(scenario, execution, verdict, lets)
    findings += _serial_failures(scenario, execution, verdict, lets)
    findings.sort(key=priority)
    return findings


# -- the trace, read as accesses ---------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    position: int  # in the trace, from 0
    step: Step
    access: Access


def _events(trace: Sequence[Step]) -> list[_Event]:
    events = []
    for position, step in enumerate(trace):
        if step.kind == "sql":
            prefix = f"{step.database}." if step.database and step.database != "default" else ""
            events.append(_Event(position, step, access(step.text, step.params, "")))
            del prefix
        elif step.kind in ("commit", "rollback"):
            events.append(
                _Event(position, step, Access(frozenset(), None, step.kind.upper(), None, ()))
            )
    return events


def _commits(events: Sequence[_Event]) -> dict[int, int]:
    """request -> position of its last commit that did not fail."""
    commits: dict[int, int] = {}
    for e in events:
        if e.access.verb == "COMMIT" and not e.step.error:
            commits[e.step.request] = e.position
    return commits


def _step_text(position: int, step: Step) -> str:
    what = " ".join(step.text.split())
    if len(what) > 70:
        what = what[:69] + "…"
    return f"step {position + 1} ({what})" if what else f"step {position + 1}"


# -- races -------------------------------------------------------------------------------


def _race(
    scenario: Scenario, execution: Execution, verdict: Verdict, lets: tuple[tuple[str, str], ...]
) -> Finding:
    reference = verdict.reference
    assert reference is not None
    events = _events(execution.trace)
    commits = _commits(events)
    differences = verdict.differences
    first = differences[0] if differences else None
    order_text = " → ".join(label(i) for i in verdict.order) or "(no request)"
    closest = f"the closest serial order is {order_text}"

    # an error only concurrency causes
    for i, response in enumerate(execution.responses):
        expected = reference.responses[i]
        if (
            response is not None
            and response.status >= 500
            and i not in verdict.aborted
            and (expected is None or expected.status < 500)
        ):
            others = _writers_of(events, _tables_touched(events, i), exclude=i)
            involved = tuple(sorted({i, *others}))
            exception = response.exception_type or f"HTTP {response.status}"
            facts = list(_interleaving_facts(events, commits, i, others))
            facts.append(
                f"{label(i)} answered {response.status}"
                + (f" with {response.error}" if response.error else "")
            )
            serial = expected.status if expected else "nothing"
            however = (
                f"However, run alone in any order {label(i)} answers {serial}: the error "
                f"happens only when the requests overlap ({closest}): a contradiction!"
            )
            return _finding(
                "concurrency-error",
                scenario,
                execution,
                verdict,
                lets,
                involved,
                exception,
                facts,
                however,
                first,
                _conflict_positions(events, involved),
            )

    table_diffs = [d for d in differences if d.where in ("cell", "extra-row", "missing-row")]
    if table_diffs:
        lost = _lost_update(events, commits, table_diffs)
        if lost is not None:
            victim, published, writer, read_at, write_at, diff = lost
            facts = [
                f"{label(writer)} read {diff.table} at "
                f"{_step_text(read_at, execution.trace[read_at])}, "
                f"before {label(victim)} committed at step {published + 1};",
                f"{label(writer)} wrote {diff.table} at "
                f"{_step_text(write_at, execution.trace[write_at])}, after that commit;",
                f"so {label(writer)} set {diff.table}[{diff.key}].{diff.column} = "
                f"{_json(diff.actual)} from a state without {label(victim)}'s committed "
                f"write to it: {label(victim)}'s update is lost.",
            ]
            however = (
                f"However, in every serial order {diff.table}[{diff.key}].{diff.column} ends as "
                f"{_json(diff.expected)} ({closest}): a contradiction!"
            )
            return _finding(
                "lost-update",
                scenario,
                execution,
                verdict,
                lets,
                tuple(sorted({victim, writer})),
                "",
                facts,
                however,
                diff,
                (read_at, published, write_at),
            )
        duplicate = _duplicate_insert(
            events, execution, table_diffs, verdict.consulted or (reference,)
        )
        if duplicate is not None:
            table, inserters, checks = duplicate
            facts = [
                f"{label(i)} checked {table} at {_step_text(p, execution.trace[p])}"
                + (
                    f", before {label(j)} committed at step {commits[j] + 1}"
                    if j in commits
                    else ""
                )
                + ";"
                for i, p, j in checks
            ]
            facts.append(
                f"then each of {', '.join(label(i) for i in inserters)} inserted "
                f"the same row into {table}."
            )
            however = (
                f"However, every serial order inserts it once ({closest}), here {table} holds "
                f"it {len(inserters)} times: a contradiction!"
            )
            return _finding(
                "duplicate-insert",
                scenario,
                execution,
                verdict,
                lets,
                tuple(sorted(inserters)),
                "",
                facts,
                however,
                next((d for d in table_diffs if d.where == "extra-row"), first),
                tuple(p for _, p, _ in checks),
            )
        skew = _write_skew(events, commits)
        if skew is not None:
            a, b, facts_data = skew
            facts = [
                f"{label(x)} read {table} at {_step_text(p, execution.trace[p])}, before "
                f"{label(y)} committed its write to it at step {commits[y] + 1};"
                for x, y, table, p in facts_data
            ]
            facts.append(
                f"{label(a)} and {label(b)} wrote different rows, so neither "
                f"overwrote the other, yet each acted on a state without the other."
            )
            however = (
                f"However, no serial order reaches these rows: {_first(first)} "
                f"({closest}): a contradiction!"
            )
            return _finding(
                "write-skew",
                scenario,
                execution,
                verdict,
                lets,
                tuple(sorted({a, b})),
                "",
                facts,
                however,
                first,
                tuple(p for *_, p in facts_data),
            )
        involved = _overrun_involved(events, execution, verdict, table_diffs)
        facts = list(_interleaving_facts(events, commits, involved[0], involved[1:]))
        refused = [d for d in differences if d.where == "response"]
        for d in refused:
            facts.append(
                f"{label(d.request or 0)} was let through: it answered "
                f"{_status(d.actual)} where, serially, it answers {_status(d.expected)};"
            )
        however = (
            f"However, no serial order lets them all through: {_first(first)} "
            f"({closest}): a contradiction!"
        )
        return _finding(
            "limit-overrun",
            scenario,
            execution,
            verdict,
            lets,
            involved,
            "",
            facts,
            however,
            first,
            _conflict_positions(events, involved),
        )

    # only responses differ: a response no serial order produces
    stale = next((d for d in differences if d.where in ("response", "observer")), first)
    assert stale is not None
    reader = stale.request if stale.where == "response" and stale.request is not None else None
    readers = [reader] if reader is not None else list(range(len(scenario.requests)))
    writers = sorted({e.step.request for e in events if e.access.write} - set(readers))
    involved = tuple(sorted(set(readers) | set(writers)))
    facts = list(_interleaving_facts(events, commits, readers[0], writers))
    who = label(reader) if reader is not None else f"observer {stale.request}"
    facts.append(f"{who} answered {_json(stale.actual)};")
    however = (
        f"However, no serial order produces that answer: serially it is "
        f"{_json(stale.expected)} ({closest}): a contradiction!"
    )
    return _finding(
        "stale-read",
        scenario,
        execution,
        verdict,
        lets,
        involved,
        "",
        facts,
        however,
        stale,
        _conflict_positions(events, involved),
    )


def _lost_update(
    events: Sequence[_Event], commits: dict[int, int], diffs: Sequence[Difference]
) -> tuple[int, int, int, int, int, Difference] | None:
    """A committed write missing from the final rows: another request read the row before
    that write committed and wrote the same column after it. The overwrite that left the
    final value is the preferred explanation; if a later request built on the damaged
    value (so no overwrite survives as it was), the first such overwrite is named."""
    cells = [d for d in diffs if d.where == "cell"]
    if not cells:
        return None
    candidates = list(_overwrites(events, commits, cells))
    for exact in (True, False):
        for victim, visible, writer, read, write, cell in candidates:
            sets = dict(write.access.sets)
            if not exact or not sets or _same(sets.get(cell.column, _MISSING), cell.actual):
                return victim, visible, writer, read.position, write.position, cell
    return None


def _overwrites(
    events: Sequence[_Event], commits: dict[int, int], cells: Sequence[Difference]
) -> Iterator[tuple[int, int, int, _Event, _Event, Difference]]:
    """(victim, the commit that published its write, writer, the writer's read, its
    overwrite, the cell) in trace order. A
    request may commit several times: a write counts from the commit that published it,
    and an overwrite needs a commit of its own after it."""
    published = _all_commits(events)
    for victim in sorted(commits, key=commits.__getitem__):
        for w in events:
            if w.step.request != victim or not w.access.write:
                continue
            visible = next((c for c in published[victim] if c > w.position), None)
            if visible is None:
                continue  # never committed
            table = w.access.write
            victim_columns = dict(w.access.sets)
            for writer in sorted(set(commits) - {victim}):
                read = next(
                    (
                        e
                        for e in events
                        if e.step.request == writer
                        and table in e.access.reads
                        and e.position < visible
                    ),
                    None,
                )
                if read is None:
                    continue
                for x in events:
                    if not (
                        x.step.request == writer
                        and x.access.write == table
                        and x.position > visible
                        and any(c > x.position for c in published[writer])
                        and (w.access.key is None or x.access.key in (None, w.access.key))
                    ):
                        continue
                    for cell in cells:
                        if cell.table.rsplit(".", 1)[-1] != table.rsplit(".", 1)[-1]:
                            continue
                        if victim_columns and cell.column not in victim_columns:
                            continue  # the victim did not write this column
                        yield victim, visible, writer, read, x, cell


def _all_commits(events: Sequence[_Event]) -> dict[int, list[int]]:
    """request -> positions of its commits that did not fail, in order."""
    published: dict[int, list[int]] = {}
    for e in events:
        if e.access.verb == "COMMIT" and not e.step.error:
            published.setdefault(e.step.request, []).append(e.position)
    return published


def _duplicate_insert(
    events: Sequence[_Event],
    execution: Execution,
    diffs: Sequence[Difference],
    serial: Sequence[Execution],
) -> tuple[str, list[int], list[tuple[int, int, int]]] | None:
    """Extra rows that repeat another row, inserted by requests that each checked the table
    first without seeing the other's insert — where serially the app keeps such a row
    unique (if a serial run holds the same row twice, repeats are allowed and too many
    of them is a limit overrun instead)."""
    commits = _commits(events)
    for diff in diffs:
        if diff.where != "extra-row" or not isinstance(diff.actual, dict):
            continue
        table = diff.table
        if _copies(diff.actual, execution.tables.get(table, ())) < 2:
            continue  # the extra row repeats no other row
        if any(_copies(diff.actual, s.tables.get(table, ())) >= 2 for s in serial):
            continue  # serially the app allows such repeats
        bare = table.rsplit(".", 1)[-1]
        inserters = sorted(
            {
                e.step.request
                for e in events
                if e.access.verb in ("INSERT", "REPLACE") and e.access.write == bare
            }
        )
        if len(inserters) < 2:
            continue
        checks = []
        for i in inserters:
            first_insert = min(
                e.position for e in events if e.step.request == i and e.access.write == bare
            )
            check = [
                e
                for e in events
                if e.step.request == i and bare in e.access.reads and e.position < first_insert
            ]
            if check:
                other = next((j for j in inserters if j != i), i)
                checks.append((i, check[-1].position, other))
        if len(checks) >= 2 and all(p < commits.get(j, 1 << 30) for _, p, j in checks):
            return table, inserters, checks
    return None


def _copies(row: dict[str, Any], rows: Sequence[Sequence[Any]]) -> int:
    """How many of ``rows`` (raw, in column order) equal ``row`` (normalized, by column),
    generated keys (canonical "<new …>" names) aside."""
    values = list(row.values())
    keep = [i for i, v in enumerate(values) if not (isinstance(v, str) and v.startswith("<new "))]
    return sum(
        1
        for other in rows
        if len(other) == len(values) and all(_same(other[i], values[i]) for i in keep)
    )


def _write_skew(
    events: Sequence[_Event], commits: dict[int, int]
) -> tuple[int, int, list[tuple[int, int, str, int]]] | None:
    """Two committed requests that wrote disjoint rows, each after reading what the other
    wrote before the other committed."""
    writes: dict[int, set[tuple[str, Any]]] = {}
    for e in events:
        if e.access.write and e.step.request in commits:
            writes.setdefault(e.step.request, set()).add((e.access.write, e.access.key))
    for a in sorted(writes):
        for b in sorted(writes):
            if b <= a:
                continue
            if any(k is None for _, k in writes[a] | writes[b]):
                continue  # inserts or unknown rows: cannot tell the rows apart
            if writes[a] & writes[b]:
                continue
            facts = []
            for x, y in ((a, b), (b, a)):
                tables = {t for t, _ in writes[y]}
                read = next(
                    (
                        e
                        for e in events
                        if e.step.request == x
                        and e.access.reads & tables
                        and e.position < commits[y]
                    ),
                    None,
                )
                if read is None:
                    break
                facts.append((x, y, sorted(read.access.reads & tables)[0], read.position))
            else:
                return a, b, facts
    return None


def _overrun_involved(
    events: Sequence[_Event], execution: Execution, verdict: Verdict, diffs: Sequence[Difference]
) -> tuple[int, ...]:
    tables = {d.table.rsplit(".", 1)[-1] for d in diffs}
    writers = {e.step.request for e in events if e.access.write in tables}
    responders = {
        d.request for d in verdict.differences if d.where == "response" and d.request is not None
    }
    involved = sorted(writers | responders) or list(range(len(execution.responses)))
    return tuple(involved)


def _tables_touched(events: Sequence[_Event], request: int) -> set[str]:
    tables: set[str] = set()
    for e in events:
        if e.step.request == request:
            tables |= e.access.reads
            if e.access.write:
                tables.add(e.access.write)
    return tables


def _writers_of(events: Sequence[_Event], tables: set[str], exclude: int) -> list[int]:
    return sorted(
        {e.step.request for e in events if e.access.write in tables and e.step.request != exclude}
    )


def _interleaving_facts(
    events: Sequence[_Event], commits: dict[int, int], reader: int, writers: Sequence[int]
) -> list[str]:
    """What the reader did around the writers' commits."""
    facts = []
    for w in writers:
        if w not in commits or w == reader:
            continue
        touched = {
            t
            for e in events
            if e.step.request == w
            for t in ([e.access.write] if e.access.write else [])
        }
        before = [
            e
            for e in events
            if e.step.request == reader
            and e.position < commits[w]
            and (e.access.reads | {e.access.write or ""}) & touched
        ]
        after = [
            e
            for e in events
            if e.step.request == reader
            and e.position > commits[w]
            and (e.access.reads | {e.access.write or ""}) & touched
        ]
        if before and after:
            facts.append(
                f"{label(reader)} used {', '.join(sorted(touched))} at step "
                f"{before[0].position + 1}, before {label(w)} committed at step "
                f"{commits[w] + 1}, and again at step {after[0].position + 1}, after it;"
            )
        elif before:
            facts.append(
                f"{label(reader)} used {', '.join(sorted(touched))} at step "
                f"{before[0].position + 1}, before {label(w)} committed at step {commits[w] + 1};"
            )
        elif after:
            facts.append(
                f"{label(reader)} used {', '.join(sorted(touched))} at step "
                f"{after[0].position + 1}, after {label(w)} committed at step {commits[w] + 1};"
            )
    return facts


def _conflict_positions(events: Sequence[_Event], involved: Sequence[int]) -> tuple[int, ...]:
    """Steps of different requests that touch a table another of them writes."""
    written = {e.access.write for e in events if e.access.write and e.step.request in involved}
    return tuple(
        e.position
        for e in events
        if e.step.request in involved
        and ((e.access.reads | {e.access.write}) & written or e.access.verb == "COMMIT")
    )


# -- hygiene and serial failures ---------------------------------------------------------


def _hang(
    scenario: Scenario, execution: Execution, verdict: Verdict, lets: tuple[tuple[str, str], ...]
) -> Finding:
    hang = execution.hang
    assert hang is not None
    facts = [f"{label(i)} was stuck: {why};" for i, why in sorted(hang.blocked.items())]
    facts += [f"{label(i)} waited to run: {what};" for i, what in sorted(hang.waiting.items())]
    involved = tuple(sorted(set(hang.blocked) | set(hang.waiting)))
    however = (
        f"However, no request could make progress for {hang.seconds:g} s: the execution has hung."
    )
    return _finding(
        "hang", scenario, execution, verdict, lets, involved, "", facts, however, None, ()
    )


def _leaks(
    scenario: Scenario, execution: Execution, verdict: Verdict, lets: tuple[tuple[str, str], ...]
) -> list[Finding]:
    findings = []
    seen: set[str] = set()
    for leak in execution.leaks:
        if leak.request < 0 or leak.request >= len(scenario.requests):
            continue
        endpoint = scenario.requests[leak.request].endpoint
        if endpoint in seen:
            continue
        seen.add(endpoint)
        state = "inside an open transaction" if leak.in_transaction else "checked out"
        facts = [
            f"{label(leak.request)} sent its response while its connection {leak.connection} "
            f"to {leak.database} was still {state};",
        ]
        if leak.last_statement:
            facts.append(f"its last statement there was: {leak.last_statement}")
        however = (
            "However, a request must give its connections back before it answers: the next "
            "request on this worker thread inherits the open session (and its snapshot), and a "
            "schema change waits behind it."
        )
        findings.append(
            _finding(
                "leaked-transaction",
                scenario,
                execution,
                verdict,
                lets,
                (leak.request,),
                "",
                facts,
                however,
                None,
                (),
            )
        )
    return findings


def _wrong_engine(
    scenario: Scenario, execution: Execution, verdict: Verdict, lets: tuple[tuple[str, str], ...]
) -> list[Finding]:
    findings = []
    seen: set[str] = set()
    for use in execution.wrong_engine:
        if use.request >= len(scenario.requests):
            continue
        endpoint = scenario.requests[use.request].endpoint
        if endpoint in seen:
            continue
        seen.add(endpoint)
        position = next(
            (
                p
                for p, s in enumerate(execution.trace)
                if s.request == use.request and s.number == use.step
            ),
            None,
        )
        facts = [
            f"{label(use.request)} was served by app {use.app!r}, whose engines use "
            f"{', '.join(use.expected) or 'no database'};",
            f"its step {use.step} ran on database {use.database!r}"
            + (
                f": {' '.join(execution.trace[position].text.split())[:100]}"
                if position is not None
                else ""
            )
            + ";",
        ]
        however = (
            "However, a request may only use its own app's engines: the statement ran "
            "on another app's database."
        )
        findings.append(
            _finding(
                "wrong-engine",
                scenario,
                execution,
                verdict,
                lets,
                (use.request,),
                "",
                facts,
                however,
                None,
                (position,) if position is not None else (),
            )
        )
    return findings


def _serial_failures(
    scenario: Scenario, execution: Execution, verdict: Verdict, lets: tuple[tuple[str, str], ...]
) -> list[Finding]:
    findings = []
    seen: set[tuple[str, str]] = set()
    for i, response in verdict.serial_failures:
        endpoint = scenario.requests[i].endpoint
        exception = response.exception_type or f"HTTP {response.status}"
        if (endpoint, exception) in seen:
            continue
        seen.add((endpoint, exception))
        facts = [
            f"run alone, {label(i)} answered {response.status}"
            + (f" with {response.error}" if response.error else "")
            + "."
        ]
        however = "This is a plain bug, not a race: it happens without any concurrency."
        findings.append(
            _finding(
                "serial-failure",
                scenario,
                execution,
                verdict,
                lets,
                (i,),
                exception,
                facts,
                however,
                None,
                (),
            )
        )
    return findings


# -- building ----------------------------------------------------------------------------


def _finding(
    kind: str,
    scenario: Scenario,
    execution: Execution,
    verdict: Verdict,
    lets: tuple[tuple[str, str], ...],
    involved: Sequence[int],
    exception: str,
    facts: Sequence[str],
    however: str,
    difference: Difference | None,
    conflicts: Sequence[int],
) -> Finding:
    endpoints = tuple(
        sorted({scenario.requests[i].endpoint for i in involved if i < len(scenario.requests)})
    )
    return Finding(
        kind=kind,
        endpoints=endpoints,
        exception=exception,
        scenario=scenario,
        execution=execution,
        verdict=verdict,
        explanation=Explanation(
            let=lets,
            facts=tuple(facts),
            however=however,
            order=verdict.order,
            difference=difference,
            conflicts=tuple(sorted(set(conflicts))),
        ),
        involved=tuple(involved),
    )


def _lets(scenario: Scenario) -> tuple[tuple[str, str], ...]:
    return tuple((label(i), r.describe()) for i, r in enumerate(scenario.requests))


_MISSING = object()


def _first(difference: Difference | None) -> str:
    return difference.describe(label) if difference is not None else ""


def _same(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _status(value: Any) -> str:
    if isinstance(value, dict) and "status" in value:
        return str(value["status"])
    return _json(value)


def responses_text(responses: Sequence[Response | None]) -> list[str]:
    return [
        f"{label(i)}: {r.status}" if r else f"{label(i)}: not sent" for i, r in enumerate(responses)
    ]
