"""Injected errors (``--faults``): a statement fails as the database would make it fail.

A fault is a gene (``model.Fault``): "statement k of request i fails with a deadlock".
The gate (gates.py) arms it when the request reaches that statement; SQLAlchemy's
``do_execute`` dialect event then calls ``inject`` instead of running the statement.
``inject`` leaves the connection as the real error would, then raises the driver's
own exception, inside SQLAlchemy's execution, so SQLAlchemy wraps it
(``sqlalchemy.exc.OperationalError``), invalidates a lost connection, and the app sees
exactly what production would:

* MariaDB/MySQL (PyMySQL): a deadlock (1213) rolls the whole transaction back, so a
  ``ROLLBACK`` is sent first; a lock wait timeout (1205) fails only the statement; a
  lost connection (2013) is rolled back too, and SQLAlchemy, which reads 2013 as a
  disconnect, closes the connection and invalidates it.
* PostgreSQL (psycopg): the server itself raises the error, by a ``DO`` block that
  raises with the SQLSTATE (40001 serialization failure, 40P01 deadlock): the
  transaction is then aborted as after the real one, and psycopg raises its own
  ``SerializationFailure`` / ``DeadlockDetected``. A lost connection closes it.
* SQLite: ``database is locked`` (SQLITE_BUSY) fails the statement; the transaction
  stays open, as SQLite leaves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from fuzzer.errors import InvalidOption
from fuzzer.model import FAULT_KINDS
from fuzzer.sql import takes_locks

#: what ``--faults`` alone injects: the errors a database tells the app to retry. A lost
#: connection is opt-in (``--faults disconnect``): it can strike any statement, and few
#: apps retry a read on it.
DEFAULT_KINDS = ("deadlock", "serialization", "timeout")


@dataclass(frozen=True)
class Error:
    """One retryable error of one database."""

    code: str  # what the timeline shows: "injected 1213"
    message: str


#: dialect -> fault kind -> the error it raises (only what that database can raise)
ERRORS: dict[str, dict[str, Error]] = {
    "mysql": {
        "deadlock": Error(
            "1213", "Deadlock found when trying to get lock; try restarting transaction"
        ),
        "timeout": Error("1205", "Lock wait timeout exceeded; try restarting transaction"),
        "disconnect": Error("2013", "Lost connection to server during query"),
    },
    "postgresql": {
        "serialization": Error("40001", "could not serialize access due to concurrent update"),
        "deadlock": Error("40P01", "deadlock detected"),
        "disconnect": Error(
            "08006", "consuming input failed: server closed the connection unexpectedly"
        ),
    },
    "sqlite": {
        "timeout": Error("SQLITE_BUSY", "database is locked"),
    },
}
ERRORS["mariadb"] = ERRORS["mysql"]


def family(dialect: str) -> str:
    """The key of ``ERRORS`` for a SQLAlchemy dialect name or a ``--db`` kind."""
    name = dialect.lower()
    if name in ("mariadb", "mysql"):
        return "mysql"
    if name in ("postgres", "postgresql"):
        return "postgresql"
    return name


def available(dialect: str, wanted: Iterable[str] = FAULT_KINDS) -> tuple[str, ...]:
    """The kinds in ``wanted`` that ``dialect`` can raise, in ``FAULT_KINDS`` order."""
    errors = ERRORS.get(family(dialect), {})
    chosen = set(wanted)
    return tuple(k for k in FAULT_KINDS if k in chosen and k in errors)


def strikes(kind: str, text: str) -> bool:
    """Whether an error of ``kind`` can strike the statement ``text``: a lost connection
    any, the others only one that takes row locks (sql.takes_locks: a write, or a locking
    read). Plain reads of a snapshot wait for nothing."""
    return kind == "disconnect" or takes_locks(text)


def parse(text: str) -> tuple[str, ...]:
    """``--faults``'s value: "default" (what ``--faults`` alone means: the errors a
    database says to retry), "all", or comma-separated kinds; ValueError naming the bad
    word otherwise."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return FAULT_KINDS
    if words == ["default"]:
        return DEFAULT_KINDS
    bad = [w for w in words if w not in FAULT_KINDS]
    if bad or not words:
        raise ValueError(
            f"expected 'all' or a comma-separated list of {', '.join(FAULT_KINDS)} but got {text!r}"
        )
    return tuple(k for k in FAULT_KINDS if k in words)


def chosen(dialect: str, wanted: Iterable[str]) -> tuple[str, ...]:
    """The kinds to inject on ``dialect``: those of ``wanted`` it can raise. InvalidOption
    when it can raise none of them (saying which it can)."""
    wanted = tuple(wanted)
    if not wanted:
        return ()
    kinds = available(dialect, wanted)
    if not kinds:
        can = ", ".join(available(dialect)) or "none"
        product = {"mysql": "MariaDB/MySQL", "postgresql": "PostgreSQL", "sqlite": "SQLite"}
        raise InvalidOption(
            f"--faults {','.join(wanted)}: {product.get(family(dialect), dialect)} cannot "
            f"raise these errors; it can raise: {can} (name those, or give --faults alone)"
        )
    return kinds


def inject(dialect: str, cursor: Any, kind: str) -> NoReturn:
    """Leave ``cursor``'s connection as error ``kind`` would, then raise the driver's
    exception for it."""
    name = family(dialect)
    error = ERRORS[name][kind]
    if name == "postgresql":
        _postgres(cursor, kind, error)
    elif name == "mysql":
        _mysql(cursor, kind, error)
    import sqlite3

    raise sqlite3.OperationalError(error.message)


def code(dialect: str, kind: str) -> str:
    """What the timeline shows for an injected ``kind`` ("1213"); "" if the database
    cannot raise it."""
    error = ERRORS.get(family(dialect), {}).get(kind)
    return error.code if error is not None else ""


def _mysql(cursor: Any, kind: str, error: Error) -> None:
    import pymysql

    if kind in ("deadlock", "disconnect"):
        # InnoDB rolls a deadlock's victim back, and a dropped session's work; SQLAlchemy
        # takes 2013 for a disconnect and closes the connection itself
        cursor.execute("ROLLBACK")
    raise pymysql.err.OperationalError(int(error.code), error.message)


def _postgres(cursor: Any, kind: str, error: Error) -> None:
    import psycopg

    if kind == "disconnect":
        cursor.connection.close()
        raise psycopg.OperationalError(error.message)
    message = error.message.replace("'", "''")
    # the server raises it: psycopg's own exception class, and the transaction aborted
    cursor.execute(
        f"DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{error.code}', MESSAGE = '{message}'; END $$"
    )
    raise psycopg.OperationalError(error.message)  # pragma: no cover - the DO raised
