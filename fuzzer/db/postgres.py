"""PostgreSQL through psycopg 3: a scratch database, a fast restore, and lock waits asked
of the server.

Restore is one transaction of DELETE + INSERT; when the user is a superuser it runs
with ``session_replication_role = replica``, so foreign keys and the target's own
triggers do not fire while the snapshot goes back. Sequences are set back with
``setval`` in the same transaction (cheap, and a replay then shows the same keys).

The target's connections get ``default_transaction_isolation`` through the URL's
``options``. A scratch database the fuzzer creates gets a shorter ``deadlock_timeout``
(when the user may set it): PostgreSQL looks for deadlocks only after that long, and
every example that deadlocks waits it out. Not much shorter: the victim is the
request whose timer runs out first once the cycle exists, normally the first to wait;
a stall longer than the timeout between the two waits would pick the other one, and a
replay would differ. So would a loaded machine that handles the first waiter's timer
later than the second's by more than the step between the two waits (DESIGN.md §11).

Lock waits: ``pg_locks`` rows not yet granted, with ``pg_blocking_pids()``, for the
request's connections by their backend pids. Relation locks there are what a DDL
statement waits for behind an open transaction (PostgreSQL's metadata lock).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from fuzzer.compat import Connection, import_dbapi
from fuzzer.db.owner import Owner, lock_key
from fuzzer.db.scratch import LEVELS, ServerBackend

DEADLOCK_TIMEOUT = "500ms"
LOCK_NOT_AVAILABLE = "55P03"


class PostgresBackend(ServerBackend):
    dialect = "postgresql"
    product = "PostgreSQL"
    default_port = 5432
    maintenance_database = "postgres"
    system_databases = frozenset({"template0", "template1"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.superuser = False
        self.major = 0
        self._sequences: list[tuple[str, int, bool]] = []
        self._probe: PostgresLockProbe | None = None

    # -- connections -------------------------------------------------------------------

    def _connection_query(self) -> dict[str, str]:
        return {"sslmode": "disable"}  # loopback only: no TLS handshake per connect

    def _target_query(self) -> dict[str, str]:
        if self.isolation is None:
            return {}
        level = LEVELS[self.isolation].lower().replace(" ", "\\ ")
        options = str(self.spec.url.query.get("options", ""))
        setting = f"-c default_transaction_isolation={level}"
        return {"options": f"{options} {setting}".strip()}

    def _dbapi_connect(self, dbapi: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        kwargs.setdefault("connect_timeout", 5)
        return dbapi.connect(*args, autocommit=True, **kwargs)

    def _engine_options(self) -> dict[str, Any]:
        return {"isolation_level": "READ COMMITTED"}

    def _own_session_sql(self) -> Sequence[str]:
        return (f"SET lock_timeout = '{self.own_lock_timeout}s'",)

    # -- create and drop ---------------------------------------------------------------

    def _version(self, cursor: Any) -> str:
        cursor.execute("SHOW server_version")
        number = str(cursor.fetchone()[0]).split()[0]
        with contextlib.suppress(ValueError):
            self.major = int(number.split(".")[0])
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
        self.superuser = bool(row and row[0])
        return f"PostgreSQL {number}"

    def _exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cursor.fetchone() is not None

    def _create_sql(self, name: str) -> str:
        return f"CREATE DATABASE {_quote(name)}"

    def _after_create(self, cursor: Any) -> None:
        if self.created and self.superuser:
            cursor.execute(
                f"ALTER DATABASE {_quote(self.name)} SET deadlock_timeout = '{DEADLOCK_TIMEOUT}'"
            )

    def _drop_sql(self, name: str) -> str:
        force = " WITH (FORCE)" if self.major >= 13 else ""
        return f"DROP DATABASE IF EXISTS {_quote(name)}{force}"

    def _end_connections(self, cursor: Any, name: str) -> None:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )

    def _drop_tables(self) -> list[str]:
        with self.admin(self.name) as cursor:
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
            tables = [str(row[0]) for row in cursor.fetchall()]
            if tables:
                cursor.execute(
                    "DROP TABLE IF EXISTS " + ", ".join(_quote(t) for t in tables) + " CASCADE"
                )
        return tables

    def _connect_problem(self, exc: BaseException) -> str:
        text = str(exc)
        if "does not exist" in text and "database" in text:
            return "no database"
        if "authentication failed" in text or "no password supplied" in text:
            return "denied"
        return ""

    # -- ownership (owner.py): advisory locks live in the maintenance database -----------

    def _try_lock(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),))
        return bool(cursor.fetchone()[0])

    def _unlock(self, cursor: Any, name: str) -> None:
        cursor.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))
        cursor.fetchall()

    def _mark(self, cursor: Any, name: str, owner: Owner) -> None:
        literal = owner.text().replace("'", "''")
        with contextlib.suppress(Exception):
            cursor.execute(f"COMMENT ON DATABASE {_quote(name)} IS '{literal}'")

    def _marked(self, cursor: Any) -> list[tuple[str, str]]:
        cursor.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE shobj_description(oid, 'pg_database') LIKE 'fuzzer-owner %%'"
        )
        return [(str(name), str(text)) for name, text in cursor.fetchall()]

    # -- snapshot and restore ----------------------------------------------------------

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        rows = super().snapshot()
        with self.engine.connect() as conn:
            names = conn.exec_driver_sql(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
            ).fetchall()
            self._sequences = []
            for (name,) in names:
                last, called = conn.exec_driver_sql(
                    f"SELECT last_value, is_called FROM {_quote(name)}"
                ).one()
                self._sequences.append((str(name), int(last), bool(called)))
            conn.rollback()
        return rows

    def _has_triggers(self, conn: Connection) -> bool:
        """User triggers or rules on the scratch schema's tables (foreign keys are system
        triggers in PostgreSQL: their cascades follow the foreign keys, which are covered)."""
        return bool(
            conn.exec_driver_sql(
                "SELECT (SELECT COUNT(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE NOT t.tgisinternal AND n.nspname = current_schema()) "
                "+ (SELECT COUNT(*) FROM pg_rules WHERE schemaname = current_schema())"
            ).scalar()
        )

    def _restore_preamble(self) -> Sequence[str]:
        if self.superuser:
            return ("SET LOCAL session_replication_role = replica",)
        return ()

    def _after_restore(
        self, conn: Connection, snapshot: Mapping[str, list[tuple[Any, ...]]]
    ) -> None:
        if not self._sequences:
            return
        calls = ", ".join("setval(%s::regclass, %s, %s)" for _ in self._sequences)
        params: list[Any] = []
        for name, last, called in self._sequences:
            params += [_quote(name), last, called]
        conn.exec_driver_sql(f"SELECT {calls}", tuple(params))

    def _is_lock_timeout(self, exc: BaseException) -> bool:
        original = getattr(exc, "orig", exc)
        return getattr(original, "sqlstate", None) == LOCK_NOT_AVAILABLE

    def _end_blockers(self) -> int:
        with self.admin() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND state LIKE 'idle in%%'",
                (self.name,),
            )
            return len(cursor.fetchall())

    # -- what the scheduler and the report need ----------------------------------------

    def lock_probe(self) -> PostgresLockProbe:
        if self._probe is None:
            self._probe = PostgresLockProbe(self)
            # connect now: the first connection to a new database builds its relation
            # cache (100 ms or more), and a first probe that slow lets deadlock_timeout
            # pass before the scheduler runs the next step, changing which request the
            # server picks as the deadlock's victim
            self._probe.connect()
        return self._probe

    def close_probe(self) -> None:
        if self._probe is not None:
            self._probe.close()

    def describe(self) -> dict[str, Any]:
        names = ("deadlock_timeout", "lock_timeout", "default_transaction_isolation")
        url = self.target_url()
        dialect = url.get_dialect()
        args, kwargs = dialect().create_connect_args(url)
        with import_dbapi(dialect).connect(*args, autocommit=True, **kwargs) as conn:
            level = str(conn.execute("SHOW transaction_isolation").fetchone()[0])
            settings = {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}
        self.lock_probe()
        notes = ["lock waits asked of the server: pg_locks and pg_blocking_pids()"]
        if not self.superuser:
            notes.append(
                "not a superuser: restore runs with foreign keys and triggers active, and "
                "deadlocks are found after the server's deadlock_timeout"
            )
        return {
            "dialect": "postgresql",
            "server_version": self.server_version,
            "isolation_level": level.upper(),
            "isolation": self.isolation or "default",
            "settings": settings,
            "database": self.name,
            "notes": notes,
        }


class PostgresLockProbe:
    """Asks PostgreSQL whether a request's connections wait for a lock."""

    SQL = (
        "SELECT l.locktype, l.mode, l.relation::regclass::text, "
        "cardinality(pg_blocking_pids(l.pid)) "
        "FROM pg_locks l WHERE NOT l.granted AND l.pid = ANY(%s) LIMIT 1"
    )

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._conn: Any = None
        self.failures = 0

    def connect(self) -> None:
        """Connect, and run the probe once: its first run on a new backend fills the
        catalog caches, which can take longer than ``deadlock_timeout``."""
        with self._lock:
            self._connection().execute(self.SQL, ([],)).fetchall()

    def _connection(self) -> Any:
        if self._conn is None:
            # on the scratch database, so that relation ids resolve to table names
            self._conn = self._backend.connect(self._backend.name)
        return self._conn

    def waiting(self, connections: Sequence[Any]) -> str | None:
        pids = _backend_pids(connections)
        if not pids:
            return None
        with self._lock:
            try:
                row = self._connection().execute(self.SQL, (pids,)).fetchone()
            except Exception:
                self.failures += 1
                self._reset()
                return None
        return lock_reason(*row) if row is not None else None

    def break_waits(self, connections: Sequence[Any]) -> None:
        """Cancel the statements of these connections (pg_cancel_backend)."""
        pids = _backend_pids(connections)
        if not pids:
            return
        with self._lock:
            try:
                self._connection().execute(
                    "SELECT pg_cancel_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,)
                )
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


def lock_reason(locktype: str, mode: str, relation: str | None, blockers: int = 0) -> str:
    """A pg_locks row that is not granted, as a reason naming the lock (no pids: the same
    interleaving must record the same text every time)."""
    held = "" if blockers else ", queued behind another waiter"
    if locktype == "relation":
        return f"table lock on {relation} ({mode}{held})"
    if locktype == "transactionid":
        return f"row lock: waits for another transaction to end ({mode}{held})"
    if locktype == "tuple":
        return f"row lock on {relation} ({mode} on a tuple{held})"
    if locktype == "advisory":
        return f"advisory lock ({mode}{held})"
    target = f" on {relation}" if relation else ""
    return f"{locktype} lock{target} ({mode}{held})"


def _backend_pids(connections: Sequence[Any]) -> list[int]:
    pids = []
    for conn in connections:
        with contextlib.suppress(Exception):
            pid = conn.info.backend_pid
            if pid:
                pids.append(int(pid))
    return pids


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
