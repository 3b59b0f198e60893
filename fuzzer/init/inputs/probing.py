"""Values by probing, when names tell nothing: a path variable no column is named like
(``/follow/<recipient>``) is tried with the first value of each column of a matching
type, by a request sent through the app's test client as the first signed-in user; the
column whose value the endpoint answers 2xx (a page) or 2xx/3xx and writes (a change)
for is the one it draws from."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fuzzer.init.plan import Plan, Table

__all__ = ["Prober", "prober"]

Prober = Callable[[str, str, str, bool], "tuple[str, str] | None"]
_CANDIDATES = 12  # columns tried at most, per variable


def prober(app: Any, plan: Plan, rows: Mapping[str, Table]) -> Prober:
    """``probe(method, rule, variable, numeric)``: the ``(table, column)`` that works."""

    def probe(method: str, rule: str, variable: str, numeric: bool) -> tuple[str, str] | None:
        for table, column, value in list(_candidates(rows, numeric))[:_CANDIDATES]:
            path = rule.replace(_placeholder(rule, variable), str(value))
            if _works(app, plan, method, path):
                return table, column
        return None

    return probe


def _placeholder(rule: str, variable: str) -> str:
    start = rule.index("<")
    while start >= 0:
        end = rule.index(">", start)
        if rule[start + 1 : end].rsplit(":", 1)[-1] == variable:
            return rule[start : end + 1]
        start = rule.find("<", end)
    return f"<{variable}>"


def _candidates(rows: Mapping[str, Table], numeric: bool) -> Iterator[tuple[str, str, Any]]:
    for name, table in rows.items():
        for position, column in enumerate(table.columns):
            kind = table.types[position].upper()
            is_number = any(k in kind for k in ("INT", "NUMERIC", "FLOAT", "REAL", "DECIMAL"))
            if is_number != numeric or "password" in column.lower():
                continue
            values = [r[position] for r in table.rows if r[position] not in (None, "")]
            if values and (numeric or all("/" not in str(v) for v in values[:1])):
                yield name, column, values[0]


def _works(app: Any, plan: Plan, method: str, path: str) -> bool:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from fuzzer.sql import writes

    wrote: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if writes(statement):
            wrote.append(statement)

    client = app.test_client()
    if plan.user_keys and getattr(app, "login_manager", None) is not None:
        with contextlib.suppress(Exception), client.session_transaction() as session:
            session["_user_id"] = str(plan.user_keys[0])
            session["_fresh"] = True
    event.listen(Engine, "before_cursor_execute", seen)
    try:
        status = client.open(path, method=method).status_code
    except Exception:
        return False
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    if method == "GET":
        return 200 <= status < 300
    return 200 <= status < 400 and bool(wrote)
