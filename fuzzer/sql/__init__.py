"""What a recorded statement touches: its verb, whether it writes, its tables, the row it
writes, the values it sets. The one place that answers questions about a statement.

A statement the ORM or Core made is read from the statement SQLAlchemy compiled, when it
runs (``compiled``; the gate keeps the access on the trace step); recorded SQL text
(``text()``, raw driver SQL, a step read back from a report) is parsed by sqlglot
(``text``). Anything neither can read is left unknown, and the findings then rest on
table-level evidence only.

A call to a cache or to Redis is recorded as a statement too (``commands``), written
``cache GET attempts:1`` or ``redis INCR attempts:1``.
"""

from __future__ import annotations

import ast
import functools
from typing import Any

from fuzzer.sql.commands import (
    MEMO,
    STORES,
    Touch,
    command_access,
    command_text,
    command_touch,
    overlap,
)
from fuzzer.sql.shape import Access, Shape, bind, executemany

__all__ = [
    "MEMO",
    "PARSED",
    "STORES",
    "Access",
    "Shape",
    "Touch",
    "access",
    "command_access",
    "command_text",
    "executemany",
    "overlap",
    "read_only",
    "recorded",
    "shape",
    "shape_of",
    "takes_locks",
    "touch",
    "verb",
    "writes",
    "written_table",
]

#: Distinct statements (and statements with their parameters) kept parsed: a plan reads
#: the same few hundred statements of the survey's traces again for every pair, the gate
#: asks whether each statement it sees writes, and parsing is slow.
PARSED = 1 << 16


@functools.lru_cache(maxsize=PARSED)
def shape(statement: str) -> Shape:
    """What ``statement`` is, its parameters unbound (parsed once). A cache or Redis
    command, or a memoized call's, is no SQL: its verb, and nothing else (``commands``
    reads it)."""
    if statement.lstrip().startswith((*STORES, MEMO)):
        return Shape(verb=statement.split(None, 1)[0].upper())
    from fuzzer.sql import text  # sqlglot, imported when a statement is first parsed

    return text.shape(statement)


def shape_of(statement: str, context: Any = None) -> Shape:
    """What a statement being run is: read from the statement SQLAlchemy compiled when
    the execution ``context`` has one it reads exactly, else parsed from its text."""
    found = None
    if context is not None:
        from fuzzer.sql import compiled  # SQLAlchemy's, which is running the statement

        found = compiled.shape(context)
    return found if found is not None else shape(statement)


def recorded(statement: str, params_text: str, found: Shape) -> Access:
    """The access of a statement of shape ``found`` (``shape_of``) run with the
    parameters recorded as ``params_text``: the values are those the recorded text
    holds, so a step read back from a report reads the same."""
    if statement.lstrip().startswith(STORES):
        return access(statement, params_text)
    return _bound(found, params_text)


@functools.lru_cache(maxsize=PARSED)
def _bound(found: Shape, params_text: str) -> Access:
    return bind(found, _parse_params(params_text))


def writes(statement: str) -> bool:
    """Whether a statement writes (and so takes a write lock): a DML or DDL verb, SQLite's
    BEGIN IMMEDIATE or EXCLUSIVE, or a WITH whose body inserts, updates or deletes."""
    return shape(statement).writes


def read_only(statement: str) -> bool:
    """Whether a statement is plainly one that writes nothing (SELECT, SHOW, BEGIN, …)."""
    return shape(statement).read_only


def takes_locks(statement: str) -> bool:
    """Whether a statement takes row locks (a write, or a locking read: ``FOR UPDATE``,
    ``FOR SHARE``, ``LOCK IN SHARE MODE``)."""
    return shape(statement).locks


def verb(statement: str) -> str:
    """What the statement does: INSERT, UPDATE, DELETE or REPLACE for a write (a CTE's,
    when a WITH writes), else its first word, upper-cased, after any comments."""
    return shape(statement).verb


def written_table(statement: str) -> str | None:
    """The one table a plain INSERT, UPDATE, DELETE or REPLACE writes; None for any other
    write, or one that may write more or elsewhere (several tables, a join, a schema,
    several statements)."""
    seen = shape(statement)
    return seen.write if seen.plain else None


@functools.lru_cache(maxsize=PARSED)
def access(statement: str, params_text: str = "", prefix: str = "") -> Access:
    """Parse a statement and its recorded parameters. ``prefix`` qualifies table names
    ("db.") when the target has several databases. Parsed once: the same arguments
    give the same (immutable) answer from a cache."""
    text = " ".join(statement.split())
    if text.startswith(STORES):
        return command_access(text, prefix)
    return bind(shape(statement), _parse_params(params_text)).under(prefix)


@functools.lru_cache(maxsize=PARSED)
def touch(statement: str, prefix: str = "") -> Touch:
    """What ``statement`` reads and writes, for conflicts: tables of the database, and
    each key of a cache or Redis (``cache:attempts:alice:1``; a command that names no
    key, such as CLEAR, touches ``cache:*``, every key of its store)."""
    text = " ".join(statement.split())
    if text.startswith(STORES):
        return command_touch(text, prefix)
    a = access(statement, "", prefix)
    written = frozenset({a.write}) if a.write else frozenset()
    return Touch(a.reads | written, written)


def _parse_params(text: str) -> Any:
    """The parameters a step recorded as their ``repr``: literals as themselves, and a
    value no literal writes (``datetime.datetime(2026, 1, 1, 12, 0)``, ``Decimal('1.5')``,
    a UUID: what PyMySQL and psycopg are given) as its text, so the other parameters
    still name the row (a stamp's ``users.id`` beside its ``last_seen``)."""
    if not text or text.endswith("..."):
        return None
    try:
        return ast.literal_eval(_Opaque().visit(ast.parse(text, mode="eval")))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


class _Opaque(ast.NodeTransformer):
    """Each call, name or attribute of a parameters' ``repr`` made the string it reads."""

    def _text(self, node: ast.expr) -> ast.Constant:
        return ast.copy_location(ast.Constant(ast.unparse(node)), node)

    visit_Call = visit_Name = visit_Attribute = _text
