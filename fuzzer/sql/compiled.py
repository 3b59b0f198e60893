"""A statement the ORM or Core made, read from the statement SQLAlchemy compiled: its verb
and table from the ``Insert``/``Update``/``Delete``/``Select`` object, the tables it reads
from its FROM clauses and subqueries, the columns of its SET and of its WHERE's
``column = parameter`` from the expressions themselves, each parameter named as the
compiled SQL names it (its position, for a positional paramstyle).

What it cannot read exactly it leaves to the parser of the text (``None``): textual SQL,
DDL, a parameter SQLAlchemy expands when the statement runs (``IN`` of a list), an
UPDATE or DELETE of several tables. A compiled statement is cached by SQLAlchemy and
run again; its shape is read once and kept with it.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import sql as sa_sql
from sqlalchemy.sql import operators, util, visitors

from fuzzer.sql.shape import Ref, Shape

_shapes: weakref.WeakKeyDictionary[Any, Shape | None] = weakref.WeakKeyDictionary()


def shape(context: Any) -> Shape | None:
    """The shape of the statement an execution context runs; None when SQLAlchemy did not
    compile it from an expression, or not one this reads exactly."""
    compiled = getattr(context, "compiled", None)
    if compiled is None or getattr(context, "isddl", False):
        return None
    try:
        return _shapes[compiled]
    except KeyError:
        pass
    except TypeError:  # not weakly referenceable: read it each time
        return _reading(compiled)
    found = _reading(compiled)
    _shapes[compiled] = found
    return found


def _reading(compiled: Any) -> Shape | None:
    """``_read``, and None (the text's parser reads it) for a statement of a form this
    does not know: the app's statement runs whatever this makes of it."""
    try:
        return _read(compiled)
    except Exception:
        return None


def _read(compiled: Any) -> Shape | None:
    if getattr(compiled, "post_compile_params", None) or getattr(
        compiled, "literal_execute_params", None
    ):
        return None  # the SQL run is not the SQL compiled: the text says which
    state = getattr(compiled, "compile_state", None)
    statement = getattr(state, "statement", None)
    if statement is None:
        statement = getattr(compiled, "statement", None)
    if statement is None:
        return None
    names = _Names(compiled)
    if isinstance(statement, sa_sql.Select | sa_sql.CompoundSelect):
        return Shape(
            verb="SELECT",
            reads=_tables(statement),
            read_only=True,
            locks=bool(getattr(statement, "_for_update_arg", None)),
            filters=_filters(statement, names),
        )
    if isinstance(statement, sa_sql.Insert | sa_sql.Update | sa_sql.Delete):
        return _write(compiled, state, statement, names)
    return None


def _write(compiled: Any, state: Any, statement: Any, names: _Names) -> Shape | None:
    if getattr(state, "_extra_froms", None):
        return None  # UPDATE … FROM, a multi-table DELETE: the parser reads which
    table = statement.table
    verb = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}[statement.__visit_name__]
    where = getattr(statement, "whereclause", None)
    reads: set[str] = set()
    if where is not None:
        reads |= _tables(where)
    select = getattr(statement, "select", None)
    if select is not None:
        reads |= _tables(select)
    values = dict(getattr(state, "_dict_parameters", None) or {})
    for value in values.values():
        if isinstance(value, sa_sql.ClauseElement):
            reads |= _tables(value)
    assigned: tuple[str, ...] = ()
    sets: tuple[tuple[str, Ref], ...] = ()
    if verb == "UPDATE":
        clause = _set_clause(compiled, table, values, names)
        if clause is None:
            return None
        assigned, sets = clause
    return Shape(
        verb=verb,
        reads=frozenset(reads),
        write=table.name,
        writes=True,
        locks=True,
        plain=getattr(table, "schema", None) is None,
        assigned=assigned,
        sets=sets,
        where=names.refs(where) if where is not None else (),
        filters=_filters(statement, names),
    )


