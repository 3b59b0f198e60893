"""Is an execution explained by some serial order of its requests? (DESIGN.md §5)

References are real serial runs of the same requests on the same database, each
from the initial snapshot: the commit order seen in the trace first (it usually
matches), then the other orders. They are memoized by the request list, so the many
schedules tried for the same requests cost one set of serial runs.

Comparison is on the *outcome*: every committed request's response, every observer
response, and the final rows of every table, after normalization:

* a request answered with a conflict status (409, 423 by default) is aborted: it
  must have left no effect, and the others must be serializable without it;
* keys the database generated for inserted rows are renamed to canonical names
  (by the content of their rows), in the rows, in foreign keys and in responses,
  so a correct app is not wrong because two inserts got each other's ids;
* columns and response fields the target names are ignored.

If the same serial order gives two different outcomes, the target is
nondeterministic and the verdict is ``unknown``, never a finding.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fuzzer.db import Rows, TableInfo
from fuzzer.judge import masks as masking
from fuzzer.judge.masks import Masks, Position, Relation, Varies, plain, recording
from fuzzer.model import Execution, Response, Scenario, Step, is_write_sql
from fuzzer.sql import access

Status = Literal["serializable", "violation", "unknown"]
MAX_ORDERS = 120  # 5! — beyond that only the commit order and its rotations are tried
MEMO_SIZE = 1024  # serial runs kept (see Oracle._memo)
RERUNS = 3  # fresh serial runs of the closest order before an example is a violation
Judged = Literal["fully", "partly", "not"]


@dataclass(frozen=True)
class Difference:
    """One place where an execution and a serial reference disagree."""

    where: str  # "response", "observer", "cell", "extra-row", "missing-row"
    actual: Any
    expected: Any
    request: int | None = None  # for responses
    table: str = ""
    key: Any = None  # the row's primary key (canonical) for cells
    column: str = ""

    def describe(self, label: Callable[[int], str] = lambda i: f"R{i + 1}") -> str:
        if self.where == "response":
            return (
                f"{label(self.request or 0)} answered {_short(self.actual)}, "
                f"serially {_short(self.expected)}"
            )
        if self.where == "observer":
            return (
                f"observer {(self.request or 0) + 1} answered {_short(self.actual)}, "
                f"serially {_short(self.expected)}"
            )
        if self.where == "cell":
            return (
                f"{self.table}[{_key_text(self.key)}].{self.column} is {_short(self.actual)}, "
                f"serially {_short(self.expected)}"
            )
        if self.where == "extra-row":
            return f"{self.table} has a row no serial order makes: {_short(self.actual)}"
        return f"{self.table} lacks a row every serial order makes: {_short(self.expected)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "actual": self.actual,
            "expected": self.expected,
            "request": self.request,
            "table": self.table,
            "key": self.key,
            "column": self.column,
        }


@dataclass(frozen=True)
class Verdict:
    status: Status
    order: tuple[int, ...] = ()  # the matching order, or the closest one
    aborted: tuple[int, ...] = ()
    differences: tuple[Difference, ...] = ()
    reference: Execution | None = None  # the serial execution of ``order``
    serial_failures: tuple[tuple[int, Response], ...] = ()  # 5xx seen in serial runs
    reason: str = ""  # for unknown
    orders_tried: int = 0
    consulted: tuple[Execution, ...] = field(default=(), compare=False, repr=False)
    # how much of the outcome was judged: everything, everything but masked cells (the
    # masks it needed: values that differ between serial runs of one order), or nothing
    judged: Judged = "fully"
    masked: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "order": list(self.order),
            "aborted": list(self.aborted),
            "differences": [d.to_json() for d in self.differences],
            "reason": self.reason,
            "orders_tried": self.orders_tried,
            "reference": self.reference.to_json() if self.reference else None,
            "judged": self.judged,
            "masked": list(self.masked),
        }


@dataclass
class OracleStats:
    references: int = 0  # serial runs done
    memo_hits: int = 0
    seconds: float = 0.0  # spent in serial reference runs


@dataclass
class Normalizer:
    """Brings an execution's outcome into the form that is compared."""

    tables: Mapping[str, TableInfo]
    initial: Mapping[str, Rows]
    ignore_columns: frozenset[str] = frozenset()
    ignore_fields: frozenset[str] = frozenset()
    masks: Masks = field(default_factory=Masks)  # what varies between serial runs (masks.py)
    relations: frozenset[str] = frozenset()  # declared: "field = table.column"
    _initial_keys: dict[str, set[Any]] = field(default_factory=dict)
    _initial_rows: dict[str, dict[Any, tuple[Any, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, info in self.tables.items():
            if info.generated:
                position = info.columns.index(info.generated)
                rows = {row[position]: row for row in self.initial.get(name, ())}
                self._initial_keys[name] = set(rows)
                self._initial_rows[name] = rows

    def outcome(
        self,
        execution: Execution,
        labels: Sequence[str] = (),
        observer_labels: Sequence[str] = (),
    ) -> Outcome:
        """The comparable outcome. ``labels`` name each request's endpoint (and
        ``observer_labels`` each observer's): masks of answers are per endpoint."""
        renames = self._renames(execution.tables, execution.trace)
        by_value: dict[Any, set[str]] = {}
        for (_, value), label in renames.items():
            by_value.setdefault(value, set()).add(label)
        id_labels = {
            v: next(iter(labels)) if len(labels) == 1 else NewKeys(labels)
            for v, labels in by_value.items()
        }
        tables = {name: self._rows(name, rows, renames) for name, rows in execution.tables.items()}
        responses = tuple(
            None if r is None else self._answer(r, id_labels, _at(labels, i))
            for i, r in enumerate(execution.responses)
        )
        observers = tuple(
            self._answer(r, id_labels, _at(observer_labels, i))
            for i, r in enumerate(execution.observers)
        )
        return Outcome(responses=responses, observers=observers, tables=tables)

    def _answer(self, response: Response, ids: Mapping[Any, Any], endpoint: str) -> tuple[int, Any]:
        if response.location and 300 <= response.status < 400:
            # a redirect is where it goes: its path, and its query's values one by one
            # (a random token in the query is masked alone); its body is boilerplate
            url = urllib.parse.urlsplit(response.location)
            path = "/".join(
                str(ids.get(int(part), part)) if part.isdigit() else part
                for part in url.path.split("/")
            )
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            redirect = {"path": path, "query": query} if query else {"path": path}
            return response.status, self._body(redirect, ids, endpoint, "Location")
        return response.status, self._body(response.body, ids, endpoint, "body")

    def _renames(
        self, tables: Mapping[str, Rows], trace: Sequence[Step] = ()
    ) -> dict[tuple[str, Any], str]:
        """Canonical names for generated keys of inserted rows, by the rows' content."""
        renames: dict[tuple[str, Any], str] = {}
        reinserted = self._reinserted(trace)
        for name, info in self.tables.items():  # parents first (discovery order)
            if not info.generated or name not in tables:
                continue
            position = info.columns.index(info.generated)
            initial = self._initial_keys.get(name, set())
            again = reinserted.get(name, set())
            fresh = self._given_again(name, tables[name], position, again)
            new = [row for row in tables[name] if row[position] not in initial or row in fresh]
            if not new:
                continue
            keyed = sorted(
                new,
                key=lambda row: _sort_key(self._content(name, row, renames, skip=position)),
            )
            for number, row in enumerate(keyed, 1):
                renames[(name, row[position])] = f"<new {name} #{number}>"
        return renames

    def _given_again(
        self, name: str, rows: Rows, position: int, again: set[Any]
    ) -> list[tuple[Any, ...]]:
        """The rows of ``name`` whose key is an initial key given again to a new row: one
        the trace deleted before an INSERT; or, from the highest initial key left down,
        changed rows in a table the trace inserted into and never updated by that key (a
        DELETE the trace does not show: an init request's)."""
        if not again:
            return []
        initial = self._initial_rows.get(name, {})
        updated = _updated_keys(again)
        fresh = []
        open_above = _INSERTED in again
        try:
            old = sorted((r for r in rows if r[position] in initial), key=lambda r: r[position])
        except TypeError:
            old = [r for r in rows if r[position] in initial]
            open_above = False
        for row in reversed(old):
            key = row[position]
            changed = row != initial[key]
            deleted = key in again or (None in again and changed)
            if deleted or (open_above and changed and key not in updated):
                fresh.append(row)
            else:
                open_above = False
        return fresh

    def _reinserted(self, trace: Sequence[Step]) -> dict[str, set[Any]]:
        """Initial keys the trace deleted before an INSERT into the same table: SQLite
        gives a new row the highest key + 1, so after a DELETE of the highest key the
        next INSERT gets the old key again. Such a row is a new row (matched by its
        content), not the old one changed. ``None`` in a set: a DELETE whose keys are
        not known (a DELETE by another column), any changed row may be new."""
        deleted: dict[str, set[Any]] = {}
        result: dict[str, set[Any]] = {}
        several = any("." in name for name in self.tables)
        for step in trace:
            if step.kind != "sql" or step.error or step.rowcount == 0:
                continue
            verb = step.text.lstrip()[:6].upper()
            if verb not in ("DELETE", "INSERT", "UPDATE"):
                continue
            prefix = f"{step.database}." if several and step.database else ""
            seen = access(step.text, step.params, prefix)
            name = seen.write
            if name is None or name not in self.tables:
                continue
            generated = self.tables[name].generated
            # a filter's value may be a list or a dict (IN, an expanding parameter): not a key
            keys = {v for column, v in seen.filters if column == generated and _hashable(v)}
            if seen.verb == "DELETE":
                deleted.setdefault(name, set()).update(keys or {None})
            elif seen.verb == "UPDATE":
                result.setdefault(name, set()).update(_Updated(k) for k in keys)
            elif seen.verb in ("INSERT", "REPLACE"):
                result.setdefault(name, set()).update(deleted.get(name, set()) | {_INSERTED})
        return result

    def _content(
        self,
        name: str,
        row: tuple[Any, ...],
        renames: Mapping[tuple[str, Any], str],
        skip: int = -1,
    ) -> tuple[Any, ...]:
        info = self.tables[name]
        fks = {column: referred for column, referred, _ in info.foreign_keys}
        values = []
        for position, (column, value) in enumerate(zip(info.columns, row, strict=True)):
            if position == skip or self._ignored(name, column):
                continue
            if column == info.generated:
                value = renames.get((name, value), value)
            elif column in fks:
                value = renames.get((fks[column], value), value)
            if self.masks.columns and column != info.generated and self.masks.column(name, column):
                value = Varies(value, f"{_bare(name)}.{column}")
            values.append(value)
        return tuple(values)

    def _rows(self, name: str, rows: Rows, renames: Mapping[tuple[str, Any], str]) -> Rows:
        if name not in self.tables:
            return rows
        return tuple(sorted((self._content(name, row, renames) for row in rows), key=_sort_key))

    def _ignored(self, table: str, column: str) -> bool:
        bare = table.rsplit(".", 1)[-1]
        return (
            column in self.ignore_columns
            or f"{table}.{column}" in self.ignore_columns
            or f"{bare}.{column}" in self.ignore_columns
        )

    def columns(self, name: str) -> tuple[str, ...]:
        info = self.tables[name]
        return tuple(c for c in info.columns if not self._ignored(name, c))

    def key_positions(self, name: str) -> tuple[int, ...]:
        info = self.tables.get(name)
        if info is None or not info.primary_key:
            return ()
        columns = self.columns(name)
        return tuple(columns.index(c) for c in info.primary_key if c in columns)

    def _body(self, body: Any, ids: Mapping[Any, Any], endpoint: str = "", path: str = "") -> Any:
        if self.masks.fields and (endpoint, path) in self.masks.fields:
            return Varies(body, Masks.field_name(endpoint, path))
        if isinstance(body, dict):
            return {
                k: (
                    ids.get(v, v)
                    if _is_id_key(k) and _is_key_value(v)
                    else self._body(v, ids, endpoint, f"{path}.{k}")
                )
                for k, v in body.items()
                if k not in self.ignore_fields
            }
        if isinstance(body, list):
            return [self._body(v, ids, endpoint, f"{path}[]") for v in body]
        if isinstance(body, str) and path == "body":
            return self.masks.text(endpoint, body)
        return body

    def declared(self, a: Position, b: Position) -> bool:
        """Whether the spec declares a relation between two positions (``Target.relations``:
        "field = table.column": a field of an answer and a column of the final rows)."""
        for relation in self.relations:
            key, _, cell = (part.strip() for part in relation.partition("="))
            for p, q in ((a, b), (b, a)):
                if (
                    p[0] in ("response", "observer")
                    and str(p[-1]).rsplit(".", 1)[-1] == key
                    and q[0] == "cell"
                    and f"{_bare(q[1])}.{q[3]}" in (cell, f"{_bare(q[1])}.{cell}")
                ):
                    return True
        return False


class NewKeys(frozenset[str]):
    """A generated key in a response that is the key of new rows in several tables at
    once (``"id": 2`` when both a new tag and a new bookmark got 2): it may name any of
    them, so it equals another such value when they can name the same row. Which
    numbers collide across tables depends on the order of the inserts, not on what the
    app did."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other in self
        if isinstance(other, frozenset):
            return bool(self & other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = frozenset.__hash__

    def __str__(self) -> str:
        return "|".join(sorted(self))

    __repr__ = __str__


class _Updated(tuple[Any]):
    """A key the trace updated by its key (``_reinserted``): changed in place."""

    def __new__(cls, key: Any) -> _Updated:
        return super().__new__(cls, (key,))


_INSERTED = _Updated("\x00inserted")  # the trace inserted into the table


def _updated_keys(marks: set[Any]) -> set[Any]:
    return {m[0] for m in marks if isinstance(m, _Updated)}


def _is_id_key(key: str) -> bool:
    return key == "id" or key.endswith(("_id", "Id", "ID"))


def _is_key_value(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Outcome:
    """The comparable part of an execution."""

    responses: tuple[tuple[int, Any] | None, ...]
    observers: tuple[tuple[int, Any], ...]
    tables: Mapping[str, Rows]


class Oracle:
    """Judges executions against serial references of the same requests."""

    def __init__(
        self,
        normalizer: Normalizer,
        run_serial: Callable[[Scenario, tuple[int, ...]], Execution],
        *,
        conflict_statuses: frozenset[int] = frozenset({409, 423}),
        strict: bool = False,
    ) -> None:
        self.normalizer = normalizer
        self.masks = normalizer.masks  # learned for the run, refined as examples run
        self._run_serial = run_serial
        self.conflict_statuses = conflict_statuses
        self.strict = strict
        self.stats = OracleStats()
        # serial runs, in run order; least recently used dropped first beyond MEMO_SIZE, so
        # a soak of hours stays flat in memory (Hypothesis tries one request list's
        # schedules close together)
        self._memo: OrderedDict[str, Execution] = OrderedDict()
        # serial keys whose reruns showed nothing more to mask (bounded like the memo)
        self._stable: OrderedDict[str, None] = OrderedDict()

    def forget(self) -> None:
        """Drop the memoized serial runs (benchmarks: each seed pays its own)."""
        self._memo.clear()
        self._stable.clear()

    def outcome(self, scenario: Scenario, execution: Execution) -> Outcome:
        return self.normalizer.outcome(
            execution,
            [r.endpoint for r in scenario.requests],
            [r.endpoint for r in scenario.observers],
        )

    def reference(
        self, scenario: Scenario, order: tuple[int, ...], fresh: bool = False
    ) -> tuple[Execution, Outcome]:
        """The serial run of ``order``. Memoized by the requests *in the order they run*,
        so the same sequence drawn in another list order, or two identical requests in
        either order, cost one run."""
        key = serial_key(scenario, order)
        cached = None if fresh else self._memo.get(key)
        if cached is not None:
            self.stats.memo_hits += 1
            self._memo.move_to_end(key)
            execution = _placed(cached, order, len(scenario.requests))
            return execution, self.outcome(scenario, execution)
        self.stats.references += 1
        started = time.perf_counter()
        execution = self._run_serial(scenario, order)
        self.stats.seconds += time.perf_counter() - started
        if not fresh:
            self._memo[key] = _in_run_order(execution, order)
            if len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return execution, self.outcome(scenario, execution)

    def judge(self, scenario: Scenario, execution: Execution) -> Verdict:
        if execution.hang is not None:
            return Verdict("unknown", reason="the execution hung", judged="not")
        if any(r is not None and r.status == 0 for r in execution.responses):
            return Verdict("unknown", reason="a request got no response", judged="not")
        stray = _stray_writes(execution)
        if stray:
            return Verdict("unknown", reason=stray, judged="not")
        from fuzzer.judge import faults  # injected errors (--faults) are judged there

        faulted = faults.judge(self, scenario, execution)
        if faulted is not None:
            return faulted
        aborted = tuple(
            i
            for i, r in enumerate(execution.responses)
            if r is not None and r.status in self.conflict_statuses
        )
        order = ran_one_after_another(execution)
        if order is not None:
            # no interleaving at all: this execution *is* the serial run of that order
            alone = tuple(
                (i, r)
                for i, r in enumerate(execution.responses)
                if r is not None and r.status >= 500
            )
            return Verdict(
                "serializable",
                order,
                aborted,
                reference=execution,
                serial_failures=alone,
                orders_tried=0,
            )
        committed = [i for i in range(len(scenario.requests)) if i not in aborted]
        tried: list[tuple[tuple[int, ...], Execution, list[Difference]]] = []
        failures: dict[int, Response] = {}
        actual = self.outcome(scenario, execution)
        for order in self._orders(execution, committed):
            reference, _ = self.reference(scenario, order)
            stray = _stray_writes(reference)
            if stray:
                self._memo.pop(serial_key(scenario, order), None)
                return Verdict("unknown", order, aborted, reason=stray, judged="not")
            for i in order:
                response = reference.responses[i]
                if response is not None and response.status >= 500:
                    failures.setdefault(i, response)
            tried.append((order, reference, []))
            verdict = self._matches(scenario, actual, tried, aborted, failures, last=True)
            if verdict is not None:
                return verdict
        turned_away = self._rejected_under_contention(scenario, execution, actual, committed)
        if turned_away is not None:
            return replace(turned_away, aborted=tuple(sorted({*aborted, *turned_away.aborted})))
        # no serial order explains it: unless the app varies on its own where this
        # execution differs, a violation
        order, reference, _ = min(tried, key=lambda t: len(t[2]))
        key = serial_key(scenario, order)
        if key not in self._stable:
            for _ in range(RERUNS):
                again, _ = self.reference(scenario, order, fresh=True)
                learned, unmaskable = self._learn(scenario, reference, again)
                if unmaskable:
                    return Verdict(
                        "unknown",
                        order,
                        aborted,
                        reason=(
                            f"serial runs of one order differ where nothing can be masked: "
                            f"{unmaskable[0]}; the serial order {_order_text(order)} ran twice: "
                            + ", ".join(unmaskable)
                        ),
                        reference=reference,
                        orders_tried=len(tried),
                        judged="not",
                    )
                if learned:  # judge again, modulo what was just learned
                    actual = self.outcome(scenario, execution)
                    verdict = self._matches(scenario, actual, tried, aborted, failures)
                    if verdict is not None:
                        return verdict
            self._stable[key] = None
            if len(self._stable) > MEMO_SIZE:
                self._stable.popitem(last=False)
        with recording() as used:
            actual = self.outcome(scenario, execution)
            tried = [
                (o, r, self._compare(actual, self.outcome(scenario, r), o)) for o, r, _ in tried
            ]
        order, reference, differences = min(tried, key=lambda t: len(t[2]))
        masked = tuple(sorted(set(used)))
        return Verdict(
            "violation",
            order,
            aborted,
            tuple(differences),
            reference,
            tuple(sorted(failures.items())),
            orders_tried=len(tried),
            consulted=tuple(t[1] for t in tried),
            judged="partly" if masked else "fully",
            masked=masked,
        )

    def _rejected_under_contention(
        self,
        scenario: Scenario,
        execution: Execution,
        actual: Outcome,
        committed: Sequence[int],
    ) -> Verdict | None:
        """Aborts by any name: requests that answered 4xx while another request ran and
        committed nothing, when the rows and every other answer match a serial order
        without them, were turned away under contention (403 "another submission is
        being processed"), like a 409. A serializable verdict whose reason says so, or
        None. A read (GET, HEAD) answering 4xx is never one: what it answered is what it
        read."""
        turned = [i for i in committed if _turned_away(scenario, execution, i)]
        if not turned:
            return None
        rest = [i for i in committed if i not in turned]
        for order in self._orders(execution, rest):
            reference, _ = self.reference(scenario, order)
            if execution.stray_writes or reference.stray_writes:
                return None
            if self._compare(actual, self.outcome(scenario, reference), order):
                continue
            what = "; ".join(
                f"{scenario.requests[i].endpoint} answered {execution.responses[i].status}"  # type: ignore[union-attr]
                for i in turned
            )
            return Verdict(
                "serializable",
                order,
                tuple(turned),
                reference=reference,
                reason=(
                    f"a rejection under contention ({what}, committing nothing while another "
                    f"request ran): treated as aborted, the rest matches a serial order "
                    f"without it"
                ),
            )
        return None

    def _matches(
        self,
        scenario: Scenario,
        actual: Outcome,
        tried: list[tuple[tuple[int, ...], Execution, list[Difference]]],
        aborted: tuple[int, ...],
        failures: Mapping[int, Response],
        last: bool = False,
    ) -> Verdict | None:
        """The serializable verdict if one of the orders ``tried`` (only the last one
        with ``last``) explains the execution, modulo the masks learned so far; records
        each order's differences in ``tried`` otherwise."""
        for n, (order, reference, _) in enumerate(tried):
            if last and n != len(tried) - 1:
                continue
            with recording() as used:
                differences = self._compare(actual, self.outcome(scenario, reference), order)
            tried[n] = (order, reference, differences)
            if not differences:
                masked = tuple(sorted(set(used)))
                return Verdict(
                    "serializable",
                    order,
                    aborted,
                    reference=reference,
                    serial_failures=tuple(sorted(failures.items())),
                    orders_tried=len(tried),
                    judged="partly" if masked else "fully",
                    masked=masked,
                )
        return None

    def _learn(
        self, scenario: Scenario, first: Execution, again: Execution
    ) -> tuple[bool, list[str]]:
        """Mask what differs between two serial runs of one order. Returns whether
        anything new was masked, and what differs that cannot be masked."""
        learned: list[str] = []
        bad: list[str] = []
        normalizer = self.normalizer
        for _ in range(len(normalizer.tables) * 4 + 1):  # columns, then the rows again
            a, b = self.outcome(scenario, first), self.outcome(scenario, again)
            if dict(a.tables) == dict(b.tables):
                break
            bad = []
            known = set(normalizer.tables)
            if not masking.learn_tables(
                self.masks,
                {k: v for k, v in a.tables.items() if k in known},
                {k: v for k, v in b.tables.items() if k in known},
                normalizer.columns,
                lambda table, column: column != normalizer.tables[table].generated,
                learned,
                bad,
            ):
                break
        if bad:
            return bool(learned), bad
        labels = [r.endpoint for r in scenario.requests]
        for names, xs, ys in (
            (labels, a.responses, b.responses),
            ([r.endpoint for r in scenario.observers], a.observers, b.observers),
        ):
            for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
                if x == y or x is None or y is None:
                    continue
                endpoint = _at(names, i)
                if x[0] != y[0]:
                    bad.append(f"{endpoint} answered {x[0]} once and {y[0]} once")
                    continue
                redirect = isinstance(x[1], dict) and 300 <= x[0] < 400 and "path" in x[1]
                root = "Location" if redirect else "body"
                masking.learn_body(self.masks, endpoint, x[1], y[1], root, learned, bad)
        if not bad:
            a, b = self.outcome(scenario, first), self.outcome(scenario, again)
            if a != b:  # what is left: name it
                bad = [_difference_name(d, scenario) for d in self._compare(a, b, ())]
                bad = bad or ["their outcomes differ"]
        return bool(learned), bad

    def _orders(self, execution: Execution, committed: Sequence[int]) -> list[tuple[int, ...]]:
        first = tuple(i for i in execution.commit_order if i in committed)
        first += tuple(i for i in committed if i not in first)
        orders = [first]
        if len(committed) <= 5:
            orders += [p for p in itertools.permutations(committed) if p != first]
        else:
            orders += [first[k:] + first[:k] for k in range(1, len(first))]
        if self.strict:
            orders = [o for o in orders if _respects_real_time(o, execution)]
        return orders[:MAX_ORDERS]

    def _compare(
        self, actual: Outcome, expected: Outcome, order: Sequence[int]
    ) -> list[Difference]:
        differences: list[Difference] = []
        for i in order or range(len(actual.responses)):
            if actual.responses[i] != expected.responses[i]:
                differences.append(
                    Difference(
                        "response",
                        _unpack(actual.responses[i]),
                        _unpack(expected.responses[i]),
                        request=i,
                    )
                )
        for i, (a, e) in enumerate(zip(actual.observers, expected.observers, strict=True)):
            if a != e:
                differences.append(Difference("observer", _unpack(a), _unpack(e), request=i))
        for name in sorted(set(actual.tables) | set(expected.tables)):
            differences += self._table_differences(
                name, actual.tables.get(name, ()), expected.tables.get(name, ())
            )
        if not differences and self.masks:
            differences = self._broken_relations(actual, expected, order)
        return differences

    def _broken_relations(
        self, actual: Outcome, expected: Outcome, order: Sequence[int]
    ) -> list[Difference]:
        """Masked values equal to each other in the serial run that are not in the
        execution: a token answered that is not the one stored."""
        theirs = dict(_masked_leaves(actual, order))
        groups: list[Relation] = masking.relations(
            list(_masked_leaves(expected, order)), self.normalizer.declared
        )
        differences: list[Difference] = []
        for group in groups:
            cells = [p for p in group.positions if p[0] == "cell"]
            answers = [p for p in group.positions if p[0] != "cell"]
            if cells:  # answers must name a value the cell holds in the execution
                anchor = cells[0]
                allowed = self._cell_values(actual, anchor)
            elif answers and answers[0] in theirs:  # answers must agree with each other
                anchor = answers[0]
                allowed = [theirs[anchor].value]
            else:
                continue
            for position in answers:
                if position == anchor or position not in theirs:
                    continue
                if theirs[position].value in allowed:
                    continue
                where = actual.responses if position[0] == "response" else actual.observers
                differences.append(
                    Difference(
                        position[0],
                        _unpack(where[position[1]]),
                        f"{_position_text(position)} equal to {_position_text(anchor)}, as in "
                        f"every serial run (a value that varies, but must agree): "
                        f"{_short(plain(allowed[0]) if allowed else None)}",
                        request=position[1],
                    )
                )
        return differences

    @staticmethod
    def _cell_values(outcome: Outcome, position: Position) -> list[Any]:
        """The values a cell may hold in an execution: the cell of the same row, or of
        any row equal to it but for masked values (which of such rows is which cannot
        be told)."""
        _, table, row, column = position
        rows = outcome.tables.get(table, ())
        if row >= len(rows):
            return []
        values = []
        for other in rows:
            if other == rows[row]:
                values += [
                    v.value
                    for v in other
                    if isinstance(v, Varies) and v.name.endswith(f".{column}")
                ]
        return values

    def _table_differences(self, name: str, actual: Rows, expected: Rows) -> list[Difference]:
        if actual == expected:
            return []
        extra = Counter(actual) - Counter(expected)
        missing = Counter(expected) - Counter(actual)
        positions = self.normalizer.key_positions(name) if name in self.normalizer.tables else ()
        columns = self.normalizer.columns(name) if name in self.normalizer.tables else ()
        differences: list[Difference] = []
        if positions:

            def key_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
                return tuple(row[p] for p in positions)

            missing_by_key = {key_of(row): row for row in missing.elements()}
            for row in list(extra.elements()):
                key = key_of(row)
                if any(_is_new_label(k) for k in key):
                    continue  # inserted rows are named by content: not the same row
                other = missing_by_key.pop(key, None)
                if other is None:
                    continue
                extra[row] -= 1
                missing[other] -= 1
                for column, a, e in zip(columns, row, other, strict=True):
                    if a != e:
                        differences.append(
                            Difference(
                                "cell",
                                plain(a),
                                plain(e),
                                table=name,
                                key=_key_value(tuple(plain(k) for k in key)),
                                column=column,
                            )
                        )
        for row in (+extra).elements():
            differences.append(
                Difference(
                    "extra-row", plain(dict(zip(columns, row, strict=False))), None, table=name
                )
            )
        for row in (+missing).elements():
            differences.append(
                Difference(
                    "missing-row", None, plain(dict(zip(columns, row, strict=False))), table=name
                )
            )
        return differences


def _masked_leaves(outcome: Outcome, order: Sequence[int]) -> list[tuple[Position, Varies]]:
    """Every masked value of an outcome, by position (answers of the requests that ran,
    observers, cells by the row's place among the sorted rows)."""
    found: list[tuple[Position, Varies]] = []
    for i in order:
        answer = outcome.responses[i]
        if answer is not None:
            found += masking.leaves(answer[1], ("response", i), "body")
    for i, answer in enumerate(outcome.observers):
        found += masking.leaves(answer[1], ("observer", i), "body")
    for name, rows in outcome.tables.items():
        for n, row in enumerate(rows):
            for value in row:
                if isinstance(value, Varies):
                    found.append((("cell", name, n, value.name.rsplit(".", 1)[-1]), value))
    return found


def _position_text(position: Position) -> str:
    if position[0] == "cell":
        return f"{_bare(position[1])}.{position[3]} of the final rows"
    who = f"R{position[1] + 1}" if position[0] == "response" else f"observer {position[1] + 1}"
    return f"{who}'s {position[2]}"


def _difference_name(difference: Difference, scenario: Scenario) -> str:
    """Where two serial runs differ, without the values (so that reasons group)."""
    d = difference
    if d.where == "response":
        return f"{_at([r.endpoint for r in scenario.requests], d.request or 0)}'s answer"
    if d.where == "observer":
        return f"the observer {_at([r.endpoint for r in scenario.observers], d.request or 0)}"
    if d.where == "cell":
        return f"{d.table}.{d.column}"
    return f"the rows of {d.table}"


def _at(labels: Sequence[str], index: int) -> str:
    return labels[index] if index < len(labels) else f"R{index + 1}"


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _turned_away(scenario: Scenario, execution: Execution, request: int) -> bool:
    """Whether a request that is not a read answered 4xx, committed no write, and ran
    while another request was in flight (their steps overlap in the trace)."""
    response = execution.responses[request]
    if response is None or not 400 <= response.status < 500:
        return False
    if scenario.requests[request].method.upper() in ("GET", "HEAD", "OPTIONS"):
        return False
    spans: dict[int, list[int]] = {}
    wrote = False
    for position, step in enumerate(execution.trace):
        spans.setdefault(step.request, [position, position])[1] = position
        if step.request == request and step.kind == "sql" and is_write_sql(step.text):
            wrote = True
        if step.request == request and step.kind == "commit" and wrote and not step.error:
            return False  # it committed a write
    mine = spans.get(request)
    return mine is not None and any(
        other != request and start <= mine[1] and mine[0] <= end
        for other, (start, end) in spans.items()
    )


def _stray_writes(execution: Execution) -> str:
    """Why an execution cannot be judged because a write no request made ran while it
    did (the app's background thread), naming the write; "" when none did."""
    if not execution.stray_writes:
        return ""
    first = execution.stray_writes[0]
    return (
        f"a write no request made ran during it: {first}; the app writes from a thread of "
        f"its own (after the response?), which the fuzzer cannot attribute or order"
    )


def serial_key(scenario: Scenario, order: Sequence[int]) -> str:
    """What a serial run depends on: the init requests, the requests in the order they
    run, the observers."""
    return json.dumps(
        [
            [r.to_json() for r in scenario.init],
            [scenario.requests[i].to_json() for i in order],
            [r.to_json() for r in scenario.observers],
        ],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )


def _in_run_order(execution: Execution, order: Sequence[int]) -> Execution:
    """The execution with request k being the k-th to run."""
    position = {index: k for k, index in enumerate(order)}
    return replace(
        execution,
        responses=tuple(execution.responses[i] for i in order),
        trace=tuple(replace(s, request=position[s.request]) for s in execution.trace),
        order=tuple(range(len(order))),
    )


def _placed(canonical: Execution, order: Sequence[int], requests: int) -> Execution:
    """A run-order execution placed back at a scenario's request indices."""
    responses: list[Response | None] = [None] * requests
    for k, index in enumerate(order):
        responses[index] = canonical.responses[k]
    return replace(
        canonical,
        responses=tuple(responses),
        trace=tuple(replace(s, request=order[s.request]) for s in canonical.trace),
        order=tuple(order),
    )


def ran_one_after_another(execution: Execution) -> tuple[int, ...] | None:
    """The order of the requests if each ran start to end without another in between."""
    if execution.mode == "free":
        return None  # no trace order to trust: the requests really ran in parallel
    order: list[int] = []
    for step in execution.trace:
        if order and step.request == order[-1]:
            continue
        if step.request in order:
            return None
        order.append(step.request)
    missing = [i for i, r in enumerate(execution.responses) if r is not None and i not in order]
    return tuple(order + missing)


def _is_new_label(value: Any) -> bool:
    """The canonical name ``Normalizer`` gives the generated key of an inserted row."""
    return isinstance(value, str) and value.startswith("<new ") and value.endswith(">")


def _respects_real_time(order: Sequence[int], execution: Execution) -> bool:
    """Strict mode: a request that ended before another started precedes it."""
    first_step: dict[int, int] = {}
    end_step: dict[int, int] = {}
    for position, step in enumerate(execution.trace):
        if step.kind != "start":
            first_step.setdefault(step.request, position)
        if step.kind == "end":
            end_step[step.request] = position
    rank = {r: k for k, r in enumerate(order)}
    for a in order:
        for b in order:
            if a != b and end_step.get(a, 1 << 30) < first_step.get(b, -1) and rank[a] > rank[b]:
                return False
    return True


def _unpack(value: tuple[int, Any] | None) -> Any:
    return None if value is None else {"status": value[0], "body": plain(value[1])}


def _sort_key(row: tuple[Any, ...]) -> str:
    return json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)


def _key_value(key: tuple[Any, ...]) -> Any:
    return key[0] if len(key) == 1 else list(key)


def _key_text(key: Any) -> str:
    if isinstance(key, list):
        return ", ".join(str(k) for k in key)
    return str(key)


def _short(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _order_text(order: Sequence[int]) -> str:
    return " → ".join(f"R{i + 1}" for i in order) or "(none)"
