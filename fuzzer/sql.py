"""What a recorded SQL statement touches: its tables, the row it writes, the values it sets.

Best effort over the statements SQLAlchemy emits (qmark, format and pyformat
parameters); anything it cannot read it leaves unknown, and the findings then rest on
table-level evidence only.

A call to a cache or to Redis is recorded as a statement too (caches.py), written
``cache GET attempts:1`` or ``redis INCR attempts:1``: it reads and writes the "table"
``cache:attempts`` (the key up to its first colon), its key is the row.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
from dataclasses import dataclass
from typing import Any

_IDENT = r'[`"\[]?([A-Za-z_][\w$]*)[`"\]]?'
_QUALIFIED = rf"(?:{_IDENT}\s*\.\s*)?{_IDENT}"
_WRITE = re.compile(
    rf"^\s*(?:(UPDATE)\s+{_QUALIFIED}|(INSERT|REPLACE)\s+(?:OR\s+\w+\s+|IGNORE\s+)?INTO\s+"
    rf"{_QUALIFIED}|(DELETE)\s+FROM\s+{_QUALIFIED})",
    re.IGNORECASE,
)
_FROM = re.compile(rf"\b(?:FROM|JOIN)\s+{_QUALIFIED}", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|\?|(?<![:\w]):(\w+)")
_CAST = r"(?:::[A-Za-z_][\w ]*(?:\(\d+(?:,\s*\d+)?\))?)?"  # PostgreSQL's %(x)s::INTEGER
_ASSIGNMENT = re.compile(rf"{_IDENT}\s*=\s*(%\(\w+\)s|%s|\?|:\w+){_CAST}")


@dataclass(frozen=True)
class Access:
    """What one statement reads and writes."""

    reads: frozenset[str]
    write: str | None  # the table written, if any
    verb: str  # SELECT, UPDATE, INSERT, DELETE, …
    key: tuple[Any, ...] | None  # the WHERE parameters of an UPDATE/DELETE (the row)
    sets: tuple[tuple[str, Any], ...]  # (column, value) an UPDATE sets, when known
    assigned: tuple[str, ...] = ()  # every column an UPDATE sets, known value or not
    filters: tuple[tuple[str, Any], ...] = ()  # (column, value) of the WHERE's "column = ?"


_READ_ONLY = frozenset(
    {"SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "SET", "BEGIN", "START", "SAVEPOINT"}
    | {"RELEASE", "ROLLBACK", "COMMIT", "END", "VALUES", "PRAGMA"}
)
_LEADING_COMMENTS = re.compile(r"^\s*(?:(?:/\*.*?\*/|--[^\n]*)\s*)*", re.DOTALL)
_AFTER_TABLE = re.compile(r"\s|\(|$")


def written_table(statement: str) -> str | None:
    """The one table a plain INSERT, UPDATE, DELETE or REPLACE writes; None for any other
    write, or one that may write more or elsewhere (several tables, a join, a schema,
    several statements, a name it cannot read)."""
    text = statement.strip().rstrip(";")
    match = _WRITE.match(text)
    if match is None or ";" in text:
        return None
    groups = match.groups()
    verb = next(g for g in (groups[0], groups[3], groups[6]) if g).upper()
    schema = next((g for g in (groups[1], groups[4], groups[7]) if g), None)
    table = next(g for g in (groups[2], groups[5], groups[8]) if g)
    number = 3 if groups[2] else 6 if groups[5] else 9
    opened = text[match.start(number) - 1]
    closing = {"`": "`", '"': '"', "[": "]"}.get(opened)
    if closing is not None and text[match.end(number) : match.end(number) + 1] != closing:
        return None  # a quoted name it did not read whole ("my table")
    rest = text[match.end() :]
    if schema is not None or not _AFTER_TABLE.match(rest):
        return None
    upper = f" {rest.upper()} "
    if verb == "UPDATE":
        head = upper.split(" SET ", 1)[0]
        if "," in head or " JOIN " in head:
            return None
    elif verb == "DELETE":
        head = upper.split(" WHERE ", 1)[0]
        if "," in head or " USING " in head or " JOIN " in head:
            return None
    return table


def verb(statement: str) -> str:
    """The statement's first word, upper-cased, after any leading comments ("" if none)."""
    head = _LEADING_COMMENTS.sub("", statement, count=1).split(None, 1)
    return head[0].upper() if head else ""


