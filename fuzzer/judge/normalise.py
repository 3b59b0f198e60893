"""An execution's outcome in the form that is compared (DESIGN.md §5).

* keys the database generated for inserted rows are renamed to canonical names
  (by the content of their rows), in the rows, in foreign keys and in responses,
  so a correct app is not wrong because two inserts got each other's ids;
* columns and response fields the target names are ignored;
* what varies between serial runs of one order is masked (``masks``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuzzer.db import Rows, TableInfo
from fuzzer.judge.masks import AnswerPosition, CellPosition, Masks, Position, Varies
from fuzzer.judge.verdict import NewKey, Outcome, at, bare, sort_key
from fuzzer.model import Execution, Response, Step


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

    _references: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._references = {name: _references(name, self.tables) for name in self.tables}
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
        by_content: frozenset[str] = frozenset(),
        scope: frozenset[str] | None = None,
    ) -> Outcome:
        """The comparable outcome. ``labels`` name each request's endpoint (and
        ``observer_labels`` each observer's): masks of answers are per endpoint.
        ``by_content``: tables whose new rows are named by content even where the trace
        tells who made them. ``scope``: the endpoints of every request of the example
        (init and observers too; default ``labels``), which decide the masks of cells."""
        scope = frozenset(labels) if scope is None else scope
        makers = _makers(execution.trace, self.tables) if execution.mode != "free" else {}
        if execution.init and not execution.observers:  # init rows come first (_by_maker)
            makers = {name: [(-1, 0), *rows] for name, rows in makers.items()}
        for name in by_content:
            makers.pop(name, None)
        renames = self._renames(execution.tables, execution.trace, makers, scope)
        by_maker = frozenset(name for (name, _), key in renames.items() if key.maker is not None)
        by_value: dict[Any, set[str]] = {}
        for (_, value), label in renames.items():
            by_value.setdefault(value, set()).add(label)
        id_labels = {
            v: next(iter(labels)) if len(labels) == 1 else NewKeys(labels)
            for v, labels in by_value.items()
        }
        tables = {
            name: self._rows(name, rows, renames, scope) for name, rows in execution.tables.items()
        }
        responses = tuple(
            None if r is None else self._answer(r, id_labels, at(labels, i))
            for i, r in enumerate(execution.responses)
        )
        observers = tuple(
            self._answer(r, id_labels, at(observer_labels, i))
            for i, r in enumerate(execution.observers)
        )
        return Outcome(
            responses=responses,
            observers=observers,
            tables=tables,
            by_maker=by_maker,
            source=(execution, tuple(labels), tuple(observer_labels), scope),
        )

    def agree(self, a: Outcome, b: Outcome) -> tuple[Outcome, Outcome]:
        """Two outcomes whose new rows are named the same way: a table named by who made
        its rows in one and by content in the other (the trace of one did not account
        for every new row) is named by content in both."""
        differ = a.by_maker ^ b.by_maker
        if not differ:
            return a, b
        return self._again(a, a.by_maker & differ), self._again(b, b.by_maker & differ)

    def _again(self, outcome: Outcome, by_content: frozenset[str]) -> Outcome:
        if not by_content or outcome.source is None:
            return outcome
        execution, labels, observer_labels, scope = outcome.source
        return self.outcome(execution, labels, observer_labels, by_content, scope)

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
        self,
        tables: Mapping[str, Rows],
        trace: Sequence[Step] = (),
        makers: Mapping[str, list[tuple[int, int]]] | None = None,
        scope: frozenset[str] = frozenset(),
    ) -> dict[tuple[str, Any], NewKey]:
        """Canonical names for generated keys of inserted rows: by who made them (the
        request and the row's place among its inserts into the table, ``makers``) when
        the trace accounts for every new row of the table, else by the rows' content."""
        renames: dict[tuple[str, Any], NewKey] = {}
        makers = makers or {}
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
            if _by_maker(name, new, position, makers.get(name), renames):
                continue
            new = [row for row in new if (name, row[position]) not in renames]
            keyed = sorted(
                new,
                key=lambda row: sort_key(self._content(name, row, renames, scope, skip=position)),
            )
            for number, row in enumerate(keyed, 1):
                renames[(name, row[position])] = NewKey(name, number=number)
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
            if step.access.verb not in ("DELETE", "INSERT", "UPDATE"):
                continue
            prefix = f"{step.database}." if several and step.database else ""
            seen = step.access.under(prefix)
            name = seen.write
            if name is None or name not in self.tables:
                continue
            generated = self.tables[name].generated
            # a filter's value may be a list or a dict (IN, an expanding parameter): not a key
            keys = {v for column, v in seen.filters if column == generated and hashable(v)}
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
        renames: Mapping[tuple[str, Any], NewKey],
        scope: frozenset[str] = frozenset(),
        skip: int = -1,
    ) -> tuple[Any, ...]:
        """A row as compared: generated keys and the columns that hold them renamed,
        ignored columns left out, the cells that vary in examples of these endpoints
        (``scope``) masked."""
        info = self.tables[name]
        fks = self._references.get(name, {})
        renamed = []
        for column, value in zip(info.columns, row, strict=True):
            if column == info.generated:
                value = renames.get((name, value), value)
            elif column in fks:
                value = renames.get((fks[column], value), value)
            renamed.append(value)
        key: Any = None
        if self.masks.cells:
            key = tuple(
                renamed[info.columns.index(c)]
                for c in info.primary_key
                if not self._ignored(name, c)
            )
        values = []
        for position, (column, value) in enumerate(zip(info.columns, renamed, strict=True)):
            if position == skip or self._ignored(name, column):
                continue
            masked = key is not None and column != info.generated
            if masked and self.masks.cell(name, column, scope, key):
                value = Varies(value, f"{bare(name)}.{column}")
            values.append(value)
        return tuple(values)

    def _rows(
        self,
        name: str,
        rows: Rows,
        renames: Mapping[tuple[str, Any], NewKey],
        scope: frozenset[str] = frozenset(),
    ) -> Rows:
        if name not in self.tables:
            return rows
        content = (self._content(name, row, renames, scope) for row in rows)
        return tuple(sorted(content, key=sort_key))

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
                    isinstance(p, AnswerPosition)
                    and p.path.rsplit(".", 1)[-1] == key
                    and isinstance(q, CellPosition)
                    and f"{bare(q.table)}.{q.column}" in (cell, f"{bare(q.table)}.{cell}")
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


def hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _by_maker(
    name: str,
    new: list[tuple[Any, ...]],
    position: int,
    makers: list[tuple[int, int]] | None,
    renames: dict[tuple[str, Any], NewKey],
) -> bool:
    """Names the new rows of a table by who made them: the database numbers rows in the
    order their INSERTs ran, so the k-th smallest new key is the k-th row the trace's
    committed inserts made. Rows the trace does not show (an init request's, which ran
    before) have the smallest keys: named by content, as before (``makers`` lists them
    as ``(-1, 0)``: an unknown number of them). Whether it could name them so."""
    if makers is None:
        return False
    traced = [m for m in makers if m[0] >= 0]
    extra = len(new) - len(traced)
    if extra < 0 or (extra > 0 and len(traced) == len(makers)):
        return False  # rows the trace made are gone (deleted), or made after it
    try:
        ordered = sorted(new, key=lambda row: row[position])
    except TypeError:
        return False
    for row, (request, k) in zip(ordered[extra:], traced, strict=True):
        renames[(name, row[position])] = NewKey(name, maker=(request, k))
    return extra == 0


def _makers(
    trace: Sequence[Step], tables: Mapping[str, TableInfo]
) -> dict[str, list[tuple[int, int]]]:
    """For each table with a generated key, who inserted its committed rows, in the order
    the INSERTs ran (which is the order the keys were given, not the order of the
    commits): (request, the row's number among that request's rows of the table). A
    table with an INSERT whose row count is not known is left out (named by content)."""
    several = any("." in name for name in tables)
    pending: dict[tuple[int, int], list[list[Any]]] = {}  # (request, connection) -> rows
    counts: dict[tuple[str, int], int] = {}
    inserted: dict[str, list[list[Any]]] = {}  # table -> [request, k, committed, table]
    unknown: set[str] = set()
    for step in trace:
        where = (step.request, step.connection)
        if step.kind == "commit" and not step.error:
            for row in pending.pop(where, []):
                # numbered among the request's committed rows: a retry's rolled-back
                # attempt (an injected deadlock) takes no number
                table = row[3]
                counts[(table, row[0])] = row[1] = counts.get((table, row[0]), 0) + 1
                row[2] = True
        elif step.kind == "rollback":
            pending.pop(where, None)
        elif step.kind == "sql" and not step.error and step.access.verb in ("INSERT", "REPLACE"):
            prefix = f"{step.database}." if several and step.database else ""
            written = step.access.under(prefix).write
            if written is None or written not in tables or not tables[written].generated:
                continue
            if step.rowcount is None or step.rowcount < 0:
                unknown.add(written)
                continue
            for _ in range(step.rowcount):
                row = [step.request, 0, False, written]
                inserted.setdefault(written, []).append(row)
                pending.setdefault(where, []).append(row)
    return {
        name: [(request, k) for request, k, committed, _ in rows if committed]
        for name, rows in inserted.items()
        if name not in unknown
    }


def _references(name: str, tables: Mapping[str, TableInfo]) -> dict[str, str]:
    """The columns of a table that hold another table's generated key: its declared
    foreign keys, and by name the ones an ORM extension leaves undeclared — ``<table>_id``
    or ``…_<table>_id`` (an audit history's ``transaction_id``, ``end_transaction_id``),
    and the key column of ``<table>_version`` / ``<table>_history`` rows."""
    info = tables[name]
    found = {column: referred for column, referred, _ in info.foreign_keys}
    for other, their in tables.items():
        if not their.generated:
            continue
        stem = f"{bare(other)}_{their.generated}"
        for column in info.columns:
            if column in found or (column == info.generated and other == name):
                continue
            history = bare(name) in (f"{bare(other)}_version", f"{bare(other)}_history")
            by_name = column == stem or column.endswith(f"_{stem}")
            if by_name or (history and column == their.generated):
                found[column] = other
    return found
