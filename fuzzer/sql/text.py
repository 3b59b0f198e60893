"""Recorded SQL text read by a real parser (sqlglot): ``text()`` statements and raw
driver SQL, and any statement read back from a report.

The driver's placeholders (``?``, ``%s``, ``%(name)s``, ``:name``) are first renamed
``:fz<n>`` so one grammar reads every paramstyle; ``n`` remembers which parameter each
was. Each dialect's grammar is tried in turn (backquotes: MySQL first); a statement none
of them reads keeps its first word as its verb and names no table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from fuzzer.sql.shape import Ref, Shape

# sqlglot logs a warning for each statement it reads only as a bare command (CALL,
# SAVEPOINT): those are read by their first word here, on purpose
logging.getLogger("sqlglot").addFilter(
    lambda record: "Falling back to parsing as a 'Command'" not in record.getMessage()
)

#: the lexemes that matter for renaming placeholders: quoted text (left alone) and the
#: four paramstyles' placeholders. Not a reading of SQL: the parser does that.
_LEXEMES = re.compile(
    r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"]|"")*"|`[^`]*`|--[^\n]*|/\*.*?\*/"""
    r"""|(%\((\w+)\)s|%s|\?|(?<![:\w]):(\w+))""",
    re.DOTALL,
)
_DIALECTS = ("postgres", "mysql", "sqlite", None)
_BACKQUOTED = ("mysql", "sqlite", None)