#: Distinct (statement, parameters) kept parsed: a plan reads the same few hundred
#: statements of the survey's traces again for every pair, and a cache command's keys
#: are split as a shell would (``shlex``), which is slow.
#: The gate asks writes/read_only of every statement it sees.
PARSED = 1 << 16


@functools.lru_cache(maxsize=PARSED)
def writes(statement: str) -> bool:
    """Whether a statement writes (and so takes a write lock): a DML or DDL verb, SQLite's
    BEGIN IMMEDIATE or EXCLUSIVE, or a WITH whose body inserts, updates or deletes."""
    text = _LEADING_COMMENTS.sub("", statement, count=1)
    head = text.split(None, 2)
    first = head[0].upper() if head else ""
    if first in _WRITE_VERBS:
        return True
    if first == "BEGIN" and len(head) > 1:
        return head[1].upper() in ("IMMEDIATE", "EXCLUSIVE")
    if first == "WITH":
        upper = text.upper()
        return any(f" {v} " in upper for v in ("INSERT", "UPDATE", "DELETE"))
    return False


_WRITE_VERBS = frozenset(
    {"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE", "UPSERT"}
)


@functools.lru_cache(maxsize=PARSED)
def read_only(statement: str) -> bool:
    """Whether a statement is plainly one that writes nothing (SELECT, SHOW, BEGIN, …)."""
    text = _LEADING_COMMENTS.sub("", statement, count=1)
    head = text.split(None, 1)
    return bool(head) and head[0].upper() in _READ_ONLY


@functools.lru_cache(maxsize=PARSED)
def access(statement: str, params_text: str = "", prefix: str = "") -> Access:
    """Parse a statement and its recorded parameters. ``prefix`` qualifies table names
    ("db.") when the target has several databases. Parsed once: the same arguments
    give the same (immutable) answer from a cache."""
    text = " ".join(statement.split())
    if text.startswith(STORES):
        return command_access(text, prefix)
    verb = text.split(" ", 1)[0].upper() if text else ""
    match = _WRITE.match(text)
    write = None
    if match:
        groups = match.groups()
        write = next(g for g in (groups[2], groups[5], groups[8]) if g)
        verb = (groups[0] or groups[3] or groups[6] or verb).upper()
    reads = frozenset(prefix + m.group(2) for m in _FROM.finditer(text)) - (
        {prefix + write} if write and verb == "DELETE" else set()
    )
    params = _parse_params(params_text)
    if _executemany(params):
        params = None  # several rows, one statement: which rows is not one key
    key: tuple[Any, ...] | None = None
    sets: tuple[tuple[str, Any], ...] = ()
    assigned: tuple[str, ...] = ()
    if write and verb == "UPDATE":
        assigned = _assigned(_split_where(text)[0])
    filters: tuple[tuple[str, Any], ...] = ()
    if params is not None:
        head, _, where = _split_where(text)
        filters = tuple(_filters(where, params, offset=_count(head)))
        if write and verb in ("UPDATE", "DELETE"):
            key = tuple(_values(where, params, offset=_count(head)))
            if verb == "UPDATE":
                sets = tuple(_assignments(head, params))
    return Access(reads, prefix + write if write else None, verb, key, sets, assigned, filters)


_BEFORE_EQUALS = re.compile(rf"{_QUALIFIED}\s*=\s*$")


