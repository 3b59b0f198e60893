"""What a statement is, before its parameters are known: its verb, the tables it reads and
writes, and which of its parameters fill which column of its SET and WHERE clauses.

Two readers make one: ``text`` parses recorded SQL with sqlglot, ``compiled`` reads the
statement SQLAlchemy compiled. ``bind`` gives a shape its recorded parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: a parameter of a statement: its position among the statement's positional parameters,
#: or its name (``%(name)s``, ``:name``)
Ref = int | str


@dataclass(frozen=True)
class Shape:
    """What a statement reads and writes, its parameters named but not yet bound."""

    verb: str  # SELECT, UPDATE, INSERT, DELETE, REPLACE, BEGIN, COMMIT, …
    reads: frozenset[str] = frozenset()
    write: str | None = None  # the table an INSERT, UPDATE, DELETE or REPLACE writes
    writes: bool = False  # it takes a write lock: DML, DDL, BEGIN IMMEDIATE, a CTE that writes
    read_only: bool = False  # plainly writes nothing (SELECT, SHOW, BEGIN, SAVEPOINT, …)
    locks: bool = False  # it takes row locks: a write, or a locking read (FOR UPDATE)
    plain: bool = False  # it writes ``write`` alone, named without a schema
    assigned: tuple[str, ...] = ()  # every column an UPDATE sets
    sets: tuple[tuple[str, Ref], ...] = ()  # (column, parameter) of an UPDATE's SET
    where: tuple[Ref, ...] = ()  # every parameter of the WHERE, in the order written
    filters: tuple[tuple[str, Ref], ...] = ()  # (column, parameter) of "column = parameter"


@dataclass(frozen=True)
class Access:
    """What one statement reads and writes, with the values of its parameters."""

    reads: frozenset[str]
    write: str | None  # the table written, if any
    verb: str  # SELECT, UPDATE, INSERT, DELETE, …
    key: tuple[Any, ...] | None  # the WHERE parameters of an UPDATE/DELETE (the row)
    sets: tuple[tuple[str, Any], ...]  # (column, value) an UPDATE sets, when known
    assigned: tuple[str, ...] = ()  # every column an UPDATE sets, known value or not
    filters: tuple[tuple[str, Any], ...] = ()  # (column, value) of the WHERE's "column = ?"

    def under(self, prefix: str) -> Access:
        """The same access with its tables named ``<prefix><table>`` (``db.``: a target
        with several databases)."""
        if not prefix:
            return self
        return Access(
            frozenset(prefix + t for t in self.reads),
            prefix + self.write if self.write else None,
            self.verb,
            self.key,
            self.sets,
            self.assigned,
            self.filters,
        )


def bind(shape: Shape, params: Any) -> Access:
    """The access of a statement of this shape run with ``params`` (a tuple or list for
    positional parameters, a dict for named ones; None when unknown, or an executemany's
    several sets: which rows is then not one key). A named parameter missing from the
    dict keeps its place in the key and the SET as None, and is no filter."""
    if executemany(params):
        params = None
    key: tuple[Any, ...] | None = None
    sets: tuple[tuple[str, Any], ...] = ()
    filters: tuple[tuple[str, Any], ...] = ()
    if params is not None:
        filters = tuple(
            (column, _value(params, ref)) for column, ref in shape.filters if _present(params, ref)
        )
        if shape.write and shape.verb in ("UPDATE", "DELETE"):
            key = tuple(_value(params, ref) for ref in shape.where if _placed(params, ref))
        if shape.write and shape.verb == "UPDATE":
            sets = tuple(
                (column, _value(params, ref)) for column, ref in shape.sets if _placed(params, ref)
            )
    return Access(shape.reads, shape.write, shape.verb, key, sets, shape.assigned, filters)


def _placed(params: Any, ref: Ref) -> bool:
    """Whether the parameters have a place for ``ref``: a dict for a name, a sequence
    long enough for a position."""
    if isinstance(ref, str):
        return isinstance(params, dict)
    return isinstance(params, list | tuple) and ref < len(params)


def _present(params: Any, ref: Ref) -> bool:
    return _placed(params, ref) and (not isinstance(ref, str) or ref in params)


def _value(params: Any, ref: Ref) -> Any:
    return params.get(ref) if isinstance(ref, str) else params[ref]


def executemany(params: Any) -> bool:
    """Whether recorded parameters are an executemany's: one set per row (a list of
    dicts, or of tuples), not the values of one statement."""
    return (
        isinstance(params, list | tuple)
        and bool(params)
        and all(isinstance(p, dict | list | tuple) for p in params)
    )
