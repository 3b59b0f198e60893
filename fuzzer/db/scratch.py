"""A scratch database on a database server (MariaDB/MySQL, PostgreSQL): name, create, drop.

The fuzzer names the database itself (``fuzz_<run>``, plus ``_<name>`` per named
database of the target) unless the URL names one; an existing database must pass the
safety guard (url.py). A database the fuzzer created is dropped at the end, after
ending every connection still open to it (so DROP cannot wait behind one); a named
database that already existed is emptied at the start and its tables dropped at the
end. ``--keep-db`` keeps either.

The URL the target's app factory receives carries the connection settings the run
needs: no TLS on loopback (PyMySQL would build an SSL context on every connect, about
55 ms, DESIGN.md §10) and the ``--isolation`` level, so that every engine the target
makes from it gets them. Administration (create, drop, lock probes) goes through
plain DBAPI connections of the fuzzer's own, never through the target's engines.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from sqlalchemy.engine import URL

from fuzzer.compat import import_dbapi
from fuzzer.db.base import Backend
from fuzzer.db.owner import Owner, me, removable
from fuzzer.db.url import SCRATCH_NAME, guard_name
from fuzzer.errors import DatabaseError, UnsafeDatabase

LEVELS = {
    "read-uncommitted": "READ UNCOMMITTED",
    "read-committed": "READ COMMITTED",
    "repeatable-read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}


class ServerBackend(Backend):
    """What MariaDB/MySQL and PostgreSQL scratch databases have in common."""

    product = ""  # for messages: "MariaDB/MySQL", "PostgreSQL"
    default_port = 0
    maintenance_database: str | None = None  # where CREATE/DROP DATABASE is sent from
    #: the server's own databases (lower case): never used, whatever --allow-wipe says
    system_databases: frozenset[str] = frozenset()
    own_lock_timeout = 5  # seconds the fuzzer's own restore waits for a lock before it acts

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = self._database_name()
        self.existed = False
        self.isolation: str | None = None
        self.server_version = ""
        self._probe_lock = threading.Lock()
        self._lock: Any = None  # the connection that holds this database's lock

    # -- naming and URLs ---------------------------------------------------------------

    def _database_name(self) -> str:
        suffix = _identifier(self.logical_name) if self.prefix else ""
        base = self.spec.database or f"fuzz_{self.run_id}"
        return f"{base}_{suffix}" if suffix else base

    @property
    def database_key(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return self.target_url().render_as_string(hide_password=False)

    def target_url(self) -> URL:
        """The URL the target's app factory receives."""
        return self._server_url(self.name).update_query_dict(self._target_query())

    def _server_url(self, database: str | None) -> URL:
        """The user's URL on ``database``, with the fuzzer's connection settings."""
        url = self.spec.url._replace(database=database)  # set() would keep the old one on None
        return url.update_query_dict(
            {k: v for k, v in self._connection_query().items() if k not in url.query}
        )

    def _connection_query(self) -> dict[str, str]:
        """Connection settings every connection of the run gets (TLS off on loopback)."""
        return {}

    def _target_query(self) -> dict[str, str]:
        """Connection settings only the target's engines get (the isolation level)."""
        return {}

    @property
    def where(self) -> str:
        url = self.spec.url
        return f"{self.product} at {url.host or 'localhost'}:{url.port or self.default_port}"

    # -- DBAPI connections of the fuzzer's own ------------------------------------------

    def connect(self, database: str | None) -> Any:
        """A plain DBAPI connection in autocommit mode, outside every engine and gate."""
        url = self._server_url(database)
        dialect = url.get_dialect()
        args, kwargs = dialect().create_connect_args(url)
        dbapi = import_dbapi(dialect)  # outside the try: a failure here is not the server's
        try:
            return self._dbapi_connect(dbapi, args, dict(kwargs))
        except Exception as exc:
            user = self.spec.url.username or "the default user"
            problem = self._connect_problem(exc)
            hint = {
                "no database": f"database {database!r} does not exist there; leave the "
                f"database out of --db (the fuzzer then creates its own) or create it",
                "denied": "check the user and password in --db (reports never record a "
                "password: give the URL with --db or in FUZZER_DB)",
            }.get(problem, "start the server or correct --db")
            raise DatabaseError(
                f"Cannot connect to {self.where} as {user}: {_one_line(exc)}; {hint} "
                f"({self.spec.safe_url})"
            ) from None

    def _connect_problem(self, exc: BaseException) -> str:
        """What a failed connect says: "no database", "denied", or "" (unreachable)."""
        return ""

    def _dbapi_connect(self, dbapi: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    @contextlib.contextmanager
    def admin(self, database: str | None = None) -> Iterator[Any]:
        """A cursor on a short-lived autocommit connection (server level by default)."""
        conn = self.connect(database if database is not None else self.maintenance_database)
        try:
            with contextlib.closing(conn.cursor()) as cursor:
                yield cursor
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    # -- create and drop ---------------------------------------------------------------

    def create(self) -> None:
        self._take_lock()
        with self.admin() as cursor:
            self.server_version = self._version(cursor)
            exists = self._exists(cursor, self.name)
            if self.name.lower() in self.system_databases:
                raise UnsafeDatabase(
                    f"Refusing --db {self.spec.safe_url!r}: {self.name!r} is the server's own "
                    f"database, and the fuzzer deletes rows and drops tables; --allow-wipe "
                    f"does not cover it. Name a scratch database, or leave the database "
                    f"out of the URL (the fuzzer then creates its own)"
                )
            guard_name(
                self.name, exists=exists, allow_wipe=self.allow_wipe, spec=self.spec.safe_url
            )
            self.existed = exists  # only now: a refused database is never touched, not even by drop
            if not self.existed:
                try:
                    cursor.execute(self._create_sql(self.name))
                except Exception as exc:
                    raise DatabaseError(
                        f"Cannot create database {self.name!r} on {self.where}: "
                        f"{_one_line(exc)}; the user in --db needs the privilege to create "
                        f"databases, or name an existing scratch database in the URL"
                    ) from None
                self.created = True
                self._mark(cursor, self.name, me())
            self._after_create(cursor)
        if self.existed:
            dropped = self._drop_tables()
            if dropped:
                self.notices.append(self._emptied(dropped))

    def _emptied(self, dropped: list[str]) -> str:
        """The line that says which tables of an existing database were dropped."""
        tables = ", ".join(dropped)
        line = f"Emptied existing database {self.name!r} on {self.where}: dropped {tables}"
        if not SCRATCH_NAME.match(self.name):
            line += (
                " (--allow-wipe: its name does not mark it as scratch, and these tables "
                "were there before the target's setup)"
            )
        return line

    def drop(self) -> None:
        self.close()
        try:
            if self.keep:
                if self.created:
                    with self.admin() as cursor:
                        self._mark(cursor, self.name, me().as_kept())
                return
            if self.created:
                with self.admin() as cursor:
                    self._end_connections(cursor, self.name)
                    cursor.execute(self._drop_sql(self.name))
                self.created = False
            elif self.existed:
                self._drop_tables()
        finally:
            self._release_lock()

    # -- ownership: one run per database, and what dead runs left (owner.py) ----------

    def _take_lock(self) -> None:
        """Lock this database for the run, on a connection held until ``drop``; refuse
        it when another run holds the lock."""
        if self._lock is not None:
            return
        conn = self.connect(self.maintenance_database)
        try:
            with contextlib.closing(conn.cursor()) as cursor:
                taken = self._try_lock(cursor, self.name)
        except Exception:
            conn.close()
            raise
        if not taken:
            conn.close()
            raise DatabaseError(
                f"Database {self.name!r} on {self.where} is in use by another fuzzer run "
                f"(it holds the database's lock); wait for that run to end, or give this one "
                f"another database in --db (or none: the fuzzer then creates its own)"
            )
        self._lock = conn

    def _release_lock(self) -> None:
        """Release the lock, then close its connection. A closed session's locks end only
        when the server gets to the disconnect: a run started right after this one on the
        same database could find the lock still held and be refused."""
        conn, self._lock = self._lock, None
        if conn is None:
            return
        with contextlib.suppress(Exception), contextlib.closing(conn.cursor()) as cursor:
            self._unlock(cursor, self.name)
        with contextlib.suppress(Exception):
            conn.close()  # a session's locks end with it, if the unlock failed

    def scratch_databases(self) -> list[tuple[str, Owner]]:
        """Every database on the server that carries the fuzzer's owner marker."""
        with self.admin() as cursor:
            return [
                (name, owner)
                for name, text in self._marked(cursor)
                if (owner := Owner.parse(text)) is not None
            ]

    def remove_if_dead(self, name: str, owner: Owner, *, include_kept: bool = False) -> str:
        """Drop a marked database whose run is dead: "removed", or why not (owner.removable,
        or "in use")."""
        why = removable(name, owner, include_kept=include_kept)
        if why is not None:
            return why
        with self.admin() as cursor:
            if not self._try_lock(cursor, name):
                return "in use"
            try:
                self._end_connections(cursor, name)
                cursor.execute(self._drop_sql(name))
            finally:
                self._unlock(cursor, name)
        return "removed"

    def sweep(self) -> list[str]:
        """Remove what dead runs left on this server; one line per database removed."""
        lines = []
        try:
            found = self.scratch_databases()
        except DatabaseError:
            return []
        for name, owner in found:
            if name == self.name:
                continue
            try:
                outcome = self.remove_if_dead(name, owner)
            except Exception:  # another sweep got there first, or no privilege
                continue
            if outcome == "removed":
                lines.append(
                    f"Removed scratch database {name!r} on {self.where}, left by a run that "
                    f"died ({owner.describe()})"
                )
        return lines

    def _try_lock(self, cursor: Any, name: str) -> bool:
        raise NotImplementedError

    def _unlock(self, cursor: Any, name: str) -> None:
        raise NotImplementedError

    def _mark(self, cursor: Any, name: str, owner: Owner) -> None:
        """Write the owner marker on a database the fuzzer created (best effort)."""

    def _marked(self, cursor: Any) -> list[tuple[str, str]]:
        """(database, marker text) of every database whose marker may be the fuzzer's."""
        return []

    def close(self) -> None:
        super().close()
        self.close_probe()

    def close_probe(self) -> None:
        """Close the lock probe's connection, if one was opened."""

    def _version(self, cursor: Any) -> str:
        raise NotImplementedError

    def _exists(self, cursor: Any, name: str) -> bool:
        raise NotImplementedError

    def _create_sql(self, name: str) -> str:
        raise NotImplementedError

    def _drop_sql(self, name: str) -> str:
        raise NotImplementedError

    def _after_create(self, cursor: Any) -> None:
        """Per-database settings, right after CREATE DATABASE (nothing by default)."""

    def _end_connections(self, cursor: Any, name: str) -> None:
        """End every other connection to ``name`` so DROP DATABASE cannot wait for one."""
        raise NotImplementedError

    def _drop_tables(self) -> list[str]:
        """Empty a database that existed before the run (it passed the safety guard);
        return the names of the tables (and views) dropped."""
        raise NotImplementedError

    # -- isolation ---------------------------------------------------------------------

    def configure_isolation(self, level: str) -> None:
        if level not in LEVELS:
            raise DatabaseError(
                f"Unknown isolation level {level!r}: expected one of {', '.join(LEVELS)}"
            )
        self.isolation = level

    # -- the fuzzer's own engine -------------------------------------------------------

    @property
    def own_url(self) -> URL:
        """The fuzzer's own engine (restore, read): no target settings."""
        return self._server_url(self.name)

    def restore(
        self,
        snapshot: Mapping[str, list[tuple[Any, ...]]],
        written: Collection[str] | None = None,
    ) -> None:
        """Restore; if a connection left behind by a stuck request holds a lock the
        restore needs, end that connection's transaction and try once more."""
        try:
            self._restore_once(snapshot, written)
        except Exception as exc:
            if not self._is_lock_timeout(exc):
                raise
            ended = self._end_blockers()
            try:
                self._restore_once(snapshot, written)
            except Exception as again:
                raise DatabaseError(
                    f"Cannot restore the snapshot of {self.name!r} on {self.where}: "
                    f"{_one_line(again)} (ended {ended} blocking connection(s) first)"
                ) from None

    def _restore_once(
        self,
        snapshot: Mapping[str, list[tuple[Any, ...]]],
        written: Collection[str] | None = None,
    ) -> None:
        super().restore(snapshot, written)

    def _is_lock_timeout(self, exc: BaseException) -> bool:
        return False

    def _end_blockers(self) -> int:
        """End the transactions of other connections to the scratch database (left
        behind by requests that never finished); return how many."""
        return 0


def _identifier(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())[:20] or "db"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