class _Names:
    """How the compiled SQL names each bound parameter: its position among the
    positional ones, or its name."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.bind_names: dict[Any, str] = compiled.bind_names
        positions = compiled.positiontup if compiled.positional else None
        self.positions = {name: i for i, name in reversed(list(enumerate(positions or ())))}
        self.positional = positions is not None

    def ref(self, bind: Any) -> Ref | None:
        name = self.bind_names.get(bind)
        if name is None:
            return None
        if self.positional:
            return self.positions.get(name)
        return name

    def refs(self, clause: Any) -> tuple[Ref, ...]:
        """The parameters of a clause, in the order the compiled SQL writes them."""
        found = [r for b in _binds(clause) if (r := self.ref(b)) is not None]
        if self.positional:
            return tuple(sorted(set(found), key=lambda r: r))
        text = self.compiled.string
        template = getattr(self.compiled, "bindtemplate", "%(name)s")
        spots = {r: text.find(template % {"name": r}) for r in found}
        return tuple(sorted(set(found), key=lambda r: spots[r]))


def _binds(clause: Any) -> list[Any]:
    return [e for e in visitors.iterate(clause) if isinstance(e, sa_sql.elements.BindParameter)]


def _tables(clause: Any) -> frozenset[str]:
    return frozenset(t.name for t in util.find_tables(clause, include_crud=False))


def _filters(statement: Any, names: _Names) -> tuple[tuple[str, Ref], ...]:
    """(column, parameter) of each ``column = parameter`` of the statement's WHERE
    clauses (its subqueries' included), in the order the SQL writes them."""
    found: list[tuple[str, Ref]] = []
    wheres = [statement.whereclause] if getattr(statement, "whereclause", None) is not None else []
    for node in visitors.iterate(statement):
        element: Any = node
        subquery = element is not statement and isinstance(element, sa_sql.Select)
        if subquery and element.whereclause is not None:
            wheres.append(element.whereclause)
    for where in wheres:
        for element in visitors.iterate(where):
            if (
                isinstance(element, sa_sql.elements.BinaryExpression)
                and element.operator is operators.eq
                and isinstance(element.left, sa_sql.ColumnElement)
                and hasattr(element.left, "table")
            ):
                right = element.right
                while isinstance(right, sa_sql.elements.Cast | sa_sql.elements.Grouping):
                    right = right.clause
                ref = names.ref(right)
                if ref is not None and (element.left.name, ref) not in found:
                    found.append((element.left.name, ref))
    return tuple(sorted(found, key=lambda f: _order(names, f[1])))


def _order(names: _Names, ref: Ref) -> int:
    if isinstance(ref, int):
        return ref
    template = getattr(names.compiled, "bindtemplate", "%(name)s")
    return int(names.compiled.string.find(template % {"name": ref}))


def _set_clause(
    compiled: Any, table: Any, values: dict[Any, Any], names: _Names
) -> tuple[tuple[str, ...], tuple[tuple[str, Ref], ...]] | None:
    """The columns an UPDATE sets, in the table's order as SQLAlchemy writes them, and the
    parameter of each whose value is one: the statement's values, the parameters it was
    compiled for (the ORM's flush), and the columns with a Python-side ``onupdate``."""
    keys = {getattr(k, "key", k) for k in values} | set(compiled.column_keys or ())
    columns = [c for c in table.columns if c.key in keys or c.onupdate is not None]
    if not columns:
        return None
    binds = {name: bind for bind, name in names.bind_names.items()}
    sets = []
    for column in columns:
        given = values.get(column, values.get(column.key))
        if isinstance(given, sa_sql.ClauseElement) and not isinstance(
            given, sa_sql.elements.BindParameter
        ):
            continue  # an expression (stock - 1): no value of its own
        bind = binds.get(column.key)
        ref = names.ref(bind) if bind is not None else None
        if ref is not None:
            sets.append((column.name, ref))
    return tuple(c.name for c in columns), tuple(sets)
