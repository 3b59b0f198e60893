"""Turn a verdict and its trace into classified, explained findings (DESIGN.md §6).

The kind of a finding is decided from evidence — the responses, the final rows, the
trace — never from the target's name:

* ``concurrency-error``: a request answered 5xx, and no serial reference of the same
  requests raised that exception in that request;
* ``lost-update``: a cell ends with the value a request wrote with an UPDATE of that
  row, after another request had committed its own UPDATE of the same column, and
  the writer had read the table before that commit;
* ``duplicate-insert``: the final rows hold a row twice, inserted by requests that
  each looked for it in that table before the other's insert was committed;
* ``write-skew``: two committed requests changed *different* rows, each after
  reading a table the other was about to change;
* ``limit-overrun``: any other final rows no serial order reaches (typically a
  check on a count or a stock that every request passed);
* ``stale-read``: the rows are fine, but a response is one no serial order gives;
* the hygiene kinds (``hang``, ``leaked-transaction``, ``wrong-engine``) come from
  the instrumentation, and ``serial-failure`` from the serial references: a 5xx a
  request also gives alone is a plain bug, never a race.

Each finding names only the requests involved: the fingerprint (kind + their
endpoints + exception type) is what tells one bug from another, and what lets
shrinking delete a request that only stood by. Each carries an explanation as data
(who read what before whom, the closest serial order, the first difference) that
renders as text: "Let … Then … However … : a contradiction!".
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .model import Execution, Hang, Response, Scenario, Step
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
    context = _Context(scenario, execution, verdict)
    findings: list[Finding] = []
    if execution.hang is not None:
        findings.append(_hang(context, execution.hang))
    if execution.schema_change is not None:
        findings += _blocked_schema_change(context, execution.schema_change)
    if verdict.status == "violation":
        race = _race(context)
        if race is not None:
            findings.append(race)
    findings += _leaks(context)
    findings += _wrong_engine(context)
    findings += _serial_failures(context)
    findings.sort(key=priority)
    return findings


# -- the trace, read as accesses ---------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    position: int  # in the trace, from 0
    step: Step
    access: Access

    @property
    def request(self) -> int:
        return self.step.request

    @property
    def tables(self) -> frozenset[str]:
        """Every table the statement touches, read or written."""
        return self.access.reads | ({self.access.write} if self.access.write else set())


class _Context:
    """One execution, its verdict, and its trace read as table accesses."""

    def __init__(self, scenario: Scenario, execution: Execution, verdict: Verdict) -> None:
        self.scenario = scenario
        self.execution = execution
        self.verdict = verdict
        self.trace = execution.trace
        self.lets = tuple((label(i), r.describe()) for i, r in enumerate(scenario.requests))
        self.events: list[_Event] = []
        for position, step in enumerate(execution.trace):
            if step.kind == "sql":
                self.events.append(_Event(position, step, access(step.text, step.params)))
            elif step.kind in ("commit", "rollback"):
                ends = Access(frozenset(), None, step.kind.upper(), None, ())
                self.events.append(_Event(position, step, ends))
        # request -> positions of its COMMITs that did not fail, and the last of them
        self.published: dict[int, list[int]] = {}
        for e in self.events:
            if e.access.verb == "COMMIT" and not e.step.error:
                self.published.setdefault(e.request, []).append(e.position)
        self.commits = {r: positions[-1] for r, positions in self.published.items()}
        # trace position -> where the transaction of that statement began: what a read
        # sees is at best that old (a REPEATABLE READ snapshot is taken there)
        self._began: dict[int, int] = {}
        open_since: dict[tuple[int, int], int] = {}
        for e in self.events:
            where = (e.request, e.step.connection)
            if e.step.connection == 0:  # a cache or Redis command: no transaction
                continue
            if e.access.verb in ("COMMIT", "ROLLBACK"):
                open_since.pop(where, None)
                continue
            self._began[e.position] = open_since.setdefault(where, e.position)
        # a 5xx that a serial run gives too is a serial failure, never evidence of a race
        self.serial_errors = {
            i
            for i, r in enumerate(execution.responses)
            if r is not None
            and r.status >= 500
            and (i, r.exception_type or r.status)
            in {(j, f.exception_type or f.status) for j, f in verdict.serial_failures}
        }
        self.differences = tuple(
            d
            for d in verdict.differences
            if not (d.where == "response" and d.request in self.serial_errors)
        )

    def of(self, request: int) -> list[_Event]:
        return [e for e in self.events if e.request == request]

    def began(self, read: _Event) -> int:
        """Where the transaction of ``read`` began: the oldest state it may have seen."""
        return self._began.get(read.position, read.position)

    def saw_before(self, read: _Event, commit: int) -> bool:
        """Whether ``read`` may have seen the state before ``commit``: it ran before it,
        or in a transaction begun before it (a snapshot from then)."""
        return self.began(read) < commit

    def when(self, read: _Event, commit: int) -> str:
        """ "at step 7 (…)", and the older snapshot if that is what makes it stale."""
        where = self.step(read.position)
        if read.position > commit:
            return f"at {where}, in a transaction begun at step {self.began(read) + 1}"
        return f"at {where}"

    def took_effect_after(self, e: _Event, position: int, holder: int) -> bool:
        """Whether a statement took effect after trace position ``position``, a COMMIT of
        request ``holder``: it ran after it, or it was granted before it but waited in the
        database for a lock until that COMMIT (the holder's first one after it) released
        it, and then succeeded."""
        if e.position > position:
            return True
        if not e.step.waited or e.step.error:
            return False
        release = next(
            (
                end.position
                for end in self.of(holder)
                if end.position > e.position and end.access.verb in ("COMMIT", "ROLLBACK")
            ),
            None,
        )
        return release == position

    def visible(self, write: _Event) -> int | None:
        """The position of the commit that published ``write`` (a request may commit
        several times), or None if it never was."""
        return next((p for p in self.published.get(write.request, ()) if p > write.position), None)

    def written(self, request: int) -> set[str]:
        """Tables the request wrote and committed."""
        commit = self.commits.get(request)
        if commit is None:
            return set()
        return {
            e.access.write
            for e in self.of(request)
            if e.access.write and e.position < commit and not e.step.error
        }

    def step(self, position: int) -> str:
        """ "step 7 (UPDATE pages SET …)": a trace position, as the timeline numbers it."""
        what = " ".join(self.trace[position].text.split())
        if len(what) > 70:
            what = what[:69] + "…"
        return f"step {position + 1} ({what})" if what else f"step {position + 1}"

    def closest(self) -> str:
        return f"the closest serial order is {_order(self.verdict.order)}"

    def finding(
        self,
        kind: str,
        involved: Iterable[int],
        facts: Sequence[str],
        however: str,
        *,
        exception: str = "",
        difference: Difference | None = None,
        conflicts: Iterable[int] = (),
    ) -> Finding:
        requests = self.scenario.requests
        chosen = tuple(sorted({i for i in involved if 0 <= i < len(requests)}))
        return Finding(
            kind=kind,
            endpoints=tuple(sorted({requests[i].endpoint for i in chosen})),
            exception=exception,
            scenario=self.scenario,
            execution=self.execution,
            verdict=self.verdict,
            explanation=Explanation(
                let=self.lets,
                facts=tuple(facts),
                however=however,
                order=self.verdict.order,
                difference=difference,
                conflicts=tuple(sorted(set(conflicts))),
            ),
            involved=chosen,
        )

    def around(self, reader: int, writer: int, tables: set[str]) -> tuple[str, list[int]]:
        """How ``reader`` used ``tables`` around ``writer``'s commit, as a fact, and the
        positions it cites ("" when the reader did not touch them)."""
        commit = self.commits.get(writer)
        if commit is None:
            return "", []
        used = [e for e in self.of(reader) if e.tables & tables and e.access.verb != "COMMIT"]
        before = next((e for e in used if e.position < commit), None)
        after = next((e for e in used if e.position > commit), None)

        def did(e: _Event) -> str:
            verb = "wrote" if e.access.write else "read"
            return f"{verb} {', '.join(sorted(e.tables & tables))}"

        committed = f"{label(writer)} committed at step {commit + 1}"
        if before is not None and after is not None:
            again = " again" if did(before) == did(after) else ""
            text = (
                f"{label(reader)} {did(before)} at step {before.position + 1}, before "
                f"{committed}, and {did(after)}{again} at step {after.position + 1}, after it;"
            )
            return text, [before.position, commit, after.position]
        if before is not None:
            where = self.step(before.position)
            text = f"{label(reader)} {did(before)} at {where}, before {committed};"
            return text, [before.position, commit]
        if after is not None:
            text = (
                f"{label(reader)} {did(after)} at {self.step(after.position)}, after {committed};"
            )
            return text, [commit, after.position]
        return "", []


# -- races -------------------------------------------------------------------------------


def _race(c: _Context) -> Finding | None:
    differences = c.differences
    if not differences:
        return None  # only 5xx answers that serial runs give too: serial failures
    return (
        _concurrency_error(c)
        or _lost_update(c)
        or _duplicate_insert(c)
        or _write_skew(c)
        or _limit_overrun(c)
        or (_stale_read(c) if differences else None)
    )


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
        touched = _culprit_tables(c.of(i))
        others = _concurrent_writers(c, i, touched)
        facts: list[str] = []
        cited: list[int] = []
        for w in others:
            fact, positions = c.around(i, w, c.written(w) & touched)
            if fact:
                facts.append(fact)
                cited += positions
        failed = _failing_statement(c, i)
        if failed is not None:
            step = c.trace[failed]
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
        )
    return None


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


def _culprit_tables(own: Sequence[_Event]) -> set[str]:
    """The tables most likely behind a request's error: the one its failing statement
    writes, else the ones it wrote (a flush that matched no row), else all it touched.
    Writers of a table the request merely read (the user a login loads) are bystanders,
    and stay out of the fingerprint."""
    failed = {e.access.write for e in own if e.access.write and e.step.error}
    wrote = {e.access.write for e in own if e.access.write}
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


def _lost_update(c: _Context) -> Finding | None:
    """A cell holds a value a late UPDATE wrote over another request's committed one.

    The writer read the table before the victim committed its UPDATE of that column
    of that row, and after the commit set the column to a value it computed (a
    parameter, not an expression like ``stock - 1`` that builds on the row as it is
    then). The overwrite whose value is the final one is the preferred explanation;
    if a later request built on the damaged value, the first overwrite is named."""
    cells = [d for d in c.differences if d.where == "cell" and not _is_new_key(d.key)]
    for exact in (True, False):
        for cell in cells:
            found = _overwrite(c, cell, exact)
            if found is not None:
                return _lost_update_finding(c, cell, *found)
    return None


def _overwrite(
    c: _Context, cell: Difference, exact: bool
) -> tuple[int, int, int, _Event, _Event, _Event] | None:
    """(victim, the commit that published its write, writer, the writer's read, the
    victim's write, the overwrite). A write counts from the commit that published it,
    and an overwrite needs a commit of its own after it."""
    bare = _bare(cell.table)
    for victim in sorted(c.commits, key=c.commits.__getitem__):
        for lost in c.of(victim):
            visible = c.visible(lost)
            if not (
                visible is not None
                and lost.access.verb == "UPDATE"
                and lost.access.write == bare
                and lost.step.rowcount != 0
                and _same_row(lost.access.key, cell.key)
                and (not lost.access.assigned or cell.column in lost.access.assigned)
            ):
                continue
            for writer in sorted(c.commits):
                if writer == victim:
                    continue
                read = next(
                    (
                        e
                        for e in c.of(writer)
                        if bare in e.access.reads and c.saw_before(e, visible)
                    ),
                    None,
                )
                if read is None:
                    continue
                for e in c.of(writer):
                    sets = dict(e.access.sets)
                    if (
                        e.access.verb == "UPDATE"
                        and e.access.write == bare
                        and c.took_effect_after(e, visible, victim)
                        and c.visible(e) is not None
                        and _same_row(e.access.key, cell.key)
                        and cell.column in sets
                        and (not exact or _same(sets[cell.column], cell.actual))
                    ):
                        return victim, visible, writer, read, lost, e
    return None


def _lost_update_finding(
    c: _Context,
    cell: Difference,
    victim: int,
    victim_commit: int,
    writer: int,
    read: _Event,
    lost: _Event,
    wrote: _Event,
) -> Finding:
    bare = _bare(cell.table)
    where = f"{cell.table}[{_key_text(cell.key)}].{cell.column}"
    value = dict(wrote.access.sets)[cell.column]
    facts = [
        f"{label(writer)} read {bare} {c.when(read, victim_commit)}, "
        f"before {label(victim)} committed at step {victim_commit + 1};",
        f"{label(victim)} had written {cell.column} at {c.step(lost.position)};",
        f"{label(writer)} wrote {bare} at {c.step(wrote.position)}, "
        + (
            "after that commit, "
            if wrote.position > victim_commit
            else f"which waited for {label(victim)}'s lock until that commit, "
        )
        + f"setting {cell.column} = {_json(value)} from its stale read;",
        f"so {label(victim)}'s update of {where} is lost"
        + (f" (it ends as {_json(cell.actual)})." if _same(value, cell.actual) else "."),
    ]
    however = (
        f"However, no serial order loses an update: in the closest one {where} ends as "
        f"{_json(cell.expected)} ({c.closest()}): a contradiction!"
    )
    return c.finding(
        "lost-update",
        {victim, writer},
        facts,
        however,
        difference=cell,
        conflicts=(read.position, lost.position, victim_commit, wrote.position),
    )


def _duplicate_insert(c: _Context) -> Finding | None:
    """A row the app keeps unique, inserted twice by requests that each looked for it
    first and did not see the other's insert.

    "The same row" is what the lookups asked for (``WHERE client_token = ?``: two rows
    with that token), or else two rows equal but for their generated key. "Kept
    unique" means no serial run of the same requests holds two such rows; if one does,
    the app allows repeats and too many of them is a limit overrun instead."""
    serial = c.verdict.consulted or (
        (c.verdict.reference,) if c.verdict.reference is not None else ()
    )
    for diff in (d for d in c.differences if d.where == "extra-row"):
        if not isinstance(diff.actual, dict):
            continue
        bare = _bare(diff.table)
        columns = list(diff.actual)
        final = c.execution.tables.get(diff.table, ())
        inserts = [
            e
            for e in c.events
            if e.access.verb in ("INSERT", "REPLACE")
            and e.access.write == bare
            and e.request in c.commits
            and e.position < c.commits[e.request]
            and not e.step.error
        ]
        lookups: dict[int, _Event] = {}
        for i in sorted({e.request for e in inserts}):
            first = min(e.position for e in inserts if e.request == i)
            looked = [
                e
                for e in c.of(i)
                if bare in e.access.reads and not e.access.write and e.position < first
            ]
            if looked:
                lookups[i] = looked[-1]
        groups: dict[frozenset[tuple[str, Any]], list[int]] = {}
        for i, lookup in lookups.items():
            wanted = frozenset((k, _hashable(v)) for k, v in lookup.access.filters)
            if wanted and _matches(diff.actual, wanted):
                groups.setdefault(wanted, []).append(i)
        if _copies(diff.actual, final) >= 2:  # equal rows: whatever the lookups said
            groups.setdefault(frozenset(), []).extend(
                i for i in lookups if i not in groups.get(frozenset(), [])
            )
        for wanted, members in groups.items():
            if len(members) < 2:
                continue
            if wanted:
                here = _count_matching(wanted, final, columns)
                serially = max(
                    (
                        _count_matching(wanted, r.tables.get(diff.table, ()), columns)
                        for r in serial
                    ),
                    default=0,
                )
            else:
                here = _copies(diff.actual, final)
                serially = max(
                    (_copies(diff.actual, r.tables.get(diff.table, ())) for r in serial), default=0
                )
            if here < 2 or serially >= 2:
                continue  # no repeat here, or the app allows repeats
            blind = [
                (i, lookups[i].position, j)
                for i in members
                for j in members
                if j != i and c.saw_before(lookups[i], c.commits[j])
            ]
            inserters = sorted({i for i, _, _ in blind})
            if len(inserters) < 2:
                continue
            checks = [next(b for b in blind if b[0] == i) for i in inserters]
            what = (
                " and ".join(f"{k} = {_json(v)}" for k, v in sorted(wanted))
                if wanted
                else _short(_without_new_keys(diff.actual))
            )
            facts = [
                f"{label(i)} looked for it in {bare} {c.when(lookups[i], c.commits[j])}, "
                f"before {label(j)} committed its insert at step {c.commits[j] + 1};"
                for i, p, j in checks
            ]
            facts.append(
                f"so each of {', '.join(label(i) for i in inserters)} found nothing and "
                f"inserted a row with {what} into {bare}."
            )
            however = (
                f"However, every serial order inserts it once (the later request finds the "
                f"earlier one's row), and here {bare} holds {here} ({c.closest()}): "
                f"a contradiction!"
            )
            return c.finding(
                "duplicate-insert",
                inserters,
                facts,
                however,
                difference=diff,
                conflicts=[p for _, p, _ in checks]
                + [e.position for e in inserts if e.request in inserters],
            )
    return None


def _hashable(value: Any) -> Any:
    return (
        json.dumps(value, sort_keys=True, default=str) if isinstance(value, list | dict) else value
    )


def _matches(row: dict[str, Any], wanted: frozenset[tuple[str, Any]]) -> bool:
    return all(column in row and _same(row[column], value) for column, value in wanted)


def _count_matching(
    wanted: frozenset[tuple[str, Any]], rows: Sequence[Sequence[Any]], columns: list[str]
) -> int:
    """How many raw rows (in ``columns`` order) have every (column, value) wanted."""
    if any(column not in columns for column, _ in wanted):
        return 0
    positions = [(columns.index(column), value) for column, value in wanted]
    return sum(
        1
        for row in rows
        if len(row) == len(columns) and all(_same(row[p], v) for p, v in positions)
    )


def _write_skew(c: _Context) -> Finding | None:
    """Two committed requests that changed different rows, each after reading (before
    the other committed) a set of rows that included the one the other changed, and a
    final row that no serial order reaches is one of theirs."""
    table_diffs = [d for d in c.differences if d.where in ("cell", "extra-row", "missing-row")]
    if not table_diffs:
        return None
    writes: dict[int, list[_Event]] = {}
    for e in c.events:
        commit = c.commits.get(e.request)
        if commit is None or e.position > commit or e.step.error:
            continue
        if e.access.verb in ("UPDATE", "DELETE") and e.access.write and e.step.rowcount != 0:
            writes.setdefault(e.request, []).append(e)
    for a in sorted(writes):
        for b in sorted(writes):
            if b <= a or not _disjoint(writes[a], writes[b]):
                continue
            if not any(_concerns(d, writes[a] + writes[b]) for d in table_diffs):
                continue  # their rows are fine: the anomaly is somewhere else
            reads = []
            for x, y in ((a, b), (b, a)):
                read = next(
                    (
                        (r, w)
                        for r in c.of(x)
                        if not r.access.write and c.saw_before(r, c.commits[y])
                        for w in writes[y]
                        if w.access.write in r.access.reads and _covers(r, w)
                    ),
                    None,
                )
                if read is None:
                    break
                reads.append((x, y, read[0], read[1]))
            else:
                facts = [
                    f"{label(x)} read {w.access.write} {c.when(r, c.commits[y])}, a read that "
                    f"includes the row {label(y)} changes, before {label(y)} committed that "
                    f"change at step {c.commits[y] + 1};"
                    for x, y, r, w in reads
                ]
                facts.append(
                    f"{label(a)} changed {_rows_text(writes[a])} and {label(b)} changed "
                    f"{_rows_text(writes[b])}: different rows, so neither overwrote the other, "
                    f"yet each decided on a state without the other's change."
                )
                first = next(d for d in table_diffs if _concerns(d, writes[a] + writes[b]))
                however = (
                    f"However, no serial order reaches these rows: {_describe(first)} "
                    f"({c.closest()}): a contradiction!"
                )
                return c.finding(
                    "write-skew",
                    (a, b),
                    facts,
                    however,
                    difference=first,
                    conflicts=[r.position for _, _, r, _ in reads]
                    + [w.position for _, _, _, w in reads]
                    + [c.commits[a], c.commits[b]],
                )
    return None


def _disjoint(first: Sequence[_Event], second: Sequence[_Event]) -> bool:
    """Whether two requests' UPDATE/DELETEs provably changed different rows."""
    for x in first:
        for y in second:
            if x.access.write != y.access.write:
                continue
            if x.access.key is None or y.access.key is None:
                return False  # rows unknown: cannot tell them apart
            if x.access.key == y.access.key:
                return False
    return True


def _covers(read: _Event, write: _Event) -> bool:
    """Whether a read's WHERE may include the row a write changed: they do not pin a
    common column to different values."""
    return not _differ(read.access.filters, write.access.filters)


def _differ(a: Sequence[tuple[str, Any]], b: Sequence[tuple[str, Any]]) -> bool:
    mine = dict(a)
    return any(column in mine and not _same(mine[column], value) for column, value in b)


def _concerns(difference: Difference, writes: Sequence[_Event]) -> bool:
    """Whether a table difference is about a row one of these writes changed."""
    bare = _bare(difference.table)
    for w in writes:
        if w.access.write != bare:
            continue
        if difference.where != "cell" or _same_row(w.access.key, difference.key):
            return True
    return False


def _limit_overrun(c: _Context) -> Finding | None:
    """Final rows no serial order reaches, written by requests that each passed a check
    made before the others committed."""
    diffs = [d for d in c.differences if d.where in ("cell", "extra-row", "missing-row")]
    if not diffs:
        return None
    tables = {_bare(d.table) for d in diffs}
    writers = sorted(w for w in c.commits if c.written(w) & tables)
    responders = {d.request for d in c.differences if d.where == "response"}
    involved = writers or sorted(r for r in responders if r is not None)
    facts: list[str] = []
    cited: list[int] = []
    for r in writers:
        for w in writers:
            if w == r:
                continue
            fact, positions = c.around(r, w, c.written(w) & tables)
            if fact and positions and positions[0] < c.commits[w]:
                facts.append(fact)
                cited += positions
    facts += _store_facts(c, writers, cited)
    for d in c.differences:
        if (
            d.where == "response"
            and d.request in writers
            and _status(d.actual) != _status(d.expected)
        ):
            facts.append(
                f"{label(d.request or 0)} went through ({_status(d.actual)}) where, in the "
                f"closest serial order, it is refused ({_status(d.expected)});"
            )
    facts.append("so every request's check passed, and together they went past the limit.")
    however = (
        f"However, no serial order lets them all through: {_describe(diffs[0])} "
        f"({c.closest()}): a contradiction!"
    )
    return c.finding(
        "limit-overrun", involved, facts, however, difference=diffs[0], conflicts=cited
    )


def _store_facts(c: _Context, requests: Sequence[int], cited: list[int]) -> list[str]:
    """A cache or Redis key (caches.py) that one request read before another wrote it, and
    wrote itself after that: such a write is seen at once, no COMMIT publishes it."""
    facts = []
    for r, w in itertools.permutations(requests, 2):
        own = [e for e in c.of(r) if e.step.connection == 0]  # its cache and Redis commands
        for write in (e for e in c.of(w) if e.step.connection == 0 and e.access.write):
            table = write.access.write
            read = [e for e in own if e.position < write.position and table in e.access.reads]
            again = [e for e in own if e.position > write.position and e.access.write == table]
            if read and again:
                facts.append(
                    f"{label(r)} read {table} at {c.step(read[-1].position)}, before {label(w)} "
                    f"wrote it at step {write.position + 1}, and wrote it at step "
                    f"{again[0].position + 1}, after that;"
                )
                cited += [read[-1].position, write.position, again[0].position]
                break
    return facts


def _stale_read(c: _Context) -> Finding:
    """Only responses differ: an answer no serial order gives."""
    stale = _first_difference(c, ("response",)) or c.differences[0]
    if stale.where == "response" and stale.request is not None:
        readers = [stale.request]
    else:  # an observer: any request may have caused it
        readers = list(range(len(c.scenario.requests)))
    facts: list[str] = []
    cited: list[int] = []
    involved = set(readers)
    for reader in readers:
        read = {t for e in c.of(reader) for t in e.access.reads}
        for w in _overlapping_writers(c, reader, read):
            fact, positions = c.around(reader, w, c.written(w) & read)
            involved.add(w)
            if fact:
                facts.append(fact)
                cited += positions
    if stale.where == "response":
        who = label(stale.request or 0)
    else:  # the observer by its request: "the observer GET /post/1"
        index = stale.request or 0
        observers = c.scenario.observers
        who = "the observer " + (
            observers[index].describe() if index < len(observers) else str(index + 1)
        )
    facts.append(f"{who} answered {_short(stale.actual)}.")
    however = (
        f"However, no serial order gives that answer; in the closest one it is "
        f"{_short(stale.expected)} ({c.closest()}): a contradiction!"
    )
    return c.finding("stale-read", involved, facts, however, difference=stale, conflicts=cited)


def _overlapping_writers(c: _Context, reader: int, tables: set[str]) -> list[int]:
    """Requests that wrote one of ``tables`` and committed while ``reader`` was running."""
    own = c.of(reader)
    if not own:
        return []
    start, end = own[0].position, own[-1].position
    result = []
    for w in sorted(c.commits):
        if w == reader or not c.written(w) & tables:
            continue
        commits = [e.position for e in c.of(w) if e.access.verb == "COMMIT"]
        if any(start <= p <= end for p in commits) or (
            c.of(w)[0].position <= start and c.commits[w] >= start
        ):
            result.append(w)
    return result


# -- hygiene and serial failures ---------------------------------------------------------


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


# -- small helpers -----------------------------------------------------------------------


def _order(order: Sequence[int]) -> str:
    return " → ".join(label(i) for i in order) or "(no request)"


def _bare(table: str) -> str:
    """ "shop.products" -> "products": traces name tables without their database."""
    return table.rsplit(".", 1)[-1]


def _is_new_key(key: Any) -> bool:
    """A key the oracle renamed: a row inserted during the execution."""
    values = key if isinstance(key, list) else [key]
    return any(isinstance(v, str) and v.startswith("<new ") for v in values)


def _same_row(statement_key: tuple[Any, ...] | None, cell_key: Any) -> bool:
    if statement_key is None:
        return True  # the statement's row is not known: the table is the evidence
    wanted = cell_key if isinstance(cell_key, list) else [cell_key]
    return len(statement_key) >= len(wanted) and all(
        _same(a, b) for a, b in zip(statement_key, wanted, strict=False)
    )


def _copies(row: dict[str, Any], rows: Sequence[Sequence[Any]]) -> int:
    """How many of ``rows`` (raw, in column order) equal ``row`` (normalized, by column),
    generated keys (canonical "<new …>" names) aside."""
    values = list(row.values())
    keep = [i for i, v in enumerate(values) if not _is_new_key(v)]
    return sum(
        1
        for other in rows
        if len(other) == len(values) and all(_same(other[i], values[i]) for i in keep)
    )


def _without_new_keys(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not _is_new_key(v)}


def _rows_text(writes: Sequence[_Event]) -> str:
    rows = {(w.access.write, tuple(w.access.key or ())) for w in writes}
    return ", ".join(sorted(f"{t}[{', '.join(str(k) for k in key)}]" for t, key in rows))


def _first_difference(c: _Context, where: Sequence[str]) -> Difference | None:
    return next((d for d in c.differences if d.where in where), None)


def _describe(difference: Difference | None) -> str:
    return difference.describe(label) if difference is not None else ""


def _key_text(key: Any) -> str:
    if isinstance(key, list):
        return ", ".join(str(k) for k in key)
    return str(key)


def _same(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _short(value: Any, limit: int = 160) -> str:
    return _clip(_json(value), limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status(value: Any) -> str:
    if isinstance(value, dict) and "status" in value:
        return str(value["status"])
    return _json(value)


def responses_text(responses: Sequence[Response | None]) -> list[str]:
    return [
        f"{label(i)}: {r.status}" if r else f"{label(i)}: not sent" for i, r in enumerate(responses)
    ]
