"""MariaDB and MySQL through PyMySQL: a scratch database, a fast restore, and lock waits
asked of the server.

Restore is one transaction of DELETE + INSERT with foreign key checks off for the
fuzzer's own connection. AUTO_INCREMENT counters do not go back with DELETE; the
oracle renames generated keys anyway, but a replay must show the same statements,
so a counter that moved is set back (``ALTER TABLE … AUTO_INCREMENT``, only for the
tables whose counter moved).

Lock waits (DESIGN.md §4, §10): the probe asks the server about the request's
connections by their thread ids. ``information_schema.PROCESSLIST`` tells whether a
statement is executing at all and names waits for metadata, table and user locks
(``Waiting for table metadata lock``); row-lock waits are read from ``SHOW ENGINE
INNODB STATUS`` on MariaDB (live, needs the PROCESS privilege; the
``information_schema.innodb_trx`` cache is refreshed at most every 100 ms and missed
waits for a full second) and from ``performance_schema.data_lock_waits`` on MySQL 8.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from fuzzer.compat import import_dbapi
from fuzzer.db.owner import Owner, lock_name
from fuzzer.db.scratch import LEVELS, ServerBackend
from fuzzer.errors import DatabaseError
from fuzzer.sql import access

LOCK_TIMEOUT_ERRORS = frozenset({1205})  # ER_LOCK_WAIT_TIMEOUT (row locks and metadata locks)
NO_PRIVILEGE = frozenset({1227, 1142})  # ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED
UNKNOWN_DATABASE = 1049  # ER_BAD_DB_ERROR
ACCESS_DENIED = frozenset({1044, 1045, 1698})  # to a database; for a user; unix socket auth


class MySQLBackend(ServerBackend):
    dialect = "mysql"
    product = "MariaDB/MySQL"
    default_port = 3306
    system_databases = frozenset({"mysql", "information_schema", "performance_schema", "sys"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mariadb = True
        self._counters: dict[str, int] = {}  # table -> AUTO_INCREMENT at the snapshot
        self._natural: dict[str, int] = {}  # table -> largest generated key + 1 there
        self._probe: MySQLLockProbe | None = None
        self._probe_checked = False

    # -- connections -------------------------------------------------------------------

    def _connection_query(self) -> dict[str, str]:
        query = {"charset": "utf8mb4"}
        if not any(key.startswith("ssl") for key in self.spec.url.query):
            query["ssl_disabled"] = "true"  # PyMySQL would build an SSL context per connect
        return query

    def configure_isolation(self, level: str) -> None:
        if "init_command" in self.spec.url.query:
            raise DatabaseError(
                f"--isolation {level} sets init_command on the target's connections, but --db "
                f"already has one ({self.spec.safe_url}); set the level in that init_command "
                f"instead, or leave out --isolation"
            )
        super().configure_isolation(level)

    def _target_query(self) -> dict[str, str]:
        if self.isolation is None:
            return {}
        return {"init_command": f"SET SESSION TRANSACTION ISOLATION LEVEL {LEVELS[self.isolation]}"}

    def _dbapi_connect(self, dbapi: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        kwargs["autocommit"] = True
        kwargs.setdefault("connect_timeout", 5)
        return dbapi.connect(*args, **kwargs)

    def _engine_options(self) -> dict[str, Any]:
        return {"isolation_level": "READ COMMITTED"}

    def _own_session_sql(self) -> Sequence[str]:
        settings = [
            "foreign_key_checks = 0",
            f"innodb_lock_wait_timeout = {self.own_lock_timeout}",
            f"lock_wait_timeout = {self.own_lock_timeout}",
        ]
        if not self.mariadb:
            settings.append("information_schema_stats_expiry = 0")  # live AUTO_INCREMENT
        return ("SET SESSION " + ", ".join(settings),)

    # -- create and drop ---------------------------------------------------------------

    def _version(self, cursor: Any) -> str:
        cursor.execute("SELECT VERSION()")
        raw = str(cursor.fetchone()[0])
        self.mariadb = "mariadb" in raw.lower()
        number = raw.split("-", 1)[0]
        return f"MariaDB {number}" if self.mariadb else f"MySQL {number}"

    def _exists(self, cursor: Any, name: str) -> bool:
        cursor.execute(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)
        )
        return cursor.fetchone() is not None

    def _create_sql(self, name: str) -> str:
        return f"CREATE DATABASE {_quote(name)} CHARACTER SET utf8mb4"

    def _drop_sql(self, name: str) -> str:
        return f"DROP DATABASE IF EXISTS {_quote(name)}"

    def _end_connections(self, cursor: Any, name: str) -> None:
        cursor.execute("SET SESSION lock_wait_timeout = 10")  # DROP never waits for long
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
            (name,),
        )
        for (thread,) in cursor.fetchall():
            with contextlib.suppress(Exception):  # it ended meanwhile
                cursor.execute(f"KILL CONNECTION {int(thread)}")

    def _drop_tables(self) -> list[str]:
        dropped = []
        with self.admin(self.name) as cursor:
            cursor.execute("SET SESSION foreign_key_checks = 0")
            cursor.execute(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
            )
            for table, kind in cursor.fetchall():
                what = "VIEW" if kind == "VIEW" else "TABLE"
                cursor.execute(f"DROP {what} IF EXISTS {_quote(table)}")
                dropped.append(str(table))
        return dropped

    def _connect_problem(self, exc: BaseException) -> str:
        code = _error_code(exc)
        if code == UNKNOWN_DATABASE:
            return "no database"
        return "denied" if code in ACCESS_DENIED else ""

    # -- ownership (owner.py) ------------------------------------------------------------

    def _try_lock(self, cursor: Any, name: str) -> bool:
        cursor.execute("SET SESSION wait_timeout = 31536000")  # held for a whole soak
        cursor.execute("SELECT GET_LOCK(%s, 0)", (lock_name(name),))
        return cursor.fetchone()[0] == 1

    def _unlock(self, cursor: Any, name: str) -> None:
        cursor.execute("SELECT RELEASE_LOCK(%s)", (lock_name(name),))
        cursor.fetchall()

    def _mark(self, cursor: Any, name: str, owner: Owner) -> None:
        if self.mariadb:  # MySQL has no comment on a database
            with contextlib.suppress(Exception):
                cursor.execute(f"ALTER DATABASE {_quote(name)} COMMENT = %s", (owner.text(),))

    def _marked(self, cursor: Any) -> list[tuple[str, str]]:
        if not self.mariadb:
            return []
        cursor.execute(
            "SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_COMMENT LIKE 'fuzzer-owner %%'"
        )
        return [(str(name), str(text)) for name, text in cursor.fetchall()]

    # -- snapshot and restore ----------------------------------------------------------

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        rows = super().snapshot()
        self._counters = self._auto_increments()
        self._natural = {}
        for table in self._counters:
            info = self.tables.get(self.prefix + table)
            if info is not None and info.generated:
                column = info.columns.index(info.generated)
                keys = [row[column] for row in rows.get(table, []) if row[column] is not None]
                self._natural[table] = max(keys, default=0) + 1
        return rows

    def _auto_increments(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            result = conn.exec_driver_sql(
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL"
            ).fetchall()
            conn.rollback()
        return {str(name): int(value) for name, value in result}

    def _has_triggers(self, conn: Any) -> bool:
        return bool(
            conn.exec_driver_sql(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
            ).scalar()
        )

    def _restore_once(
        self,
        snapshot: Mapping[str, list[tuple[Any, ...]]],
        written: Collection[str] | None = None,
    ) -> None:
        """DELETE + INSERT in one transaction; a table whose AUTO_INCREMENT counter moved
        is emptied with TRUNCATE first (it resets the counter, and costs about half of
        ``ALTER TABLE … AUTO_INCREMENT``), so the next execution draws the same keys."""
        moved = []
        if self._counters:
            moved = [
                table
                for table, value in self._auto_increments().items()
                if self._counters.get(table, value) != value
            ]
        if moved:
            with self.engine.connect() as conn:
                for table in moved:
                    conn.exec_driver_sql(f"TRUNCATE TABLE {_quote(table)}")
        if written is not None:
            written = set(written) | set(moved)
        super()._restore_once(snapshot, written)
        odd = [t for t in moved if self._natural.get(t) != self._counters[t]]
        if odd:  # setup left the counter above the largest key: put it back exactly
            with self.engine.connect() as conn:
                for table in odd:
                    conn.exec_driver_sql(
                        f"ALTER TABLE {_quote(table)} AUTO_INCREMENT = {self._counters[table]}"
                    )

    def _is_lock_timeout(self, exc: BaseException) -> bool:
        return _error_code(exc) in LOCK_TIMEOUT_ERRORS

    def _end_blockers(self) -> int:
        ended = 0
        with self.admin() as cursor:
            cursor.execute(
                "SELECT t.trx_mysql_thread_id FROM information_schema.INNODB_TRX t "
                "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                "WHERE p.DB = %s AND p.ID <> CONNECTION_ID()",
                (self.name,),
            )
            for (thread,) in cursor.fetchall():
                with contextlib.suppress(Exception):
                    cursor.execute(f"KILL CONNECTION {int(thread)}")
                    ended += 1
        return ended

    # -- what the scheduler and the report need ----------------------------------------

    def lock_probe(self) -> MySQLLockProbe | None:
        if not self._probe_checked:
            self._probe_checked = True
            probe = MySQLLockProbe(self)
            if probe.usable():
                self._probe = probe
            else:
                probe.close()
        return self._probe

    def close_probe(self) -> None:
        if self._probe is not None:
            self._probe.close()

    def describe(self) -> dict[str, Any]:
        variables = (
            "innodb_snapshot_isolation",
            "innodb_lock_wait_timeout",
            "innodb_deadlock_detect",
            "lock_wait_timeout",
            "autocommit",
        )
        self.lock_probe()  # find out whether the server answers lock questions
        conn = self._target_connection()
        try:
            with contextlib.closing(conn.cursor()) as cursor:
                level_variable = "@@tx_isolation" if self.mariadb else "@@transaction_isolation"
                cursor.execute(f"SELECT {level_variable}")
                level = str(cursor.fetchone()[0]).replace("-", " ")
                placeholders = ", ".join(["%s"] * len(variables))
                cursor.execute(
                    f"SHOW SESSION VARIABLES WHERE Variable_name IN ({placeholders})", variables
                )
                settings = {str(k): str(v) for k, v in cursor.fetchall()}
        finally:
            conn.close()
        notes = []
        if self._probe_checked and self._probe is None:
            notes.append(
                "no PROCESS privilege: lock waits are told by a timeout, not by the server"
            )
        elif self._probe is not None:
            notes.append(f"lock waits asked of the server: {self._probe.source}")
        if settings.get("innodb_snapshot_isolation", "").upper() == "ON":
            notes.append(
                "innodb_snapshot_isolation is ON: a write over a row changed after the "
                "transaction's snapshot fails with error 1020"
            )
        return {
            "dialect": "mysql",
            "server_version": self.server_version,
            "isolation_level": level.upper(),
            "isolation": self.isolation or "default",
            "settings": settings,
            "database": self.name,
            "notes": notes,
        }

    def _target_connection(self) -> Any:
        """A connection made exactly as the target's engines make theirs."""
        url = self.target_url()
        dialect = url.get_dialect()
        args, kwargs = dialect().create_connect_args(url)
        return import_dbapi(dialect).connect(*args, **kwargs)


