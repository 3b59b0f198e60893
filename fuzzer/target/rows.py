"""Rows made from an app's models, for apps that have no seed: ``fill_tables(app)``.

Every table of the app's Flask-SQLAlchemy models that holds no row gets a few, in the
order of their foreign keys: deterministic values from each column's type and name
(``user1``, ``user1@example.com``, ``project1``; numbers 1; the first choice of an
enum), the column's own default where it has one, foreign keys that name the parent's
rows (two keys to one table name different rows: a follow is between two people), and
passwords set through the model's own ``set_password`` or ``password`` setter, else
hashed with Werkzeug, so that signing in with ``PASSWORD`` works.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from fuzzer import compat
from fuzzer.errors import TargetSetupError, describe

__all__ = ["PASSWORD", "fill_tables"]

PASSWORD = "Secret-pass-1"
_NAMES = ("username", "name", "login", "handle", "nickname", "user_name", "display_name")


def fill_tables(
    app: Any, *, rows: int = 2, password: str = PASSWORD, tables: Sequence[str] | None = None
) -> dict[str, int]:
    """Give each empty table of the app's models ``rows`` rows; returns how many each
    got. With ``tables``, only those, each topped up to ``rows`` rows (a second user
    beside the admin a setup wizard made). Call it inside the app's context (setup runs
    there)."""
    extension = compat.flask_sqlalchemy(app)
    if extension is None:
        raise TargetSetupError("fill_tables needs an app with Flask-SQLAlchemy")
    session = extension.session
    classes = _mapped_classes(extension)
    made: dict[str, int] = {}
    for metadata in compat.metadatas(extension).values():
        for table in metadata.sorted_tables:
            count = _count(session, table)
            if count if tables is None else table.name not in tables or count >= rows:
                continue
            numbers = range(count + 1, rows + 1)
            try:
                made[table.name] = _fill(session, table, classes.get(table.name), numbers, password)
                session.commit()
            except Exception as exc:
                session.rollback()
                raise TargetSetupError(
                    f"fill_tables: inserting into {table.name} failed: {describe(exc)}"
                ) from exc
    return made


def _mapped_classes(extension: Any) -> dict[str, type]:
    registry = getattr(getattr(extension, "Model", None), "registry", None)
    return {
        str(mapper.local_table.name): mapper.class_
        for mapper in getattr(registry, "mappers", ())
        if getattr(mapper, "local_table", None) is not None
    }


def _count(session: Any, table: Any) -> int:
    from sqlalchemy import func, select

    return int(session.execute(select(func.count()).select_from(table)).scalar() or 0)


def _fill(session: Any, table: Any, cls: type | None, numbers: Iterable[int], password: str) -> int:
    parents = _parent_keys(session, table)
    if parents is None:
        return 0  # a parent table with no rows to point at
    made = 0
    for i in numbers:
        values = _values(table, i, parents)
        if cls is None:
            session.execute(table.insert().values(**values))
        else:
            instance = cls()
            for key, value in values.items():
                setattr(instance, _attribute(cls, key), value)
            _set_password(instance, table, password)
            session.add(instance)
        session.flush()
        made += 1
    return made


def _attribute(cls: type, column: str) -> str:
    from sqlalchemy import inspect

    mapper: Any = inspect(cls)
    for attribute in mapper.column_attrs:
        if any(c.name == column for c in attribute.columns):
            return str(attribute.key)
    return column


def _parent_keys(session: Any, table: Any) -> dict[str, list[Any]] | None:
    """For each foreign key column, the values of the column it references."""
    from sqlalchemy import select

    keys: dict[str, list[Any]] = {}
    for column in table.columns:
        for foreign in column.foreign_keys:
            target = foreign.column
            if target.table is table:
                continue  # a self reference (a reply's parent): left empty
            found = [r[0] for r in session.execute(select(target).order_by(target))]
            if not found and not column.nullable:
                return None
            keys[column.name] = found
    return keys


def _values(table: Any, i: int, parents: dict[str, list[Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    seen: dict[str, int] = {}  # parent table -> how many keys to it so far
    for column in table.columns:
        if column.name in parents:
            found = parents[column.name]
            if not found:
                continue
            parent = next(iter(column.foreign_keys)).column.table.name
            offset = seen.get(parent, 0)
            seen[parent] = offset + 1
            values[column.name] = found[(i - 1 + offset) % len(found)]
            continue
        if column.primary_key and _autoincrement(column):
            continue
        if column.default is not None or column.server_default is not None:
            continue
        if any(f.column.table is table for f in column.foreign_keys):
            continue
        value = _value(table, column, i)
        if value is not None:
            values[column.name] = value
    return values


def _autoincrement(column: Any) -> bool:
    kind = type(column.type).__name__.lower()
    return "int" in kind and column.autoincrement in (True, "auto")


def _value(table: Any, column: Any, i: int) -> Any:
    kind = column.type
    name = column.name.lower()
    python = _python_type(kind)
    stem = _stem(table.name)
    if "password" in name:
        return None if column.nullable else "-"  # set through the model below
    if getattr(kind, "enums", None):
        return kind.enums[0]
    if python is bool:
        return False
    if python in (int, float) or type(kind).__name__ in ("Numeric", "DECIMAL"):
        return i if column.primary_key else 1
    if python is datetime.datetime:
        return datetime.datetime(2025, 1, 1, 12, 0)
    if python is datetime.date:
        return datetime.date(2025, 1, 1)
    if python is datetime.time:
        return datetime.time(12, 0)
    if python is uuid.UUID:
        return uuid.UUID(int=i)
    if python is bytes:
        return b"data"
    if python in (dict, list):
        return python()
    if "email" in name:
        return _fit(f"{stem}{i}@example.com", kind)
    return _fit(f"{stem}{i}", kind)


def _python_type(kind: Any) -> Any:
    try:
        return kind.python_type
    except (NotImplementedError, AttributeError):
        return None


def _stem(name: str) -> str:
    word = name.lower().rsplit("_", 1)[-1]
    if word in ("users", "accounts", "members", "people", "person", "account", "member"):
        return "user"
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _fit(text: str, kind: Any) -> str:
    length = getattr(kind, "length", None)
    return text[-length:] if length and len(text) > length else text


def _set_password(instance: Any, table: Any, password: str) -> None:
    """Through the model's own setter, else a Werkzeug hash in a password column."""
    setter = getattr(instance, "set_password", None)
    if callable(setter):
        setter(password)
        return
    descriptor = getattr(type(instance), "password", None)
    if isinstance(descriptor, property) and descriptor.fset is not None:
        instance.password = password
        return
    for column in table.columns:
        name = column.name.lower()
        if "password" in name or name in ("pw_hash", "passhash"):
            from werkzeug.security import generate_password_hash

            value = generate_password_hash(password) if "hash" in name else password
            setattr(instance, _attribute(type(instance), column.name), value)
