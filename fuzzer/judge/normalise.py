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
from fuzzer.judge.masks import Masks, Position, Varies
from fuzzer.judge.verdict import Outcome, at, bare, sort_key
from fuzzer.model import Execution, Response, Step
from fuzzer.sql import access


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
            None if r is None else self._answer(r, id_labels, at(labels, i))
            for i, r in enumerate(execution.responses)
        )
        observers = tuple(
            self._answer(r, id_labels, at(observer_labels, i))
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
                key=lambda row: sort_key(self._content(name, row, renames, skip=position)),
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
                value = Varies(value, f"{bare(name)}.{column}")
            values.append(value)
        return tuple(values)

    def _rows(self, name: str, rows: Rows, renames: Mapping[tuple[str, Any], str]) -> Rows:
        if name not in self.tables:
            return rows
        return tuple(sorted((self._content(name, row, renames) for row in rows), key=sort_key))

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
                    and f"{bare(q[1])}.{q[3]}" in (cell, f"{bare(q[1])}.{cell}")
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