class MySQLLockProbe:
    """Asks MariaDB/MySQL whether a request's connections wait for a lock."""

    def __init__(self, backend: MySQLBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._conn: Any = None
        self.source = ""
        self.failures = 0

    def _cursor(self) -> Any:
        if self._conn is None:
            self._conn = self._backend.connect(None)
        return self._conn.cursor()

    def usable(self) -> bool:
        """Whether the server lets this user see row-lock waits (and pick how)."""
        with self._lock:
            cursor = self._cursor()
            if not self._backend.mariadb:
                try:
                    cursor.execute("SELECT 1 FROM performance_schema.data_lock_waits LIMIT 1")
                    cursor.fetchall()
                    self.source = "performance_schema.data_lock_waits"
                    return True
                except Exception:
                    pass  # performance_schema off: the InnoDB monitor still answers
            try:
                cursor.execute("SHOW ENGINE INNODB STATUS")
                cursor.fetchall()
            except Exception as exc:
                if _error_code(exc) in NO_PRIVILEGE:
                    return False
                raise
            self.source = "SHOW ENGINE INNODB STATUS"
            return True

    def waiting(self, connections: Sequence[Any]) -> str | None:
        threads = _thread_ids(connections)
        if not threads:
            return None
        with self._lock:
            try:
                return self._waiting(threads)
            except Exception:
                self.failures += 1
                self._reset()
                return None

    def _waiting(self, threads: Sequence[int]) -> str | None:
        cursor = self._cursor()
        placeholders = ", ".join(["%s"] * len(threads))
        cursor.execute(
            "SELECT ID, COMMAND, STATE, INFO FROM information_schema.PROCESSLIST "
            f"WHERE ID IN ({placeholders})",
            tuple(threads),
        )
        busy = []
        for thread, command, state, info in cursor.fetchall():
            if command != "Query":
                continue  # idle: its statement has not arrived yet, or has returned
            why = state_wait(str(state or ""), str(info or ""))
            if why:
                return why
            busy.append(int(thread))
        if not busy:
            return None
        if self.source == "performance_schema.data_lock_waits":
            return self._data_lock_waits(cursor, busy)
        cursor.execute("SHOW ENGINE INNODB STATUS")
        row = cursor.fetchone()
        waits = innodb_lock_waits(str(row[2]) if row else "")
        return next((waits[t] for t in busy if t in waits), None)

    def _data_lock_waits(self, cursor: Any, threads: Sequence[int]) -> str | None:
        placeholders = ", ".join(["%s"] * len(threads))
        cursor.execute(
            "SELECT l.OBJECT_NAME, l.INDEX_NAME, l.LOCK_TYPE, l.LOCK_MODE "
            "FROM performance_schema.data_lock_waits w "
            "JOIN performance_schema.data_locks l "
            "ON l.ENGINE_LOCK_ID = w.REQUESTING_ENGINE_LOCK_ID "
            "JOIN performance_schema.threads t ON t.THREAD_ID = w.REQUESTING_THREAD_ID "
            f"WHERE t.PROCESSLIST_ID IN ({placeholders}) LIMIT 1",
            tuple(threads),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        table, index, kind, mode = (str(v) if v is not None else "" for v in row)
        if kind == "TABLE":
            return f"table lock on {table} ({mode})"
        return f"row lock on {table} (index {index}, {mode})"

    def break_waits(self, connections: Sequence[Any]) -> None:
        """KILL QUERY every statement of these connections that waits for a lock."""
        threads = _thread_ids(connections)
        with self._lock:
            for thread in threads:
                try:
                    self._cursor().execute(f"KILL QUERY {int(thread)}")
                except Exception:
                    self._reset()

    def _reset(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._reset()


# -- reading the server's answers ------------------------------------------------------

_LOCK_STATES = ("User lock",)


def state_wait(state: str, info: str) -> str | None:
    """A PROCESSLIST state that is a lock wait, as a reason naming the lock, or None.

    >>> state_wait("Waiting for table metadata lock", "ALTER TABLE users ADD x INT")
    'metadata lock on users (Waiting for table metadata lock: ALTER TABLE users ADD x INT)'
    """
    if not (state.startswith("Waiting for") and "lock" in state) and state not in _LOCK_STATES:
        return None
    statement = " ".join(info.split())[:80]
    table = _statement_table(info)
    kind = "metadata lock" if "metadata" in state else "lock"
    if state == "User lock":
        kind = "user lock (GET_LOCK)"
    target = f" on {table}" if table and kind != "user lock (GET_LOCK)" else ""
    return f"{kind}{target} ({state}: {statement})" if statement else f"{kind}{target} ({state})"


def _statement_table(info: str) -> str:
    """The table a waiting statement is about: the one it writes, else the first it
    names (an ALTER, DROP or TRUNCATE, a CREATE INDEX's table, a read)."""
    seen = access(info)
    if seen.write:
        return seen.write
    return min(seen.reads) if seen.reads else ""


_TRANSACTION = re.compile(r"\n---TRANSACTION ")
_THREAD = re.compile(r"(?:MariaDB|MySQL) thread id (\d+)")
_RECORD_WAIT = re.compile(
    r"TO BE GRANTED:\s*\nRECORD LOCKS .*? index (\S+) of table (\S+) trx id \S+ (.*?)"
    r"(?: waiting)?\s*(?:\n|$)"
)
_TABLE_WAIT = re.compile(
    r"TO BE GRANTED:\s*\nTABLE LOCK table (\S+) trx id \S+ (.*?)(?: waiting)?\s*(?:\n|$)"
)


def innodb_lock_waits(status: str) -> dict[int, str]:
    """Thread id -> the lock it waits for, from ``SHOW ENGINE INNODB STATUS``.

    The reason names the table, index and lock mode, never ids or durations, so that
    the same interleaving records the same text every time.
    """
    start = status.find("LIST OF TRANSACTIONS FOR EACH SESSION:")
    if start < 0:
        return {}
    end = status.find("\n--------\nFILE I/O", start)
    section = status[start : end if end > 0 else len(status)]
    waits: dict[int, str] = {}
    for block in _TRANSACTION.split(section)[1:]:
        if "LOCK WAIT" not in block:
            continue
        thread = _THREAD.search(block)
        if thread is None:
            continue
        record = _RECORD_WAIT.search(block)
        table = _TABLE_WAIT.search(block)
        if record is not None:
            index, name, mode = record.groups()
            why = f"row lock on {_table_name(name)} (index {index}, {mode.strip()})"
        elif table is not None:
            name, mode = table.groups()
            why = f"table lock on {_table_name(name)} ({mode.strip()})"
        else:
            why = "InnoDB lock wait"
        waits[int(thread.group(1))] = why
    return waits


def _table_name(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1].strip("`")


def _thread_ids(connections: Sequence[Any]) -> list[int]:
    threads = []
    for conn in connections:
        with contextlib.suppress(Exception):
            thread = conn.thread_id()
            if thread:
                threads.append(int(thread))
    return threads


def _error_code(exc: BaseException) -> int | None:
    original = getattr(exc, "orig", None) or exc
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