def _filters(text: str, params: Any, offset: int) -> list[tuple[str, Any]]:
    """(column, value) for each ``column = <placeholder>`` of a WHERE clause."""
    result = []
    position = offset
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1) or match.group(2)
        if name is not None and isinstance(params, dict):
            value, known = params.get(name), name in params
        elif isinstance(params, list | tuple) and position < len(params):
            value, known = params[position], True
            position += 1
        else:
            continue
        column = _BEFORE_EQUALS.search(text, 0, match.start())
        if known and column is not None:
            result.append((column.group(2), value))
    return result


def _assigned(head: str) -> tuple[str, ...]:
    """The columns of an UPDATE's SET clause, whatever their values (``stock=(stock - ?)``
    included)."""
    parts = re.split(r"\bSET\b", head, maxsplit=1, flags=re.IGNORECASE)
    if len(parts) != 2:
        return ()
    columns = []
    for item in _set_items(parts[1]):
        match = re.match(rf"\s*{_QUALIFIED}\s*=", item)
        if match:
            columns.append(match.group(2))
    return tuple(columns)


def _split_where(text: str) -> tuple[str, str, str]:
    upper = text.upper()
    position = upper.rfind(" WHERE ")
    if position < 0:
        return text, "", ""
    return text[:position], " WHERE ", text[position + 7 :]


def _count(text: str) -> int:
    return sum(1 for m in _PLACEHOLDER.finditer(text) if m.group(1) is None and m.group(2) is None)


def _values(text: str, params: Any, offset: int) -> list[Any]:
    values = []
    position = offset
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1) or match.group(2)
        if name is not None and isinstance(params, dict):
            values.append(params.get(name))
        elif isinstance(params, list | tuple) and position < len(params):
            values.append(params[position])
            position += 1
    return values


def _assignments(head: str, params: Any) -> list[tuple[str, Any]]:
    """(column, value) for each ``column = <placeholder>`` of the SET clause; an item
    whose value is an expression (``stock = (stock - ?)``) has no known value, but its
    placeholders still count for the positions of the ones after it."""
    set_part = re.split(r"\bSET\b", head, maxsplit=1, flags=re.IGNORECASE)
    if len(set_part) != 2:
        return []
    result = []
    position = _count(set_part[0])
    for item in _set_items(set_part[1]):
        match = _ASSIGNMENT.fullmatch(item.strip())
        if match is not None:
            column, placeholder = match.group(1), match.group(2)
            if placeholder.startswith("%(") and isinstance(params, dict):
                result.append((column, params.get(placeholder[2:-2])))
            elif placeholder.startswith(":") and isinstance(params, dict):
                result.append((column, params.get(placeholder[1:])))
            elif isinstance(params, list | tuple) and position < len(params):
                result.append((column, params[position]))
        position += _count(item)
    return result