#: verbs of statements that write nothing: the transaction's own, and reads
_READ_ONLY = frozenset(
    {"SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "SET", "BEGIN", "START", "SAVEPOINT"}
    | {"RELEASE", "ROLLBACK", "COMMIT", "END", "VALUES", "PRAGMA", "WITH"}
)
#: verbs that write (a statement sqlglot reads only as a bare command keeps its verb)
_WRITE_VERBS = frozenset(
    {"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE", "UPSERT"}
    | {"MERGE"}
)
_DML = (exp.Insert, exp.Update, exp.Delete)


def placeholders(statement: str) -> tuple[str, dict[str, Ref]]:
    """The statement with every placeholder renamed ``:fz<n>``, and what each was: its
    position among the positional ones, or its name."""
    refs: dict[str, Ref] = {}
    position = 0

    def rename(match: re.Match[str]) -> str:
        nonlocal position
        if match.group(1) is None:
            return match.group(0)
        name = match.group(2) or match.group(3)
        ref: Ref
        if name is None:
            ref, position = position, position + 1
        else:
            ref = name
        label = f"fz{len(refs)}"
        refs[label] = ref
        return f":{label}"

    return _LEXEMES.sub(rename, statement), refs


def first_word(statement: str) -> str:
    """The statement's first keyword, upper-cased, comments skipped ("" if none)."""
    try:
        tokens = sqlglot.tokenize(statement)
    except SqlglotError:
        tokens = []
    if tokens:
        return tokens[0].text.upper()
    words = statement.split(None, 1)
    return words[0].upper() if words and not words[0].startswith(("--", "/*")) else ""


def shape(statement: str) -> Shape:
    """Parse one statement (or several, ``;``-separated: the first is read, and the
    write may reach further)."""
    word = first_word(statement)
    renamed, refs = placeholders(statement)
    trees = _parse(renamed, word)
    if not trees:
        writes = word in _WRITE_VERBS
        return Shape(verb=word, writes=writes, read_only=word in _READ_ONLY, locks=writes)
    tree = trees[0]
    writes = any(_writes(t) for t in trees)
    dml = next((n for t in trees for n in _dml(t)), None)
    verb = _verb(dml, word) if dml is not None else word
    read_only = verb in _READ_ONLY and not writes and not isinstance(tree, exp.Command)
    locking = writes or any(n.args.get("locks") for n in tree.find_all(exp.Select))
    if dml is None:
        return Shape(
            verb=verb,
            reads=_reads(tree, ()),
            writes=writes,
            read_only=read_only,
            locks=bool(locking),
            filters=_filters(tree, refs),
        )
    written = _written(dml)
    write = written[0] if written else None
    target = dml.this if isinstance(dml.this, exp.Table) else dml.find(exp.Table)
    plain = (
        len(trees) == 1
        and len(set(written)) == 1
        and isinstance(target, exp.Table)
        and not target.args.get("db")
        and not dml.args.get("using")
        and not dml.args.get("tables")
        and not (isinstance(dml, exp.Update) and _joins(dml, target))
        and sum(1 for t in trees for _ in _dml(t)) == 1
    )
    assigned: tuple[str, ...] = ()
    sets: tuple[tuple[str, Ref], ...] = ()
    if isinstance(dml, exp.Update):
        assigned = tuple(e.this.name for e in dml.expressions if isinstance(e, exp.EQ))
        sets = tuple(
            (e.this.name, ref)
            for e in dml.expressions
            if isinstance(e, exp.EQ) and (ref := _ref(e.expression, refs)) is not None
        )
    where = dml.args.get("where")
    where = where if isinstance(where, exp.Expression) else None  # older releases: False
    return Shape(
        verb=verb,
        reads=_reads(tree, [target] if target is not None and _target_written(dml) else []),
        write=write,
        writes=True,
        read_only=False,
        locks=True,
        plain=plain,
        assigned=assigned,
        sets=sets,
        where=_where_refs(where, refs) if where is not None else (),
        filters=_filters(dml, refs),
    )


def _parse(renamed: str, word: str) -> list[exp.Expr]:
    text = renamed
    if word in ("REPLACE", "UPSERT"):  # MySQL's REPLACE INTO: read as the INSERT it is
        first = sqlglot.tokenize(text)[0]
        text = f"{text[: first.start]}INSERT{text[first.end + 1 :]}"
    for dialect in _BACKQUOTED if "`" in text else _DIALECTS:
        try:
            trees = [t for t in sqlglot.parse(text, read=dialect) if t is not None]
        except SqlglotError:
            continue
        if trees and not _garbled(trees[0], word):
            return trees
    return []


def _garbled(tree: exp.Expr, word: str) -> bool:
    """A parse that lost the statement's first word (``START TRANSACTION`` read as a
    column with an alias): another dialect's grammar may read it."""
    return isinstance(tree, exp.Alias | exp.Column | exp.Anonymous) and word not in ("", "VALUES")


def _joins(update: exp.Expr, target: exp.Table) -> bool:
    """Whether an UPDATE names other tables: MySQL's ``UPDATE a JOIN b`` or ``UPDATE a,
    b``, PostgreSQL's ``UPDATE a … FROM b``."""
    return bool(target.args.get("joins") or update.args.get("from_") or update.args.get("from"))


def _dml(tree: exp.Expr) -> Iterator[exp.Expr]:
    """The INSERT, UPDATE and DELETE nodes of a statement, the outermost first."""
    if isinstance(tree, _DML):
        yield tree
    for node in tree.find_all(*_DML):
        if node is not tree:
            yield node


def _writes(tree: exp.Expr) -> bool:
    if isinstance(tree, exp.Command):
        return str(tree.this).upper() in _WRITE_VERBS
    if isinstance(tree, exp.Transaction):
        return str(tree.this or "").upper() in ("IMMEDIATE", "EXCLUSIVE")
    if isinstance(tree, exp.Create | exp.Drop | exp.Alter | exp.TruncateTable | exp.Merge):
        return True
    return tree.find(*_DML) is not None


def _verb(dml: exp.Expr, word: str) -> str:
    if isinstance(dml, exp.Insert):
        return "REPLACE" if word == "REPLACE" else "INSERT"
    return "UPDATE" if isinstance(dml, exp.Update) else "DELETE"


def _written(dml: exp.Expr) -> list[str]:
    """The tables a write changes: an INSERT's or DELETE's table, an UPDATE's (of the
    table each SET column names, through its alias, when the UPDATE joins others)."""
    target = dml.this if isinstance(dml.this, exp.Table) else dml.find(exp.Table)
    if target is None:
        return []
    if isinstance(dml, exp.Delete) and dml.args.get("tables"):
        return [t.name for t in dml.args["tables"]]
    if not isinstance(dml, exp.Update):
        return [target.name]
    aliases = {t.alias_or_name: t.name for t in dml.find_all(exp.Table)}
    tables = []
    for item in dml.expressions:
        column = item.this if isinstance(item, exp.EQ) else None
        qualifier = column.table if isinstance(column, exp.Column) else ""
        tables.append(aliases.get(qualifier, target.name) if qualifier else target.name)
    return tables or [target.name]


def _target_written(dml: exp.Expr) -> bool:
    """Whether the table a write names first is the one it writes (not so in MySQL's
    ``UPDATE a JOIN b … SET b.y = …``, where ``a`` is only read)."""
    target = dml.this if isinstance(dml.this, exp.Table) else dml.find(exp.Table)
    return target is not None and target.name in _written(dml)


def _reads(tree: exp.Expr, skipped: list[exp.Table] | tuple[()]) -> frozenset[str]:
    """Every table the statement names but the one it writes into, and no CTE's name."""
    ctes = {c.alias for c in tree.find_all(exp.CTE)}
    skip = {id(t) for t in skipped}
    return frozenset(
        t.name
        for t in tree.find_all(exp.Table)
        if id(t) not in skip and t.name and t.name not in ctes and not _is_target(t, tree)
    )


def _is_target(table: exp.Table, tree: exp.Expr) -> bool:
    """Whether a table node is the table an INSERT inserts into (its ``Schema``)."""
    parent = table.parent
    if isinstance(parent, exp.Schema):
        parent = parent.parent
    return isinstance(parent, exp.Insert) and parent.this in (table, table.parent)


def _ref(node: exp.Expr, refs: dict[str, Ref]) -> Ref | None:
    """The parameter a value is (through a cast: PostgreSQL's ``%(x)s::INTEGER``)."""
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    if isinstance(node, exp.Placeholder):
        return refs.get(str(node.this))
    return None


def _where_refs(where: exp.Expr, refs: dict[str, Ref]) -> tuple[Ref, ...]:
    labels = [str(p.this) for p in where.find_all(exp.Placeholder)]
    ordered = sorted((int(label[2:]), label) for label in labels if label in refs)
    return tuple(refs[label] for _, label in ordered)


def _filters(tree: exp.Expr, refs: dict[str, Ref]) -> tuple[tuple[str, Ref], ...]:
    """(column, parameter) of each ``column = parameter`` of the statement's WHERE
    clauses, in the order written."""
    found = []
    for where in tree.find_all(exp.Where):
        for eq in where.find_all(exp.EQ):
            column, value = eq.this, eq.expression
            if not isinstance(column, exp.Column):
                continue
            ref = _ref(value, refs)
            placeholder = value.find(exp.Placeholder)
            if ref is not None and placeholder is not None:
                found.append((int(str(placeholder.this)[2:]), column.name, ref))
    return tuple((column, ref) for _, column, ref in sorted(set(found), key=lambda f: f[0]))
