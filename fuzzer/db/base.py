"""What every database backend does: discover tables, snapshot, restore, read rows.

A backend owns one scratch database and one small engine of the fuzzer's own, which
it uses to restore the snapshot before each execution and to read the final rows
after it. The target's engines are the target's business; the backend only tells
the scheduler how to see their locks (``lock_model`` or ``lock_probe``).
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, Table, event, inspect, text
from sqlalchemy.exc import NoSuchTableError

from fuzzer.compat import Engine, create_engine
from fuzzer.db.locks import LockModel, LockProbe
from fuzzer.db.url import DatabaseSpec
from fuzzer.errors import DatabaseError, TargetSetupError

Rows = tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class TableInfo:
    """One table as the oracle needs to know it."""

    name: str  # as it appears in executions: "table", or "database.table"
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    generated: str | None  # an integer primary key the database generates, if any
    foreign_keys: tuple[tuple[str, str, str], ...]  # (column, referred table, referred column)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "primary_key": list(self.primary_key),
            "generated": self.generated,
            "foreign_keys": [list(fk) for fk in self.foreign_keys],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableInfo:
        return cls(
            name=data["name"],
            columns=tuple(data["columns"]),
            primary_key=tuple(data["primary_key"]),
            generated=data.get("generated"),
            foreign_keys=tuple(tuple(fk) for fk in data.get("foreign_keys", ())),
        )


class Backend:
    """A scratch database of one dialect. Subclasses fill in the dialect's specifics."""

    dialect = ""

    def __init__(
        self,
        spec: DatabaseSpec,
        logical_name: str,
        *,
        run_id: str,
        keep: bool = False,
        allow_wipe: bool = False,
        prefix: str = "",
    ) -> None:
        self.spec = spec
        self.logical_name = logical_name  # "default", or the target's name for it
        self.run_id = run_id
        self.keep = keep
        self.allow_wipe = allow_wipe
        self.prefix = prefix  # "" for one database, "name." when the target has several
        self.created = False
        self._engine: Engine | None = None
        self._tables: list[Table] = []
        self.tables: dict[str, TableInfo] = {}
        self._dependents: dict[str, set[str]] = {}  # table -> tables with a foreign key to it
        self._triggers = True  # until discover() looked: restore everything
        self.notices: list[str] = []  # what a person should know: tables dropped, leftovers removed

    # -- what subclasses provide ---------------------------------------------------------

    @property
    def url(self) -> str:
        """The SQLAlchemy URL the target's app factory receives."""
        raise NotImplementedError

    @property
    def database_key(self) -> str:
        """``engine.url.database`` of an engine on this database."""
        raise NotImplementedError

    def create(self) -> None:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    @property
    def url_for_report(self) -> str:
        """The URL without its password."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def configure_isolation(self, level: str) -> None:
        """Make the target's engines on this database use ``level`` (read-committed, …)."""
        raise DatabaseError(
            f"--isolation {level} is not supported on {self.dialect}; "
            f"use MariaDB/MySQL or PostgreSQL to compare isolation levels"
        )

    def lock_model(self) -> LockModel | None:
        return None

    def lock_probe(self) -> LockProbe | None:
        return None

    def describe(self) -> dict[str, Any]:
        """Server version, isolation level and settings that change what a race does."""
        return {"dialect": self.dialect}

    def _restore_preamble(self) -> Sequence[str]:
        return ()

    def _where(self) -> str:
        """ " (database 'shard2')" when the target has several databases, else ""."""
        return f" (database {self.logical_name!r})" if self.prefix else ""

    def _has_triggers(self, conn: Any) -> bool:
        """Whether the database has triggers (a write may change tables it does not
        name): then every restore restores every table. Unknown: assume it has."""
        return True

    def _extra_tables(self) -> Sequence[str]:
        """Bookkeeping tables that must be restored too (SQLite's sqlite_sequence)."""
        return ()

    def _engine_options(self) -> dict[str, Any]:
        return {}

    @property
    def own_url(self) -> Any:
        """The URL of the fuzzer's own engine (by default the target's URL)."""
        return self.url

    def _own_session_sql(self) -> Sequence[str]:
        """Statements run on every new connection of the fuzzer's own engine."""
        return ()

    # -- shared ----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            engine = create_engine(
                self.own_url, pool_size=1, max_overflow=2, **self._engine_options()
            )
            statements = tuple(self._own_session_sql())
            if statements:

                def on_connect(dbapi_connection: Any, record: Any) -> None:
                    cursor = dbapi_connection.cursor()
                    for statement in statements:
                        cursor.execute(statement)
                    cursor.close()
                    dbapi_connection.commit()

                event.listen(engine, "connect", on_connect)
            self._engine = engine
        return self._engine

    def discover(self) -> dict[str, TableInfo]:
        """Find the tables the target's setup created (nothing is declared twice)."""
        metadata = MetaData()
        try:
            metadata.reflect(bind=self.engine)
        except NoSuchTableError as exc:
            raise TargetSetupError(
                f"After setup, a foreign key refers to table {exc.args[0]!r}, which does not "
                f"exist in the scratch database{self._where()}: create it in setup "
                f"(db.create_all() creates every model's table), or drop that foreign key."
            ) from None
        self._tables = list(metadata.sorted_tables)
        extra = set(self._extra_tables())
        inspector = inspect(self.engine)
        existing = set(inspector.get_table_names())
        for name in extra & existing:
            if name not in metadata.tables:
                self._tables.append(Table(name, metadata, autoload_with=self.engine))
        self._dependents = {}  # lower-cased names: SQLite's are case-insensitive
        for table in self._tables:
            for fk in table.foreign_keys:
                parent = fk.column.table.name.lower()
                self._dependents.setdefault(parent, set()).add(table.name.lower())
        with self.engine.connect() as conn:
            self._triggers = self._has_triggers(conn)
            conn.rollback()
        self.tables = {}
        for table in self._tables:
            if table.name in extra:
                continue
            pk = tuple(c.name for c in table.primary_key.columns)
            generated = None
            if len(pk) == 1:
                column = table.columns[pk[0]]
                if column.autoincrement in (True, "auto") and _is_integer(column):
                    generated = pk[0]
            fks = tuple(
                (fk.parent.name, self.prefix + fk.column.table.name, fk.column.name)
                for fk in table.foreign_keys
            )
            self.tables[self.prefix + table.name] = TableInfo(
                name=self.prefix + table.name,
                columns=tuple(c.name for c in table.columns),
                primary_key=pk,
                generated=generated,
                foreign_keys=fks,
            )
        return self.tables

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, raw (for restoring)."""
        with self.engine.connect() as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(table.select())]
                for table in self._tables
            }

    def affected(self, written: Collection[str] | None) -> list[Table]:
        """The tables a restore or a read must cover after statements wrote ``written``:
        those, what their foreign keys may cascade to, and the bookkeeping tables; every
        table when that cannot be told (None, a table not in the snapshot, triggers)."""
        known = {table.name.lower() for table in self._tables}
        covered = {name.lower() for name in written or ()}
        if written is None or self._triggers or not covered <= known:
            return self._tables
        todo = list(covered)
        while todo:
            for child in self._dependents.get(todo.pop(), ()):
                if child not in covered:
                    covered.add(child)
                    todo.append(child)
        covered |= {name.lower() for name in self._extra_tables()}
        return [table for table in self._tables if table.name.lower() in covered]

    def restore(
        self,
        snapshot: Mapping[str, list[tuple[Any, ...]]],
        written: Collection[str] | None = None,
    ) -> None:
        """Put every table back to the snapshot (or the ones ``written`` affected), in one
        transaction."""
        tables = self.affected(written)
        with self.engine.begin() as conn:
            for statement in self._restore_preamble():
                conn.exec_driver_sql(statement)
            for table in reversed(tables):
                conn.execute(table.delete())
            for table in tables:
                rows = snapshot.get(table.name)
                if rows:
                    keys = [c.key for c in table.columns]
                    conn.execute(
                        table.insert(), [dict(zip(keys, row, strict=True)) for row in rows]
                    )
            self._after_restore(conn, snapshot)

    def _after_restore(self, conn: Any, snapshot: Mapping[str, list[tuple[Any, ...]]]) -> None:
        """Dialect-specific work after the rows are back (sequence counters)."""

    def read(self, written: Collection[str] | None = None) -> dict[str, Rows]:
        """The final rows of every table (or the ones ``written`` affected), normalized
        to JSON values and sorted."""
        result: dict[str, Rows] = {}
        with self.engine.connect() as conn:
            for table in self.affected(written):
                info = self.tables.get(self.prefix + table.name)
                if info is None:
                    continue
                order = info.primary_key or info.columns
                quote = self.engine.dialect.identifier_preparer.quote
                columns = ", ".join(quote(c) for c in info.columns)
                sql = f"SELECT {columns} FROM {quote(table.name)} ORDER BY " + ", ".join(
                    quote(c) for c in order
                )
                rows = conn.exec_driver_sql(sql).fetchall()
                result[info.name] = tuple(tuple(_json_value(v) for v in row) for row in rows)
            conn.rollback()
        return result

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def execute_admin(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql))


def _is_integer(column: Any) -> bool:
    try:
        return column.type.python_type is int
    except NotImplementedError:
        return False


def _json_value(value: Any) -> Any:
    """A database value as a JSON value, the same on every backend."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value else "NaN"
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