def _set_items(text: str) -> list[str]:
    """A SET clause split at its top-level commas."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return items


def _executemany(params: Any) -> bool:
    """Whether recorded parameters are an executemany's: one set per row (a list of
    dicts, or of tuples), not the values of one statement."""
    return (
        isinstance(params, list | tuple)
        and bool(params)
        and all(isinstance(p, dict | list | tuple) for p in params)
    )


def _parse_params(text: str) -> Any:
    if not text or text.endswith("..."):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


# -- cache and Redis commands -------------------------------------------------------------

STORES = ("cache ", "redis ")  # how a command's recorded text begins

#: commands that only read; every other command reads and writes its keys
_READS = frozenset(
    {"GET", "HAS", "GET_MANY", "GET_DICT", "MGET", "EXISTS", "STRLEN", "GETRANGE", "TTL"}
    | {"PTTL", "TYPE", "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS"}
    | {"LRANGE", "LLEN", "LINDEX", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD"}
    | {"ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZSCORE", "ZMSCORE", "ZCARD", "ZCOUNT"}
    | {"ZRANK", "ZREVRANK", "KEYS", "SCAN", "DBSIZE", "WATCH", "PING"}
)
#: commands that write without reading (a blind write: it cannot act on a stale value)
_BLIND_WRITES = frozenset(
    {"SET", "SET_MANY", "DELETE", "DELETE_MANY", "UNLINK", "CLEAR", "MSET", "DEL"}
    | {"SETEX", "PSETEX", "EXPIRE", "PEXPIRE", "FLUSHDB"}
)


def command_text(store: str, commands: list[tuple[str, list[str]]], batch: str = "") -> str:
    """``cache GET attempts:1``; a batch (a Redis pipeline) is ``redis MULTI INCR a; EXPIRE
    a``. Keys with spaces or quotes are quoted as a shell would."""
    parts = [" ".join([op.upper(), *(shlex.quote(k) for k in keys)]) for op, keys in commands]
    return " ".join(filter(None, [store, batch, "; ".join(parts)]))


@dataclass(frozen=True)
class Touch:
    """What a statement touches at the grain two requests conflict on: tables of the
    database, and each key of a cache or Redis (``cache:attempts:alice:1``; a command
    that names no key, such as CLEAR, touches ``cache:*``, every key of its store)."""

    reads: frozenset[str]
    writes: frozenset[str]


@functools.lru_cache(maxsize=PARSED)
def touch(statement: str, prefix: str = "") -> Touch:
    """What ``statement`` reads and writes, for conflicts (``access`` names a store's
    "table" by its keys' first part, which lumps every key of an app whose keys share
    one prefix, ``app:…``, into one table: then every cache read conflicts with every
    cache write)."""
    text = " ".join(statement.split())
    if not text.startswith(STORES):
        a = access(statement, "", prefix)
        written = frozenset({a.write}) if a.write else frozenset()
        return Touch(a.reads | written, written)
    store, _, rest = text.partition(" ")
    head, _, tail = rest.partition(" ")
    if head in ("MULTI", "PIPELINE"):
        rest = tail
    reads: set[str] = set()
    writes: set[str] = set()
    for op, names in _commands(rest):
        keys = {f"{prefix}{store}:{name}" for name in names} or {f"{prefix}{store}:*"}
        if op not in _BLIND_WRITES:
            reads |= keys
        if op not in _READS:
            writes |= keys
    return Touch(frozenset(reads), frozenset(writes))


def overlap(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> bool:
    """Whether two sets of tables and keys share one; ``<store>:*`` is every key of
    its store."""
    if a & b:
        return True
    return _covers(a, b) or _covers(b, a)


def _covers(wild: frozenset[str] | set[str], other: frozenset[str] | set[str]) -> bool:
    """Whether a ``<store>:*`` of ``wild`` covers a key of ``other``."""
    stores = [t[:-1] for t in wild if t.endswith(":*")]
    return any(t.startswith(s) for s in stores for t in other)


def _commands(rest: str) -> list[tuple[str, list[str]]]:
    """The commands of a recorded batch: (verb, keys) each."""
    result = []
    for part in rest.split("; "):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        if words:
            result.append((words[0].upper(), words[1:]))
    return result


def command_access(text: str, prefix: str = "") -> Access:
    """What a recorded cache or Redis command touches: the tables ``<store>:<key prefix>``
    of its keys (``cache:*`` when it names none), the first key as the row."""
    store, _, rest = text.partition(" ")
    head, _, tail = rest.partition(" ")
    if head in ("MULTI", "PIPELINE"):
        rest = tail
    reads: set[str] = set()
    write = None
    verbs, keys = [], []
    for op, names in _commands(rest):
        verbs.append(op)
        tables = [f"{prefix}{store}:{name.split(':', 1)[0]}" for name in names] or [
            f"{prefix}{store}:*"
        ]
        if op not in _BLIND_WRITES:
            reads.update(tables)
        if op not in _READS and write is None:
            write = tables[0]
        keys += names
    verb = verbs[0] if len(verbs) == 1 else head
    key = (keys[0],) if keys and write is not None else None
    filters = (("key", keys[0]),) if keys else ()
    return Access(frozenset(reads), write, verb, key, (), (), filters)
