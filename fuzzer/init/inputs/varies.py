"""What varies between two setups or two serial runs of a request (salted hashes, tokens,
the clock): the columns and response fields the spec leaves uncompared."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fuzzer import compat
from fuzzer.init.plan import Plan, Table


def differing_columns(first: Mapping[str, Table], again: Mapping[str, Table]) -> list[str]:
    """Columns whose values differ between two runs of the same setup and look random by
    design (a salted hash, a token: long strings without spaces). A seed that draws
    random data (Faker) makes every column differ; its quantities, names and foreign
    keys are what the requests act on, and stay compared."""
    columns = []
    for name, table in first.items():
        other = again.get(name)
        if other is None or other.columns != table.columns:
            continue
        for position, column in enumerate(table.columns):
            if column in table.primary_key:
                continue
            mine = [row[position] for row in table.rows]
            theirs = [row[position] for row in other.rows]
            changed = [a for a, b in zip(mine, theirs, strict=False) if a != b]
            if mine != theirs and all(_random_looking(v) for v in changed):
                columns.append(f"{name}.{column}")
    return columns


def _random_looking(value: Any) -> bool:
    if isinstance(value, bytes):
        return len(value) >= 16
    return isinstance(value, str) and len(value) >= 16 and " " not in value


def time_columns(app: Any, plan: Plan, rows: Mapping[str, Table]) -> list[str]:
    """Columns the clock fills: a date-time type in the app's models, or a number whose
    default is ``time.time`` or whose values after setup are seconds since 1970 near
    now (``token_expiration = time() + 3600``)."""
    extension = compat.flask_sqlalchemy(app)
    if extension is None:
        return []
    found = []
    for bind, metadata in compat.metadatas(extension).items():
        database = f"{bind or 'default'}." if plan.databases else ""
        for table in metadata.sorted_tables:
            info = rows.get(f"{database}{table.name}")
            for column in table.columns:
                kind = type(column.type).__name__
                if column.primary_key:
                    continue
                if kind in ("DateTime", "TIMESTAMP", "Time") or _clock_number(column, info):
                    found.append(f"{database}{table.name}.{column.name}")
    return found


def _clock_number(column: Any, info: Table | None) -> bool:
    import time

    kind = type(column.type).__name__
    if kind not in ("Float", "REAL", "Numeric", "DOUBLE", "Double", "Integer", "BigInteger"):
        return False
    default = getattr(getattr(column, "default", None), "arg", None)
    if default is time.time or getattr(default, "__wrapped__", None) is time.time:
        return True
    if info is None or column.name not in info.columns:
        return False
    values = [row[info.columns.index(column.name)] for row in info.rows]
    values = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    now = time.time()
    timely = re.search(r"time|_at$|_on$|expir|seen|created|updated|date|stamp", column.name)
    if timely and kind not in ("Integer", "BigInteger"):
        return True  # a float named like a time: time() when the row is written
    return (
        bool(values)
        and (kind not in ("Integer", "BigInteger") or bool(timely))
        and all(abs(v - now) < 10 * 365 * 86400 for v in values)
    )


def serial_differences(
    plan: Plan, runs: Sequence[Mapping[Any, Any]], tables: Mapping[str, Any]
) -> None:
    """Columns and response fields that differ between two serial runs of the same
    request from the same snapshot (a random token, the clock): not compared."""
    first, again = runs
    columns: list[str] = []
    fields: list[str] = []
    for key, one in first.items():
        other = again.get(key)
        if other is None:
            continue
        for name, rows in one.tables.items():
            info = tables.get(name)
            theirs = other.tables.get(name, ())
            if info is None or len(rows) != len(theirs):
                continue
            for a, b in zip(rows, theirs, strict=False):
                for position, column in enumerate(info.columns):
                    if column in info.primary_key or a[position] == b[position]:
                        continue
                    label = f"{name}.{column}"
                    if label not in columns and label not in plan.ignore_columns:
                        columns.append(label)
        for a, b in zip(one.responses, other.responses, strict=False):
            if a is not None and b is not None:
                _differing_fields(a.body, b.body, fields)
    plan.ignore_columns += columns
    plan.ignore_fields += [f for f in fields if f not in plan.ignore_fields]


def _differing_fields(a: Any, b: Any, into: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() & b.keys():
            if isinstance(a[key], dict | list):
                _differing_fields(a[key], b[key], into)
            elif a[key] != b[key] and key not in into:
                into.append(str(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for x, y in zip(a, b, strict=False):
            _differing_fields(x, y, into)
