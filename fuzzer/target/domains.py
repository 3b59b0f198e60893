"""Strategies over what the app really has after setup: the ids and names in its rows.

``values_of("posts.id")`` draws one of the first few distinct values of a column as the
snapshot holds them (after ``setup`` and the logins), so a spec names real rows without
copying them; ``paths("/post/<int:post_id>/like", post_id=values_of("posts.id"))``
fills a URL rule's variables. Small domains are the point: two requests only race
when they touch the same row.

The values are read when a request is drawn, from the run that draws it (a context
variable the session sets once its snapshot is taken). Outside a run, and when the
column has no rows, ``otherwise`` is drawn from.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from fuzzer.errors import InvalidTarget

__all__ = ["bind", "paths", "values_of"]

#: The current run's tables (name -> column names) and initial rows (name -> rows).
_rows: ContextVar[tuple[Mapping[str, Sequence[str]], Mapping[str, Sequence[Sequence[Any]]]]] = (
    ContextVar("fuzzer_initial_rows")
)
_VARIABLE = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


@contextlib.contextmanager
def bind(
    columns: Mapping[str, Sequence[str]], rows: Mapping[str, Sequence[Sequence[Any]]]
) -> Iterator[None]:
    """Make ``values_of`` draw from these rows (the session's snapshot) in this context."""
    token = _rows.set((columns, rows))
    try:
        yield
    finally:
        _rows.reset(token)


def values_of(column: str, *, limit: int = 3, otherwise: Sequence[Any] = ()) -> SearchStrategy[Any]:
    """One of the first ``limit`` distinct values of ``column`` ("table.column", or
    "database.table.column" with named databases) in the rows present after setup, in
    primary-key order; ``otherwise`` when there are none (or outside a run). Shrinks
    toward the first value."""
    table, _, name = column.rpartition(".")
    if not table or not name:
        raise InvalidTarget(f"values_of expects 'table.column', got {column!r}")
    if not (isinstance(limit, int) and limit >= 1):
        raise InvalidTarget(f"values_of({column!r}): limit must be an int >= 1, got {limit!r}")
    fallback = tuple(otherwise)

    def choices(_: Any) -> SearchStrategy[Any]:
        values = _present(table, name, limit) or fallback
        if not values:
            where = (
                f"{table} has no rows after setup; seed some in setup"
                if _rows.get(None) is not None
                else "it draws from the rows present after setup, and was drawn outside a run"
            )
            raise InvalidTarget(f"values_of({column!r}): {where}, or give otherwise=[...]")
        return st.sampled_from(values)

    # just(None).flatmap: the lookup runs on every draw, inside the run that draws.
    return st.just(None).flatmap(choices)


def _present(table: str, name: str, limit: int) -> tuple[Any, ...]:
    bound = _rows.get(None)
    if bound is None:
        return ()
    columns, rows = bound
    if table not in columns:
        known = ", ".join(sorted(columns)) or "none"
        raise InvalidTarget(f"values_of: no table {table!r} after setup (tables: {known})")
    if name not in columns[table]:
        raise InvalidTarget(
            f"values_of: table {table!r} has no column {name!r} "
            f"(columns: {', '.join(columns[table])})"
        )
    position = list(columns[table]).index(name)
    seen: list[Any] = []
    for row in rows.get(table, ()):
        value = row[position]
        if value is not None and value not in seen:
            seen.append(value)
            if len(seen) == limit:
                break
    return tuple(seen)


def paths(rule: str, **variables: Any) -> SearchStrategy[str]:
    """URL paths made from a Flask/Werkzeug URL rule by drawing each of its variables
    (a value or a strategy); values are URL-quoted. The endpoint it is given to is
    named after the rule. Shrinks as the variables' strategies shrink."""
    names = [m.group(2) for m in _VARIABLE.finditer(rule)]
    missing = [n for n in names if n not in variables]
    extra = [n for n in variables if n not in names]
    if missing or extra:
        raise InvalidTarget(
            f"paths({rule!r}): "
            + (f"give a value or strategy for {', '.join(missing)}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"the rule has no variable {', '.join(extra)}" if extra else "")
        )
    drawn = {n: v if isinstance(v, SearchStrategy) else st.just(v) for n, v in variables.items()}

    def fill(values: dict[str, Any]) -> str:
        return _VARIABLE.sub(lambda m: _quote(m.group(1), values[m.group(2)]), rule)

    strategy = st.fixed_dictionaries(drawn).map(fill)
    strategy.rule = rule  # type: ignore[attr-defined]  # read by Endpoint for its name
    return strategy


def _quote(converter: str | None, value: Any) -> str:
    return quote(str(value), safe="/" if converter == "path" else "")
