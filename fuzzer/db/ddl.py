"""The DDL probe: would a schema change have to wait, right now, for a table's lock?

An open transaction holds a lock on every table it used until it ends: InnoDB's
metadata lock on MariaDB/MySQL, an ACCESS SHARE lock on PostgreSQL. A request that
leaves its transaction open (a scoped session never removed) keeps those locks for
as long as its worker thread lives, so the next ``ALTER TABLE`` waits, and every
request that touches the table queues behind the waiting ALTER: during a deployment
the site hangs. The probe finds that without a migration. After the concurrent
phase, for each table an open transaction used, it tries a harmless schema change
that gives up at once instead of waiting:

* MariaDB: ``ALTER TABLE t NOWAIT COMMENT = '<its comment>'`` (the comment it already
  has), which fails with error 1205 when the metadata lock is taken; MySQL, which has
  no ``NOWAIT`` for ALTER, gets ``lock_wait_timeout = 1`` instead;
* PostgreSQL: ``ALTER TABLE t ADD COLUMN …`` with ``lock_timeout = 50ms`` inside a
  transaction that is rolled back (DDL is transactional there), failing with 55P03;
* SQLite: nothing, a read there leaves no lock behind.

It runs on the fuzzer's own engine for the scratch database, never on the target's,
and only when a leaked connection is still inside a transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text

MYSQL_LOCK_WAIT_TIMEOUT = 1205  # ER_LOCK_WAIT_TIMEOUT: metadata locks too
POSTGRES_LOCK_NOT_AVAILABLE = "55P03"
PROBE_COLUMN = "fuzzer_ddl_probe"


def blocked_schema_changes(backend: Any, tables: Iterable[str]) -> dict[str, str]:
    """table -> the lock a schema change of it would wait for now (tables whose schema
    could change at once are left out)."""
    dialect = getattr(backend, "dialect", "")
    if dialect == "mysql":
        return _mysql(backend.engine, sorted(set(tables)))
    if dialect == "postgresql":
        return _postgres(backend.engine, sorted(set(tables)))
    return {}


def _mysql(engine: Any, tables: list[str]) -> dict[str, str]:
    blocked: dict[str, str] = {}
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        mariadb = "mariadb" in str(conn.exec_driver_sql("SELECT VERSION()").scalar()).lower()
        if not mariadb:
            conn.exec_driver_sql("SET SESSION lock_wait_timeout = 1")
        for table in tables:
            comment = conn.execute(
                text(
                    "SELECT TABLE_COMMENT FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table"
                ),
                {"table": table},
            ).scalar()
            if comment is None:
                continue  # not a table of this database
            wait = " NOWAIT" if mariadb else ""
            statement = f"ALTER TABLE {quote(table)}{wait} COMMENT = :comment"
            try:
                conn.execute(text(statement), {"comment": comment})
            except Exception as exc:
                if _mysql_code(exc) != MYSQL_LOCK_WAIT_TIMEOUT:
                    continue  # not a lock wait: nothing to report
                how = "at once with NOWAIT" if mariadb else "after lock_wait_timeout = 1 s"
                blocked[table] = (
                    f"ALTER TABLE {table} waits for the metadata lock on {table} (error 1205 {how})"
                )
            conn.rollback()
    return blocked


def _postgres(engine: Any, tables: list[str]) -> dict[str, str]:
    blocked: dict[str, str] = {}
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        for table in tables:
            try:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(table)} ADD COLUMN {PROBE_COLUMN} integer"
                )
            except Exception as exc:
                if _postgres_code(exc) == POSTGRES_LOCK_NOT_AVAILABLE:
                    blocked[table] = (
                        f"ALTER TABLE {table} waits for the table lock on {table} "
                        f"(AccessExclusiveLock; lock_timeout of 50 ms ran out)"
                    )
            finally:
                conn.rollback()  # the probe column never stays
    return blocked


def _mysql_code(exc: BaseException) -> int | None:
    original = getattr(exc, "orig", exc)
    args = getattr(original, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _postgres_code(exc: BaseException) -> str | None:
    original = getattr(exc, "orig", exc)
    return getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
